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

Blur implementations (``impl``; all equal to float rounding):

- ``'direct'``: both blurs are depthwise correlations (``F.conv2d``); the adjoint correlates with the
  flipped kernel, which for an odd kernel and padding ``l // 2`` is the transposed convolution.
- ``'transposed'``: as ``'direct'``, but the adjoint is ``F.conv_transpose2d``, the literal transposed
  convolution (the plain path). cuDNN's transposed convolution is much slower than the depthwise
  correlation on these maps, hence ``'direct'``.
- ``'fft'``: the Fourier domain (about 1e-7 relative in float32).
- ``'auto'``: the first rule of :data:`BLUR_RULES` that matches the device, whether autograd is
  recording (training) and the HR map size; ``'direct'`` where none does. The rules are what was
  measured to win; ``codes/benchmarks/README.md`` has the figures behind each.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

BLUR_IMPLS = ("auto", "direct", "fft", "transposed")


class BlurRule(NamedTuple):
    """``impl`` for maps of at least ``min_pixels`` HR pixels on ``device_type``; ``training``: only
    while autograd records (True), only without it (False), or either (None)."""

    device_type: str
    training: Optional[bool]
    min_pixels: int
    impl: str


# What 'auto' picks; anything not listed (x2/x3 training sizes and inference on CUDA) stays direct
# until a measurement shows otherwise.
BLUR_RULES = (
    BlurRule("cpu", None, 32 * 32, "fft"),
    BlurRule("cuda", True, 192 * 192, "fft"),  # the x4 training crop
)


def _grouped_kernels(k, channels):
    """Repeat each image's kernel for its channels: (B, l, l) -> (B * C, 1, l, l)."""
    batch, height, width = k.shape
    return k.unsqueeze(1).expand(batch, channels, height, width).reshape(batch * channels, 1, height, width)


def _depthwise(x, weight, radius, transposed=False):
    """Correlate (or, with ``transposed``, transposed-convolve) channel ``b * C + c`` of ``x`` with
    ``weight[b * C + c]``: ``x`` (B, C, H, W), ``weight`` (B * C, 1, l, l) -> (B, C, H, W)."""
    batch, channels, height, width = x.shape
    conv = F.conv_transpose2d if transposed else F.conv2d
    out = conv(x.reshape(1, batch * channels, height, width), weight.to(x.dtype), padding=radius,
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
    return _depthwise(x, _grouped_kernels(k, x.shape[1]), k.shape[-1] // 2)


def blur_transpose_batch(x, k, literal=False):
    """Exact adjoint of :func:`blur_batch` (correlation with the flipped kernel, zero padding).

    Args:
        x (Tensor): (B, C, H, W).
        k (Tensor): (B, l, l) kernels, ``l`` odd.
        literal (bool): compute it as ``F.conv_transpose2d`` (blur impl ``'transposed'``) instead of
            :func:`blur_batch` with the flipped kernel; the two agree to float rounding.

    Returns:
        Tensor: (B, C, H, W), with ``<blur_batch(u, k), v> == <u, blur_transpose_batch(v, k)>``.
    """
    if not literal:
        return blur_batch(x, torch.flip(k, dims=(-2, -1)))
    return _depthwise(x, _grouped_kernels(k, x.shape[1]), k.shape[-1] // 2, transposed=True)


def _fast_len(n):
    """Smallest even 5-smooth integer (2^a 3^b 5^c, a >= 1) >= n: FFT lengths that are fast, and even
    so that the real-FFT width ``N // 2 + 1`` gives ``N`` back."""
    best = None
    p2 = 2
    while p2 < 2 * n + 2:
        p3 = p2
        while p3 < 2 * n + 2:
            p5 = p3
            while p5 < n:
                p5 *= 5
            if best is None or p5 < best:
                best = p5
            p3 *= 3
        p2 *= 2
    return best


def resolve_blur_impl(impl, size, device, training=None):
    """Turn ``'auto'`` into an implementation for HR maps of ``size`` (H, W) on ``device`` by
    :data:`BLUR_RULES`.

    Args:
        training (bool | None): whether the blur is differentiated; None: ``torch.is_grad_enabled()``.

    Raises:
        ValueError: an unknown name.
    """
    if impl not in BLUR_IMPLS:
        raise ValueError(f"blur impl {impl!r}: choose one of {BLUR_IMPLS}")
    if impl != "auto":
        return impl
    training = torch.is_grad_enabled() if training is None else training
    device_type = torch.device(device).type
    for rule in BLUR_RULES:
        if (rule.device_type == device_type and rule.training in (None, training)
                and size[0] * size[1] >= rule.min_pixels):
            return rule.impl
    return "direct"


def kernel_spectrum(k, size):
    """Fourier transform of the kernels laid out for :func:`blur_fft` on maps of ``size``.

    The kernel is zero-padded to the FFT size and rolled by ``-l//2`` so that a circular correlation
    with it is the zero-padded correlation of :func:`blur_batch` on the first H x W outputs.

    Args:
        k (Tensor): (B, l, l) kernels, ``l`` odd; computed in float32 (float64 if ``k`` is float64).
        size (tuple[int, int]): (H, W) of the maps to blur.

    Returns:
        Tensor: complex (B, 1, NH, NW // 2 + 1) with ``NH >= H + l // 2`` (even, 5-smooth), same for NW.
    """
    radius = k.shape[-1] // 2
    nh, nw = _fast_len(size[0] + radius), _fast_len(size[1] + radius)
    work = torch.promote_types(k.dtype, torch.float32)
    padded = F.pad(k.to(work), (0, nw - k.shape[-1], 0, nh - k.shape[-2]))
    padded = torch.roll(padded, shifts=(-radius, -radius), dims=(-2, -1))
    return torch.fft.rfft2(padded).unsqueeze(1)


def blur_fft(x, k, transpose=False, spectrum=None):
    """:func:`blur_batch` (or, with ``transpose``, :func:`blur_transpose_batch`) via the FFT.

    Equal to the direct convolution up to float rounding; computed in float32 (float64 for float64
    input) also under autocast, returned in ``x.dtype``.

    Args:
        x (Tensor): (B, C, H, W).
        k (Tensor): (B, l, l) kernels, ``l`` odd (ignored when ``spectrum`` is given).
        transpose (bool): the adjoint (correlation with the flipped kernel).
        spectrum (Tensor | None): :func:`kernel_spectrum` of ``k`` for this (H, W), to reuse it.

    Returns:
        Tensor: (B, C, H, W).
    """
    height, width = x.shape[-2:]
    if spectrum is None:
        spectrum = kernel_spectrum(k, (height, width))
    nh = spectrum.shape[-2]
    nw = 2 * (spectrum.shape[-1] - 1)
    work = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(x.device.type, enabled=False):
        xf = torch.fft.rfft2(x.to(work), s=(nh, nw))
        prod = xf * (spectrum if transpose else spectrum.conj())
        out = torch.fft.irfft2(prod, s=(nh, nw))[..., :height, :width]
    return out.to(x.dtype)


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


class DegradationOperators:
    """``A`` and ``Aᵀ`` for one batch of kernels, prepared once and applied many times.

    A DLSM forward applies them 2T+1 times with the same kernels. The blur's weights (each kernel
    repeated for the C channels, and flipped for ``Aᵀ``) or, for the FFT blur, the kernel spectrum
    are built here once, so each application dispatches only its blur and its resampling; the
    gradients for the kernels flow through the prepared weights as through per-call ones.

    Args:
        k (Tensor): (B, l, l) kernels, ``l`` odd.
        scale (int): s.
        channels (int): C of the images the operators act on.
        hr_size (tuple[int, int]): (H, W) of the HR maps (what ``'auto'`` and the FFT size depend on).
        impl (str): blur implementation, one of :data:`BLUR_IMPLS`.
        spectrum (Tensor | None): a ready :func:`kernel_spectrum` of ``k`` for ``hr_size`` (FFT blur).
    """

    def __init__(self, k, scale, channels, hr_size, impl="direct", spectrum=None):
        self.scale = scale
        self.radius = k.shape[-1] // 2
        self.impl = resolve_blur_impl(impl, hr_size, k.device)
        if self.impl == "fft":
            self.spectrum = kernel_spectrum(k, hr_size) if spectrum is None else spectrum
            return
        self.weight = _grouped_kernels(k, channels)  # (B * C, 1, l, l)
        # 'direct': Aᵀ correlates with the flipped kernel; 'transposed': conv_transpose2d with k itself
        self.weight_t = torch.flip(self.weight, dims=(-2, -1)) if self.impl == "direct" else self.weight

    def blur(self, x, transpose=False):
        """:func:`blur_batch` of ``x`` (B, C, H, W) with the kernels, or its adjoint with ``transpose``."""
        if self.impl == "fft":
            return blur_fft(x, None, transpose=transpose, spectrum=self.spectrum)
        if transpose:
            return _depthwise(x, self.weight_t, self.radius, transposed=self.impl == "transposed")
        return _depthwise(x, self.weight, self.radius)

    def A(self, x):
        """Blur then bicubic downsampling: (B, C, s*h, s*w) -> (B, C, h, w)."""
        return bicubic_down(self.blur(x), self.scale)

    def At(self, y):
        """The authors' ``Aᵀ``, bicubic upsampling then the transposed blur: (B, C, h, w) -> (B, C, s*h, s*w)."""
        return self.blur(bicubic_up(y, self.scale), transpose=True)


def A(x, k, scale, impl="direct", spectrum=None):
    """Degradation operator: blur then bicubic downsampling (one application; see
    :class:`DegradationOperators` for many with the same kernels).

    Args:
        x (Tensor): (B, C, s*h, s*w) HR estimate, values around [0, 1].
        k (Tensor): (B, l, l) kernels (sum to 1).
        scale (int): s.
        impl (str): blur implementation, one of :data:`BLUR_IMPLS` (default ``'direct'``).
        spectrum (Tensor | None): precomputed :func:`kernel_spectrum` for the FFT path.

    Returns:
        Tensor: (B, C, h, w).
    """
    return DegradationOperators(k, scale, x.shape[1], x.shape[-2:], impl, spectrum).A(x)


def At(y, k, scale, impl="direct", spectrum=None):
    """The authors' ``Aᵀ``: bicubic upsampling then the transposed blur (not the exact adjoint of A).

    Args:
        y (Tensor): (B, C, h, w) LR-sized tensor.
        k (Tensor): (B, l, l) kernels.
        scale (int): s.
        impl (str): blur implementation, one of :data:`BLUR_IMPLS` (default ``'direct'``).
        spectrum (Tensor | None): precomputed :func:`kernel_spectrum` for the FFT path.

    Returns:
        Tensor: (B, C, s*h, s*w).
    """
    hr_size = (y.shape[-2] * scale, y.shape[-1] * scale)
    return DegradationOperators(k, scale, y.shape[1], hr_size, impl, spectrum).At(y)
