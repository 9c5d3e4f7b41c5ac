"""Gaussian blur kernels of the synthetic degradation, batched in torch (the paper's experiments).

Every kernel is ``l x l`` (``l = kernel_size``, 21 by default) with the Gaussian drawn on an
``l' x l'`` grid, ``l' = l - s + 1``, placed in the top-left corner of an all-zero array (quirk of the
authors that aligns the blur with the subsampling at (0, 0)). Kernels are computed in float64 for the
whole batch at once and returned in ``dtype`` (float32 by default); they are non-negative and sum to 1.

Public API:
    PAPER_KERNELS, degrees_to_radians_authors, anisotropic_gaussian_kernels,
    isotropic_gaussian_kernels, random_kernel_params, make_kernels, paper_kernel_params, paper_kernels
"""
import math

import torch
import torch.nn.functional as F

from utils.errors import KULNetError

# The nine anisotropic test kernels of the paper tables, (sig1, sig2, theta in degrees); sig1 and sig2
# are variances (quirk), theta becomes radians with degrees_to_radians_authors (deg / 180 * 3.14).
PAPER_KERNELS = [
    (2.0, 0.5, 0.0),
    (2.0, 1.0, 10.0),
    (3.5, 1.5, 30.0),
    (3.5, 2.0, 45.0),
    (3.5, 2.0, 90.0),
    (4.0, 1.5, 120.0),
    (4.0, 2.0, 135.0),
    (4.0, 3.0, 165.0),
    (4.0, 4.0, 180.0),
]

_EPS64 = torch.finfo(torch.float64).eps


def degrees_to_radians_authors(deg):
    """Degrees to radians the way the authors' test code does it: ``deg / 180 * 3.14`` (quirk, not pi).

    Args:
        deg (float | Tensor): angle(s) in degrees.

    Returns:
        float | Tensor: the same shape as ``deg``.
    """
    return deg / 180 * 3.14


def _check_sizes(kernel_size, scale):
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise KULNetError(f"kernel_size={kernel_size}: must be a positive odd integer; use e.g. 21")
    if int(scale) != scale or scale < 1:
        raise KULNetError(f"scale={scale}: must be a positive integer; use 2, 3 or 4")
    if kernel_size - scale + 1 < 1:
        raise KULNetError(f"kernel_size={kernel_size}, scale={scale}: kernel_size must be >= scale")
    return int(kernel_size), int(scale)


_GRIDS = {}


def _grid(kernel_size, scale, device):
    """Shifted sampling grid: X, Y of shape (l', l'), float64, X varying along columns (cached)."""
    key = (kernel_size, scale, str(torch.device(device)))
    if key not in _GRIDS:
        _GRIDS[key] = _make_grid(kernel_size, scale, device)
    return _GRIDS[key]


def _make_grid(kernel_size, scale, device):
    lp = kernel_size - scale + 1
    ax = torch.arange(lp, dtype=torch.float64, device=device) - (lp / 2 - 0.5)
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x, y


def _as_batch(*values, device=None):
    """Floats or tensors -> float64 tensors of one common shape (B,) on one device."""
    if device is None:
        device = next((v.device for v in values if torch.is_tensor(v)), torch.device("cpu"))
    tensors = [torch.as_tensor(v, dtype=torch.float64, device=device) for v in values]
    tensors = torch.broadcast_tensors(*tensors)
    return [t.reshape(-1) for t in tensors]


def _finish(k, kernel_size, scale, dtype):
    """Threshold at eps64 * max, normalise to sum 1, place the (B, l', l') block top-left in (B, l, l)."""
    kmax = k.amax(dim=(-2, -1), keepdim=True)
    k = k * (k >= _EPS64 * kmax)
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    pad = kernel_size - k.shape[-1]
    return F.pad(k, (0, pad, 0, pad)).to(dtype)


def anisotropic_gaussian_kernels(sig1, sig2, theta, kernel_size=21, scale=4, dtype=torch.float32):
    """Anisotropic Gaussian kernels, one per batch element.

    Covariance ``S = R(theta) diag(sig1, sig2) R(theta)^T``; sig1 and sig2 are the eigenVALUES
    (variances, quirk of the authors), theta in radians. The density of N(0, S) is sampled on the
    shifted ``l' x l'`` grid, values below ``eps64 * max`` are zeroed, the kernel is normalised and
    placed in the top-left corner of an ``l x l`` zero array.

    Args:
        sig1 (float | Tensor): (B,) first variance, > 0 (checked for CPU inputs only).
        sig2 (float | Tensor): (B,) second variance, > 0.
        theta (float | Tensor): (B,) rotation in radians.
        kernel_size (int): odd ``l``.
        scale (int): SR scale ``s`` (sets the grid size ``l - s + 1``).
        dtype (torch.dtype): output dtype (the computation is float64).

    Returns:
        Tensor: (B, l, l), non-negative, each kernel sums to 1, zero outside the top-left l'xl' block.
    """
    kernel_size, scale = _check_sizes(kernel_size, scale)
    s1, s2, th = _as_batch(sig1, sig2, theta)
    # Checked on CPU only: on a GPU the check would force a host sync on every batch.
    if s1.device.type == "cpu" and not (bool((s1 > 0).all()) and bool((s2 > 0).all())):
        raise KULNetError(f"sig1={sig1}, sig2={sig2}: kernel variances must be > 0")
    x, y = _grid(kernel_size, scale, s1.device)
    c, s = torch.cos(th)[:, None, None], torch.sin(th)[:, None, None]
    # q = [x y] S^-1 [x y]^T with S^-1 = R diag(1/s1, 1/s2) R^T: rotate the grid, then scale.
    xr = c * x + s * y
    yr = c * y - s * x
    q = xr.square() / s1[:, None, None] + yr.square() / s2[:, None, None]
    # The density's constant 1 / (2 pi sqrt(det S)) is left out: the eps threshold is relative to
    # the maximum and the kernel is normalised, so it cancels (fewer ops per batch on a GPU).
    k = torch.exp(-0.5 * q)
    return _finish(k, kernel_size, scale, dtype)


def isotropic_gaussian_kernels(sigma, kernel_size=21, scale=4, dtype=torch.float32):
    """Isotropic Gaussian kernels ``exp(-(x^2 + y^2) / (2 sigma^2))`` on the shifted grid.

    Args:
        sigma (float | Tensor): (B,) standard deviation (not a variance), > 0.
        kernel_size (int): odd ``l``.
        scale (int): SR scale ``s``.
        dtype (torch.dtype): output dtype (the computation is float64).

    Returns:
        Tensor: (B, l, l), non-negative, sums to 1, zero outside the top-left l'xl' block.
    """
    kernel_size, scale = _check_sizes(kernel_size, scale)
    (sig,) = _as_batch(sigma)
    if sig.device.type == "cpu" and not bool((sig > 0).all()):
        raise KULNetError(f"sigma={sigma}: the isotropic kernel width must be > 0")
    x, y = _grid(kernel_size, scale, sig.device)
    k = torch.exp(-(x * x + y * y)[None] / (2 * sig * sig)[:, None, None])
    return _finish(k, kernel_size, scale, dtype)


def random_kernel_params(batch, generator=None, device=None, sig_min=0.2, sig_max=4.0, rate_iso=0.0):
    """Draw per-image kernel parameters from the training distribution.

    Anisotropic draws: ``sig1 ~ U(sig_min, sig_max)``, ``sig2 ~ U(sig_min, sig1)`` (variances),
    ``theta ~ U(0, pi)``. With probability ``rate_iso`` an image gets an isotropic kernel instead:
    then ``sig1`` (= ``sig2``) is its standard deviation ~ U(sig_min, sig_max) and ``theta`` = 0.
    Four uniform vectors are always drawn (in this order: sig1, sig2, theta, iso), so the generator
    advances the same way whatever ``rate_iso`` is.

    Args:
        batch (int): number of images B.
        generator (torch.Generator | None): source of randomness (on ``device``); None uses torch's.
        device (torch.device | str | None): defaults to the generator's device, else CPU.
        sig_min, sig_max (float): range of the widths, 0 < sig_min <= sig_max.
        rate_iso (float): probability of an isotropic kernel, in [0, 1].

    Returns:
        dict: ``sig1``, ``sig2``, ``theta`` float32 tensors (B,), ``is_iso`` bool tensor (B,).
    """
    if not 0 < sig_min <= sig_max:
        raise KULNetError(f"sig_min={sig_min}, sig_max={sig_max}: need 0 < sig_min <= sig_max")
    if not 0.0 <= rate_iso <= 1.0:
        raise KULNetError(f"rate_iso={rate_iso}: must be in [0, 1]")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand((4, int(batch)), generator=generator, device=device, dtype=torch.float64)
    sig1 = sig_min + (sig_max - sig_min) * u[0]
    sig2 = torch.minimum(sig_min + (sig1 - sig_min) * u[1], sig1)
    theta = math.pi * u[2]
    is_iso = u[3] < rate_iso
    if rate_iso > 0:
        sig2 = torch.where(is_iso, sig1, sig2)
        theta = torch.where(is_iso, torch.zeros_like(theta), theta)
    return {
        "sig1": sig1.float(),
        "sig2": sig2.float(),
        "theta": theta.float(),
        "is_iso": is_iso,
    }


def make_kernels(params, kernel_size=21, scale=4, dtype=torch.float32):
    """Kernels for a parameter dict, isotropic or anisotropic per image.

    Args:
        params (dict): ``sig1``, ``sig2``, ``theta`` (B,) and optionally ``is_iso`` (B,) bool
            (missing = all anisotropic). For isotropic entries ``sig1`` is the standard deviation.
        kernel_size (int): odd ``l``.
        scale (int): SR scale ``s``.
        dtype (torch.dtype): output dtype.

    Returns:
        Tensor: (B, l, l), each kernel sums to 1.
    """
    for key in ("sig1", "sig2", "theta"):
        if key not in params:
            raise KULNetError(f"kernel params: key '{key}' is missing; give sig1, sig2 and theta")
    aniso = anisotropic_gaussian_kernels(
        params["sig1"], params["sig2"], params["theta"], kernel_size, scale, dtype=torch.float64
    )
    is_iso = params.get("is_iso")
    if is_iso is not None:
        is_iso = torch.as_tensor(is_iso, device=aniso.device)
    # On CPU skip the isotropic branch when no image needs it; on a GPU that test would sync.
    if is_iso is not None and (is_iso.device.type != "cpu" or bool(is_iso.any())):
        iso = isotropic_gaussian_kernels(params["sig1"], kernel_size, scale, dtype=torch.float64)
        mask = is_iso.reshape(-1, 1, 1)
        aniso = torch.where(mask, iso, aniso)
    return aniso.to(dtype)


def paper_kernel_params(device=None):
    """The nine paper test kernels as a parameter dict (theta in radians via deg/180*3.14).

    Returns:
        dict: ``sig1``, ``sig2``, ``theta`` float64 tensors (9,), ``is_iso`` all False.
    """
    table = torch.tensor(PAPER_KERNELS, dtype=torch.float64, device=device)
    return {
        "sig1": table[:, 0],
        "sig2": table[:, 1],
        "theta": degrees_to_radians_authors(table[:, 2]),
        "is_iso": torch.zeros(len(PAPER_KERNELS), dtype=torch.bool, device=device),
    }


def paper_kernels(scale, kernel_size=21, device=None, dtype=torch.float32):
    """The nine test kernels of the paper tables at ``scale``: Tensor (9, l, l) in PAPER_KERNELS order."""
    return make_kernels(paper_kernel_params(device), kernel_size, scale, dtype=dtype)
