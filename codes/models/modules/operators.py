"""Degradation operator ``A`` and its (pseudo-)transpose ``Aᵀ`` used inside DLSM, for whole batches.

Paper / reference: Z. Fang et al., "Uncertainty Learning in Kernel Estimation for Multi-Stage Blind
Image Super-Resolution", ECCV 2022, Sec. 3 (the data term of the unfolded MAP estimator).

``A x``  = blur by the image's kernel (correlation, zero padding ``l // 2``), then bicubic resampling
by ``1/s`` (``F.interpolate``, ``align_corners=False``).
``Aᵀ y`` = bicubic upsampling by ``s``, then the exact adjoint of the blur (a transposed convolution,
i.e. correlation with the flipped kernel).

The blur pair is exactly adjoint; the two bicubic steps are NOT adjoint to each other. That is the
authors' design (quirk) and is kept. The authors loop over the batch; here the blur is one grouped
convolution over ``B * C`` channels, which computes the same numbers.
"""
import torch
import torch.nn.functional as F


def _grouped_kernels(k, channels):
    """Repeat each image's kernel for its channels: (B, l, l) -> (B * C, 1, l, l)."""
    batch, height, width = k.shape
    return k.unsqueeze(1).expand(batch, channels, height, width).reshape(batch * channels, 1, height, width)


def blur_batch(x, k):
    """Correlate every channel of every image with that image's kernel (zero padding ``l // 2``).

    Args:
        x (Tensor): (B, C, H, W) images.
        k (Tensor): (B, l, l) kernels, ``l`` odd; the same kernel is used for the C channels.

    Returns:
        Tensor: (B, C, H, W), ``out[b, c, i, j] = sum_{p, q} k[b, p, q] x[b, c, i + p - l//2, j + q - l//2]``.
    """
    batch, channels, height, width = x.shape
    weight = _grouped_kernels(k.to(x.dtype), channels)
    out = F.conv2d(x.reshape(1, batch * channels, height, width), weight,
                   padding=k.shape[-1] // 2, groups=batch * channels)
    return out.view(batch, channels, height, width)


def blur_transpose_batch(x, k):
    """Exact adjoint of :func:`blur_batch` (correlation with the flipped kernel, zero padding).

    Args:
        x (Tensor): (B, C, H, W).
        k (Tensor): (B, l, l) kernels, ``l`` odd.

    Returns:
        Tensor: (B, C, H, W), with ``<blur_batch(u, k), v> == <u, blur_transpose_batch(v, k)>``.
    """
    batch, channels, height, width = x.shape
    weight = _grouped_kernels(k.to(x.dtype), channels)
    out = F.conv_transpose2d(x.reshape(1, batch * channels, height, width), weight,
                             padding=k.shape[-1] // 2, groups=batch * channels)
    return out.view(batch, channels, height, width)


def bicubic_down(x, scale):
    """Bicubic resampling by ``1/scale`` as the authors call it (no antialiasing).

    Args:
        x (Tensor): (B, C, s*h, s*w).
        scale (int): s.

    Returns:
        Tensor: (B, C, h, w).
    """
    return F.interpolate(x, scale_factor=1.0 / scale, mode="bicubic", align_corners=False)


def bicubic_up(y, scale):
    """Bicubic upsampling by ``scale``: (B, C, h, w) -> (B, C, s*h, s*w)."""
    return F.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False)


def A(x, k, scale):
    """Degradation operator: blur then bicubic downsampling.

    Args:
        x (Tensor): (B, C, s*h, s*w) HR estimate, values around [0, 1].
        k (Tensor): (B, l, l) kernels (sum to 1).
        scale (int): s.

    Returns:
        Tensor: (B, C, h, w).
    """
    return bicubic_down(blur_batch(x, k), scale)


def At(y, k, scale):
    """The authors' ``Aᵀ``: bicubic upsampling then the transposed blur (not the exact adjoint of A).

    Args:
        y (Tensor): (B, C, h, w) LR-sized tensor.
        k (Tensor): (B, l, l) kernels.
        scale (int): s.

    Returns:
        Tensor: (B, C, s*h, s*w).
    """
    return blur_transpose_batch(bicubic_up(y, scale), k)
