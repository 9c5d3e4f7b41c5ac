"""Degradation operator ``A`` and its (pseudo-)transpose ``Aᵀ`` inside DLSM, for whole batches.

Paper / reference: Z. Fang et al., "Uncertainty Learning in Kernel Estimation for Multi-Stage Blind
Image Super-Resolution", ECCV 2022, Sec. 3.2 (the data term of the unfolded MAP estimator).

``A x``  = blur by the image's kernel (correlation, zero padding ``l // 2``), then bicubic resampling
by ``1/s`` (``F.interpolate``, ``align_corners=False``).
``Aᵀ y`` = bicubic upsampling by ``s``, then the transposed convolution with the kernel (the exact
adjoint of the blur).

The blur pair is exactly adjoint; the two bicubic steps are not adjoint to each other: the authors'
design (quirk), kept. The authors loop over the batch; here the blur is one grouped convolution over
``B * C`` channels, which computes the same numbers. Faster blurs with the same values:
:mod:`models.fast.operators`.
"""
import torch.nn.functional as F


def grouped_kernels(k, channels):
    """Repeat each image's kernel for its channels: (B, l, l) -> (B * C, 1, l, l)."""
    batch, height, width = k.shape
    return k.unsqueeze(1).expand(batch, channels, height, width).reshape(batch * channels, 1, height, width)


def depthwise(x, weight, transposed=False):
    """Correlate (or, with ``transposed``, transposed-convolve) channel ``b * C + c`` of ``x`` with
    ``weight[b * C + c]``, zero padding ``l // 2``: ``x`` (B, C, H, W), ``weight`` (B * C, 1, l, l)
    -> (B, C, H, W)."""
    batch, channels, height, width = x.shape
    conv = F.conv_transpose2d if transposed else F.conv2d
    out = conv(x.reshape(1, batch * channels, height, width), weight.to(x.dtype), padding=weight.shape[-1] // 2,
               groups=batch * channels)
    return out.view(batch, channels, height, width)


def blur_batch(x, k):
    """Correlate every channel of every image with that image's kernel (zero padding ``l // 2``).

    Args:
        x (Tensor): (B, C, H, W) images.
        k (Tensor): (B, l, l) kernels, ``l`` odd; the same kernel is used for the C channels.

    Returns:
        Tensor: (B, C, H, W), ``out[b, c, i, j] = sum_{p, q} k[b, p, q] x[b, c, i + p - l//2, j + q - l//2]``.
    """
    return depthwise(x, grouped_kernels(k, x.shape[1]))


def blur_transpose_batch(x, k):
    """Exact adjoint of :func:`blur_batch`: the transposed convolution with the kernels.

    Returns:
        Tensor: (B, C, H, W), with ``<blur_batch(u, k), v> == <u, blur_transpose_batch(v, k)>``.
    """
    return depthwise(x, grouped_kernels(k, x.shape[1]), transposed=True)


def bicubic_down(x, scale):
    """Bicubic resampling by ``1/scale`` as the authors call it (no antialiasing):
    (B, C, s*h, s*w) -> (B, C, h, w)."""
    return F.interpolate(x, scale_factor=1.0 / scale, mode="bicubic", align_corners=False)


def bicubic_up(y, scale):
    """Bicubic upsampling by ``scale``: (B, C, h, w) -> (B, C, s*h, s*w)."""
    return F.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False)


class DegradationOperators:
    """``A`` and ``Aᵀ`` for one batch of kernels, applied 2T+1 times in a DLSM forward.

    Args:
        k (Tensor): (B, l, l) kernels, ``l`` odd (sum to 1).
        scale (int): s.
        channels (int): C of the images the operators act on.
    """

    def __init__(self, k, scale, channels):
        self.scale = scale
        self.weight = grouped_kernels(k, channels)  # (B * C, 1, l, l), made once for every application

    def blur(self, x):
        """:func:`blur_batch` of ``x`` (B, C, H, W) with the kernels."""
        return depthwise(x, self.weight)

    def blur_transpose(self, x):
        """:func:`blur_transpose_batch` of ``x`` (B, C, H, W) with the kernels."""
        return depthwise(x, self.weight, transposed=True)

    def A(self, x):
        """Blur then bicubic downsampling: (B, C, s*h, s*w) -> (B, C, h, w)."""
        return bicubic_down(self.blur(x), self.scale)

    def At(self, y):
        """The authors' ``Aᵀ``, bicubic upsampling then the transposed blur: (B, C, h, w) -> (B, C, s*h, s*w)."""
        return self.blur_transpose(bicubic_up(y, self.scale))


def A(x, k, scale):
    """One application of :meth:`DegradationOperators.A`: (B, C, s*h, s*w) -> (B, C, h, w)."""
    return DegradationOperators(k, scale, x.shape[1]).A(x)


def At(y, k, scale):
    """One application of :meth:`DegradationOperators.At`: (B, C, h, w) -> (B, C, s*h, s*w)."""
    return DegradationOperators(k, scale, y.shape[1]).At(y)
