"""Spatially variant blur: kernels that change across the image in fixed patterns (KULNET.md §5).

The authors' test code has spatially variant modes 1-6, but our reference does not specify their
exact patterns; the six deterministic patterns below are OUR design (documented, not the authors'),
built from the same anisotropic Gaussian kernels as the rest of the pipeline (variances in
[0.5, 4], theta in radians). With ``u = x / (W - 1)`` (0 left, 1 right), ``v = y / (H - 1)``
(0 top, 1 bottom) and ``r`` the distance to the image centre (0 at the centre, 1 at the corners):

    mode 1  width grows left -> right:       sig1 = sig2 = 0.5 + 3.5 u, theta = 0
    mode 2  orientation turns top -> bottom: sig1 = 4.0, sig2 = 1.0, theta = pi v
    mode 3  radial (sharp centre):           sig1 = sig2 = 0.5 + 3.5 r, theta = 0
    mode 4  quadrants, four paper kernels:   TL (2.0, 0.5, 0deg), TR (3.5, 1.5, 30deg),
                                             BL (4.0, 2.0, 135deg), BR (4.0, 4.0, 180deg)
                                             (theta via deg/180*3.14 as for the paper kernels)
    mode 5  zoom-like radial streaks:        sig1 = 4.0, sig2 = 1.0, theta = atan2(y - cy, x - cx)
    mode 6  bilinear mix:                    sig1 = 1.0 + 3.0 u, sig2 = sig1 (0.25 + 0.75 v),
                                             theta = pi (u + v) / 2

Kernel maps are (B, l*l, H, W): the kernel of pixel (y, x) is ``kernel_map[b, :, y, x].view(l, l)``
and is correlated with the replicate-padded image centred on that pixel, exactly as :func:`blur`
does for a single kernel. :func:`blur_per_pixel` processes the output in row chunks so its working
memory stays bounded.

Public API: SV_MODES, sv_kernel_params, sv_kernel_map, blur_per_pixel, degrade_spatially_variant
"""
import math

import torch
import torch.nn.functional as F

from data.degradation import DegradedBatch, add_noise, quantize
from data.kernels import PAPER_KERNELS, anisotropic_gaussian_kernels, degrees_to_radians_authors
from utils.errors import KULNetError

SV_MODES = (1, 2, 3, 4, 5, 6)

# Kernels synthesised at once when building a map (float64: about 3.5 KB each at l = 21).
_KERNEL_CHUNK = 32768


def _coords(height, width, device):
    """Pixel coordinates y, x (H, W) float64 and the normalised u, v in [0, 1]."""
    y = torch.arange(height, dtype=torch.float64, device=device)
    x = torch.arange(width, dtype=torch.float64, device=device)
    y, x = torch.meshgrid(y, x, indexing="ij")
    u = x / max(width - 1, 1)
    v = y / max(height - 1, 1)
    return y, x, u, v


def sv_kernel_params(mode, height, width, device=None, positions=None):
    """Per-pixel kernel parameters of a spatially variant mode.

    Args:
        mode (int): 1..6 (see the module docstring).
        height, width (int): size of the image the pattern spans.
        device: torch device of the result.
        positions (tuple | None): (ys, xs) 1-D index tensors (or ranges) of the pixels to return, e.g.
            ``(range(0, H, s), range(0, W, s))`` for the LR positions; None = every pixel.

    Returns:
        dict: ``sig1``, ``sig2``, ``theta`` float64 tensors (h, w) (variances, radians).
    """
    if mode not in SV_MODES:
        raise KULNetError(f"spatially variant mode {mode}: must be one of {list(SV_MODES)}")
    y, x, u, v = _coords(height, width, device)
    if positions is not None:
        ys, xs = (
            (t if torch.is_tensor(t) else torch.as_tensor(list(t))).to(device=device, dtype=torch.long)
            for t in positions
        )
        y, x, u, v = (t[ys][:, xs] for t in (y, x, u, v))
    cy, cx = (height - 1) / 2, (width - 1) / 2
    r = torch.sqrt((y - cy) ** 2 + (x - cx) ** 2) / max(math.hypot(cy, cx), 1e-12)
    zeros = torch.zeros_like(u)
    if mode == 1:
        s1 = 0.5 + 3.5 * u
        s2, th = s1, zeros
    elif mode == 2:
        s1, s2, th = zeros + 4.0, zeros + 1.0, math.pi * v
    elif mode == 3:
        s1 = 0.5 + 3.5 * r
        s2, th = s1, zeros
    elif mode == 4:
        table = torch.tensor([PAPER_KERNELS[i] for i in (0, 2, 6, 8)], dtype=torch.float64, device=device)
        idx = (y >= height / 2).long() * 2 + (x >= width / 2).long()
        s1, s2 = table[idx, 0], table[idx, 1]
        th = degrees_to_radians_authors(table[idx, 2])
    elif mode == 5:
        s1, s2, th = zeros + 4.0, zeros + 1.0, torch.atan2(y - cy, x - cx)
    else:
        s1 = 1.0 + 3.0 * u
        s2 = s1 * (0.25 + 0.75 * v)
        th = math.pi * (u + v) / 2
    return {"sig1": s1, "sig2": s2, "theta": th}


def sv_kernel_map(mode, height, width, scale, kernel_size=21, device=None, dtype=torch.float32,
                  positions=None):
    """Per-pixel kernels of a spatially variant mode.

    Args:
        mode (int): 1..6.
        height, width (int): image size the pattern spans.
        scale (int): SR scale (sets the shifted kernel grid, as for the invariant kernels).
        kernel_size (int): odd ``l``.
        device, dtype: of the result (kernels are computed in float64).
        positions (tuple | None): see :func:`sv_kernel_params`.

    Returns:
        Tensor: (1, l*l, h, w), every kernel sums to 1; expand it to a batch for free.
    """
    return _kernel_map(sv_kernel_params(mode, height, width, device, positions), kernel_size, scale, dtype)


def _kernel_map(p, kernel_size, scale, dtype):
    """Kernel map (1, l*l, h, w) of the per-pixel parameters ``p`` of :func:`sv_kernel_params`."""
    h, w = p["sig1"].shape
    flat = [p[k].reshape(-1) for k in ("sig1", "sig2", "theta")]
    chunks = []
    for start in range(0, h * w, _KERNEL_CHUNK):
        part = [t[start:start + _KERNEL_CHUNK] for t in flat]
        chunks.append(anisotropic_gaussian_kernels(*part, kernel_size, scale, dtype=dtype))
    kernels = torch.cat(chunks)  # (h*w, l, l)
    return kernels.reshape(h, w, -1).permute(2, 0, 1).unsqueeze(0)


def blur_per_pixel(hr, kernel_map, stride=1, max_chunk_bytes=64 * 2 ** 20):
    """Blur with a different kernel at every output pixel (replicate padding, correlation).

    Output pixel (i, j) is the correlation of kernel ``kernel_map[b, :, i, j]`` with the padded
    image centred on input pixel (i*stride, j*stride); with a constant map this equals
    ``blur`` (stride 1) or ``blur_subsample`` (stride s).

    Args:
        hr (Tensor): (B, C, H, W).
        kernel_map (Tensor): (B or 1, l*l, ceil(H/stride), ceil(W/stride)), odd ``l``.
        stride (int): 1 to blur every pixel, ``s`` to blur and subsample at once.
        max_chunk_bytes (int): bound on the unfolded patches held at once (rows are chunked).

    Returns:
        Tensor: (B, C, ceil(H/stride), ceil(W/stride)).
    """
    if hr.dim() != 4 or kernel_map.dim() != 4:
        raise KULNetError(f"blur_per_pixel: hr {tuple(hr.shape)}, kernel_map {tuple(kernel_map.shape)}: "
                          f"expected (B, C, H, W) and (B, l*l, h, w)")
    b, c, height, width = hr.shape
    l = math.isqrt(kernel_map.shape[1])
    oh, ow = -(-height // stride), -(-width // stride)
    if l * l != kernel_map.shape[1] or l % 2 == 0 or tuple(kernel_map.shape[2:]) != (oh, ow) \
            or kernel_map.shape[0] not in (1, b):
        raise KULNetError(f"kernel_map {tuple(kernel_map.shape)}: expected ({b}, l*l with odd l, {oh}, {ow})")
    kernel_map = kernel_map.to(device=hr.device, dtype=hr.dtype).expand(b, -1, -1, -1)
    p = l // 2
    padded = F.pad(hr, (p, p, p, p), mode="replicate")
    row_bytes = b * c * l * l * ow * hr.element_size()
    rows = max(1, min(oh, max_chunk_bytes // max(row_bytes, 1)))
    out = []
    for r0 in range(0, oh, rows):
        r1 = min(oh, r0 + rows)
        band = padded[:, :, r0 * stride:(r1 - 1) * stride + l]
        patches = F.unfold(band, l, stride=stride).view(b, c, l * l, -1)  # (B, C, l*l, n*ow)
        k = kernel_map[:, :, r0:r1].reshape(b, l * l, -1)
        out.append(torch.einsum("bckn,bkn->bcn", patches, k).view(b, c, r1 - r0, ow))
    return torch.cat(out, dim=2)


def degrade_spatially_variant(hr, mode, scale, kernel_size=21, noise=0.0, generator=None):
    """Spatially variant test degradation: per-pixel blur, subsample, fixed noise, quantisation.

    Kernels are synthesised only at the LR positions (every ``scale``-th HR pixel), so the map is
    (1, l*l, H/s, W/s).

    Args:
        hr (Tensor): (B, C, H, W) in [0, 1], H and W multiples of ``scale``.
        mode (int): 1..6.
        scale (int): SR scale.
        kernel_size (int): odd ``l``.
        noise (float): fixed noise level in 0..255 units.
        generator (torch.Generator | None): for the noise, on ``hr.device``.

    Returns:
        DegradedBatch: with ``kernel_map`` (B, l*l, h, w) and ``kernel``/``sig1``/``sig2``/``theta``
        of the centre LR pixel.
    """
    b, _, height, width = hr.shape
    if height % scale or width % scale:
        raise KULNetError(f"hr size {height}x{width}: not a multiple of scale {scale}; mod-crop first")
    pos = (range(0, height, scale), range(0, width, scale))
    params = sv_kernel_params(mode, height, width, hr.device, pos)
    kmap = _kernel_map(params, kernel_size, scale, torch.float32)
    lr_blur = blur_per_pixel(hr, kmap, stride=scale)
    level = torch.full((b,), float(noise) / 255.0, device=hr.device)
    lr = add_noise(lr_blur, level, generator) if noise > 0 else torch.clamp(lr_blur, 0, 1)
    h, w = lr_blur.shape[-2:]
    cy, cx = h // 2, w // 2
    centre = kmap[0, :, cy, cx].reshape(kernel_size, kernel_size)
    return DegradedBatch(
        lr_clean=quantize(lr_blur),
        lr=quantize(lr),
        kernel=centre.expand(b, -1, -1).float(),
        sig1=params["sig1"][cy, cx].float().expand(b),
        sig2=params["sig2"][cy, cx].float().expand(b),
        theta=params["theta"][cy, cx].float().expand(b),
        noise=level,
        kernel_map=kmap.expand(b, -1, -1, -1),
    )
