"""Faster blurs for DLSM's ``A`` and ``Aᵀ``, with the values of :mod:`models.modules.operators`.

Blur implementations (``impl``; all equal to float rounding):

- ``'transposed'``: the literal operators (``Aᵀ`` as ``F.conv_transpose2d``).
- ``'direct'``: ``Aᵀ``'s blur as a correlation with the flipped kernel, which for an odd kernel and
  padding ``l // 2`` is the transposed convolution; cuDNN's transposed convolution is much slower
  than the depthwise correlation on these maps.
- ``'fft'``: both blurs in the Fourier domain (about 1e-7 relative in float32).
- ``'auto'``: the first rule of :data:`BLUR_RULES` that matches the device, whether autograd records
  (training) and the HR map size; ``'direct'`` where none does. The rules are what was measured to
  win; ``codes/benchmarks/README.md`` has the figures behind each.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from models.modules.operators import DegradationOperators, depthwise

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


# Run eagerly inside a compiled step: inductor's backward of these complex FFT products gave wrong kernel
# gradients (the SR part's matched; the estimator's differed by several times their size).
@torch.compiler.disable
def kernel_spectrum(k, size):
    """Fourier transform of the kernels laid out for :func:`blur_fft` on maps of ``size``.

    The kernel is zero-padded to the FFT size and rolled by ``-l//2`` so that a circular correlation
    with it is the zero-padded correlation of ``blur_batch`` on the first H x W outputs.

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


@torch.compiler.disable
def blur_fft(x, k, transpose=False, spectrum=None):
    """``blur_batch`` (or, with ``transpose``, ``blur_transpose_batch``) via the FFT.

    Computed in float32 (float64 for float64 input) also under autocast, returned in ``x.dtype``.

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


class FastDegradationOperators(DegradationOperators):
    """:class:`DegradationOperators` with the blur ``impl`` (see the module notes), prepared once for
    the 2T+1 applications of a DLSM forward: the flipped weights or the kernels' spectrum.

    Args:
        k (Tensor): (B, l, l) kernels. scale (int): s. channels (int): C.
        hr_size (tuple[int, int]): (H, W) of the HR maps (what ``'auto'`` and the FFT size depend on).
        impl (str): one of :data:`BLUR_IMPLS`.
    """

    def __init__(self, k, scale, channels, hr_size, impl="auto"):
        self.impl = resolve_blur_impl(impl, hr_size, k.device)
        if self.impl == "fft":
            self.scale = scale
            self.spectrum = kernel_spectrum(k, hr_size)
            return
        super().__init__(k, scale, channels)
        if self.impl == "direct":
            self.weight_flipped = torch.flip(self.weight, dims=(-2, -1))

    def blur(self, x):
        if self.impl == "fft":
            return blur_fft(x, None, spectrum=self.spectrum)
        return super().blur(x)

    def blur_transpose(self, x):
        if self.impl == "fft":
            return blur_fft(x, None, transpose=True, spectrum=self.spectrum)
        if self.impl == "direct":
            return depthwise(x, self.weight_flipped)
        return super().blur_transpose(x)
