"""Synthetic degradation of whole HR batches on their own device, with the authors' conventions.

HR (B, C, H, W) in [0, 1] -> per-image Gaussian kernel -> blur (replicate padding ``l // 2``,
correlation, no flip) -> subsample every ``s``-th pixel from (0, 0) -> Gaussian noise, clamp to [0, 1]
-> optional JPEG -> 8-bit quantisation of both the clean and the noisy LR.

Blur and subsampling are computed together as one strided grouped convolution
(:func:`blur_subsample`), which gives the same numbers as :func:`blur` followed by :func:`subsample`
(tested) without computing the s^2 - 1 of every s^2 blurred pixels that are thrown away.

Public API:
    DegradedBatch, blur, subsample, blur_subsample, correlate_padded, add_noise, quantize, jpeg_compress,
    Degradation, validation_degradation, paper_test_degradation
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from data.kernels import (
    PAPER_KERNELS,
    anisotropic_gaussian_kernels,
    degrees_to_radians_authors,
    isotropic_gaussian_kernels,
    make_kernels,
    random_kernel_params,
)
from utils.errors import KULNetError


@dataclass
class DegradedBatch:
    """The result of :class:`Degradation`.

    Attributes:
        lr_clean (Tensor): (B, C, h, w) blurred + subsampled LR, in [0, 1], 8-bit quantised.
        lr (Tensor): (B, C, h, w) noisy (and JPEG'd if enabled) LR, clamped, 8-bit quantised.
        kernel (Tensor): (B, l, l) float32, sums to 1 (spatially variant: the kernel at the centre).
        sig1, sig2, theta (Tensor): (B,) kernel parameters (variances / radians; for isotropic
            kernels sig1 = sig2 = the standard deviation; NaN when the kernel was given by the caller).
        noise (Tensor): (B,) noise standard deviation as a fraction of 1 (level / 255).
        jpeg_quality (Tensor | None): (B,) int64 JPEG qualities, None when JPEG is off.
        kernel_map (Tensor | None): (B, l*l, h, w) per-LR-pixel kernels for spatially variant blur.
    """

    lr_clean: torch.Tensor
    lr: torch.Tensor
    kernel: torch.Tensor
    sig1: torch.Tensor
    sig2: torch.Tensor
    theta: torch.Tensor
    noise: torch.Tensor
    jpeg_quality: Optional[torch.Tensor] = None
    kernel_map: Optional[torch.Tensor] = None


def _check_image(x, name="hr"):
    if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise KULNetError(f"{name} {shape}: expected a float tensor (B, C, H, W) in [0, 1]")


def _check_kernels(x, kernels):
    if kernels.dim() == 2:
        kernels = kernels.unsqueeze(0)
    if kernels.dim() != 3 or kernels.shape[-1] != kernels.shape[-2] or kernels.shape[-1] % 2 == 0:
        raise KULNetError(f"kernel {tuple(kernels.shape)}: expected (B, l, l) with odd l, e.g. 21")
    if kernels.shape[0] == 1 and x.shape[0] != 1:
        kernels = kernels.expand(x.shape[0], -1, -1)
    if kernels.shape[0] != x.shape[0]:
        raise KULNetError(
            f"kernel {tuple(kernels.shape)}: batch {kernels.shape[0]} != image batch {x.shape[0]}"
        )
    return kernels.to(device=x.device, dtype=x.dtype)


def correlate_padded(padded, kernels, stride):
    """Correlate every channel of image b with ``kernels[b]`` over an already padded image (no padding
    added): one grouped conv over B*C groups.

    Args:
        padded (Tensor): (B, C, H, W). kernels (Tensor): (B, l, l) float, same device and dtype.
        stride (int): output step.

    Returns:
        Tensor: (B, C, (H - l) // stride + 1, (W - l) // stride + 1).
    """
    b, c, h, w = padded.shape
    l = kernels.shape[-1]
    weight = kernels.unsqueeze(1).expand(b, c, l, l).reshape(b * c, 1, l, l)  # image-major, like x
    out = F.conv2d(padded.reshape(1, b * c, h, w), weight, stride=stride, groups=b * c)
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


def _grouped_conv(x, kernels, stride):
    """Correlate every channel of image b with kernels[b] after replicate padding ``l // 2``."""
    _check_image(x)
    kernels = _check_kernels(x, kernels)
    p = kernels.shape[-1] // 2
    return correlate_padded(F.pad(x, (p, p, p, p), mode="replicate"), kernels, stride)


def blur(hr, kernels):
    """Blur every image with its own kernel: replicate padding ``l // 2``, correlation (no flip).

    Args:
        hr (Tensor): (B, C, H, W).
        kernels (Tensor): (B, l, l) (or (l, l) / (1, l, l), shared by the batch), odd ``l``.

    Returns:
        Tensor: (B, C, H, W), same dtype/device as ``hr``.
    """
    return _grouped_conv(hr, kernels, stride=1)


def subsample(x, scale):
    """Keep every ``scale``-th pixel starting at (0, 0): ``x[..., ::s, ::s]``.

    Output size is ``ceil(H / s) x ceil(W / s)`` (= H/s x W/s when H, W are multiples of s).
    """
    return x[..., ::scale, ::scale]


def blur_subsample(hr, kernels, scale):
    """``subsample(blur(hr, kernels), scale)`` as one strided grouped conv (same numbers, s^2 cheaper).

    Args:
        hr (Tensor): (B, C, H, W).
        kernels (Tensor): (B, l, l), odd ``l``.
        scale (int): stride ``s``.

    Returns:
        Tensor: (B, C, ceil(H / s), ceil(W / s)).
    """
    return _grouped_conv(hr, kernels, stride=int(scale))


def add_noise(x, sigma, generator=None):
    """Add white Gaussian noise of a per-image standard deviation and clamp to [0, 1].

    Args:
        x (Tensor): (B, C, h, w) in [0, 1].
        sigma (Tensor | float): (B,) noise standard deviations as fractions of 1 (level / 255).
        generator (torch.Generator | None): on ``x.device``; None uses torch's default generator.

    Returns:
        Tensor: ``clamp(x + sigma[b] * N(0, 1), 0, 1)``, same shape as ``x``.
    """
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.clamp(x + sigma * noise, 0.0, 1.0)


def quantize(x):
    """8-bit quantisation ``round(255 x) / 255`` (after clamping to [0, 1]), same shape and dtype."""
    return torch.round(torch.clamp(x, 0.0, 1.0) * 255.0) / 255.0


def jpeg_compress(x, quality):
    """JPEG-compress every image with its own quality through OpenCV (the one per-image loop).

    Args:
        x (Tensor): (B, C, h, w) in [0, 1], C = 3 (RGB) or 1.
        quality (Tensor): (B,) integer qualities in [0, 100].

    Returns:
        Tensor: (B, C, h, w) decoded images on ``x.device`` (already on the 8-bit grid).
    """
    import cv2

    if x.shape[1] not in (1, 3):
        raise KULNetError(f"jpeg: {x.shape[1]} channels; JPEG needs 1 or 3 channel images")
    imgs = (torch.clamp(x, 0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(imgs)
    for i, (img, q) in enumerate(zip(imgs, quality.tolist())):
        bgr = img[..., ::-1] if img.shape[-1] == 3 else img
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [int(cv2.IMWRITE_JPEG_QUALITY), int(q)])
        if not ok:
            raise KULNetError(f"jpeg: OpenCV could not encode image {i} at quality {q}")
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        dec = dec.reshape(img.shape[0], img.shape[1], -1)
        out[i] = dec[..., ::-1] if dec.shape[-1] == 3 else dec
    back = torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2)
    return back.to(x.dtype) / 255.0


EXTREME_FRACTION = 0.2  # the part of the eigenvalue range at each end that a curriculum starts with


def to_extremes(params, sig_min, sig_max):
    """Kernel parameters moved to the ends of the range, for a curriculum that starts with the blurs
    easiest to tell apart: the even images of the batch get both eigenvalues in the narrowest
    :data:`EXTREME_FRACTION` of ``[sig_min, sig_max]``, the odd ones in the widest (each eigenvalue's
    place within the range kept, so ``sig2 <= sig1`` still holds); angles unchanged.

    Args:
        params (dict): :func:`data.kernels.random_kernel_params`'s output.

    Returns:
        dict: the same keys, ``sig1`` and ``sig2`` replaced.
    """
    span = sig_max - sig_min
    wide = (torch.arange(params["sig1"].shape[0], device=params["sig1"].device) % 2).to(params["sig1"].dtype)
    start = sig_min + wide * (1 - EXTREME_FRACTION) * span
    moved = {key: start + (params[key] - sig_min) * EXTREME_FRACTION for key in ("sig1", "sig2")}
    return {**params, **moved}


class Degradation:
    """Batched synthetic degradation, the vectorised counterpart of the authors' ``SRMDPreprocessing``.

    Training mode (defaults): random anisotropic kernel and random noise level U(0, noise_high/255)
    per image. Test mode: ``random_kernel=False`` with ``sig1, sig2, theta`` (variances, radians; give
    only ``sig1`` for an isotropic kernel of standard deviation ``sig1``) and ``random_noise=False``
    with a fixed ``noise`` level (0..255 units).

    Order of the steps: kernel -> blur + subsample -> noise + clamp -> JPEG (optional, applied to the
    noisy LR after the noise and before quantisation, quality ~ U{jpeg_low..100} per image) ->
    8-bit quantisation of the clean LR and of the noisy LR.

    Randomness is drawn from ``generator`` in a fixed order (kernel parameters, noise levels, noise
    samples, JPEG qualities), so the same seed gives the same batch on the same device.
    HR sizes must be multiples of ``scale`` (mod-crop test images first).
    """

    def __init__(
        self,
        scale,
        kernel_size=21,
        random_kernel=True,
        sig_min=0.2,
        sig_max=4.0,
        rate_iso=0.0,
        sig1=None,
        sig2=None,
        theta=None,
        random_noise=True,
        noise_high=25.0,
        noise=0.0,
        jpeg_low=None,
    ):
        self.scale = int(scale)
        self.kernel_size = int(kernel_size)
        self.random_kernel = bool(random_kernel)
        self.sig_min, self.sig_max, self.rate_iso = float(sig_min), float(sig_max), float(rate_iso)
        self.random_noise = bool(random_noise)
        self.noise_high = float(noise_high)
        self.noise = float(noise)
        self.jpeg_low = None if jpeg_low is None else int(jpeg_low)
        if self.noise < 0 or self.noise_high < 0:
            raise KULNetError(f"noise={noise}, noise_high={noise_high}: noise levels must be >= 0")
        if self.jpeg_low is not None and not 0 <= self.jpeg_low <= 100:
            raise KULNetError(f"jpeg_low={jpeg_low}: must be in [0, 100] (or None to disable JPEG)")
        self._fixed = None
        self.extremes = False  # set per batch by a curriculum (to_extremes)
        if not self.random_kernel:
            if sig1 is None:
                raise KULNetError("Degradation(random_kernel=False): give sig1 (and sig2, theta)")
            iso = sig2 is None and theta is None
            if not iso and (sig2 is None or theta is None):
                raise KULNetError(
                    "Degradation: give sig1, sig2 and theta for an anisotropic kernel, or sig1 alone"
                )
            if iso:
                kernel = isotropic_gaussian_kernels(sig1, self.kernel_size, self.scale)
                sig2, theta = sig1, 0.0
            else:
                kernel = anisotropic_gaussian_kernels(sig1, sig2, theta, self.kernel_size, self.scale)
            self._fixed = (kernel, float(sig1), float(sig2), float(theta))
        else:
            # Validate the ranges now rather than at the first batch.
            random_kernel_params(1, None, "cpu", self.sig_min, self.sig_max, self.rate_iso)

    def _kernels(self, b, device, generator, kernel):
        nan = torch.full((b,), float("nan"), device=device)
        if kernel is not None:
            k = kernel if kernel.dim() == 3 else kernel.unsqueeze(0)
            if k.shape[-1] != self.kernel_size:
                raise KULNetError(
                    f"kernel {tuple(kernel.shape)}: size must be kernel_size={self.kernel_size}"
                )
            return k.to(device=device, dtype=torch.float32).expand(b, -1, -1), nan, nan, nan
        if self.random_kernel:
            p = random_kernel_params(b, generator, device, self.sig_min, self.sig_max, self.rate_iso)
            if self.extremes:
                p = to_extremes(p, self.sig_min, self.sig_max)
            if self.rate_iso == 0:
                del p["is_iso"]  # all anisotropic: skip the isotropic branch
            return make_kernels(p, self.kernel_size, self.scale), p["sig1"], p["sig2"], p["theta"]
        k, s1, s2, th = self._fixed
        if k.device != torch.device(device):
            k = k.to(device)
            self._fixed = (k, s1, s2, th)  # keep the copy on the images' device for the next batch
        full = lambda v: torch.full((b,), v, device=device)  # noqa: E731
        return k.expand(b, -1, -1), full(s1), full(s2), full(th)

    def __call__(self, hr, generator=None, kernel=None):
        """Degrade a batch.

        Args:
            hr (Tensor): (B, C, H, W) in [0, 1], H and W multiples of ``scale``.
            generator (torch.Generator | None): on ``hr.device``; None uses torch's default RNG.
            kernel (Tensor | None): (B, l, l) or (l, l) kernels to use instead of drawing them.

        Returns:
            DegradedBatch: LR tensors (B, C, H/s, W/s) on ``hr.device``, in ``hr.dtype``.
        """
        _check_image(hr)
        b, _, h, w = hr.shape
        if h % self.scale or w % self.scale:
            raise KULNetError(
                f"hr size {h}x{w}: not a multiple of scale {self.scale}; mod-crop the image first"
            )
        device = hr.device
        if generator is not None and generator.device.type != device.type:
            raise KULNetError(
                f"generator on {generator.device}, images on {device}: create the generator on "
                f"the images' device"
            )
        k, sig1, sig2, theta = self._kernels(b, device, generator, kernel)
        lr_blur = blur_subsample(hr, k, self.scale)

        if self.random_noise:
            level = torch.rand(b, generator=generator, device=device) * (self.noise_high / 255.0)
        else:
            level = torch.full((b,), self.noise / 255.0, device=device)
        if self.random_noise or self.noise > 0:
            lr = add_noise(lr_blur, level, generator)
        else:
            lr = torch.clamp(lr_blur, 0.0, 1.0)

        quality = None
        if self.jpeg_low is not None:
            quality = torch.randint(self.jpeg_low, 101, (b,), generator=generator, device=device)
            lr = jpeg_compress(lr, quality)

        return DegradedBatch(
            lr_clean=quantize(lr_blur),
            lr=quantize(lr),
            kernel=k.float(),
            sig1=sig1,
            sig2=sig2,
            theta=theta,
            noise=level,
            jpeg_quality=quality,
        )


def validation_degradation(scale, kernel_size=21):
    """The authors' fixed validation degradation: sig1 3.5, sig2 1.5, theta 0.5233 rad,
    noise 10/255."""
    return Degradation(
        scale, kernel_size, random_kernel=False, sig1=3.5, sig2=1.5, theta=0.5233,
        random_noise=False, noise=10.0,
    )


def paper_test_degradation(scale, index, noise=0.0, kernel_size=21):
    """Degradation with paper test kernel ``index`` (0..8 in PAPER_KERNELS order, theta via
    deg/180*3.14) and a fixed noise level (0..255 units; the tables use 0, 5 and 10)."""
    if not 0 <= int(index) < len(PAPER_KERNELS):
        raise KULNetError(f"paper kernel index {index}: must be in 0..{len(PAPER_KERNELS) - 1}")
    s1, s2, deg = PAPER_KERNELS[int(index)]
    return Degradation(
        scale, kernel_size, random_kernel=False, sig1=s1, sig2=s2,
        theta=degrees_to_radians_authors(deg), random_noise=False, noise=noise,
    )
