"""Spatially variant test degradation: the authors' patterns ``sv_mode`` 1-6 (taken over from MANet).

The HR image is cut into blocks of 40x40 pixels from the top-left (the last row and column of blocks
may be smaller) and every pixel of a block is blurred with the block's anisotropic Gaussian kernel
(sig1, sig2 variances on the shifted l'xl' grid, as every kernel of :mod:`data.kernels`); the blurred
image is subsampled from (0, 0), given noise and quantised as in the invariant degradation. With
``n_h x n_w`` blocks, block row ``i`` and column ``j`` (from 0), ``a = (2.5 - 0.175) s``, ``b = 0.175 s``:

    mode 1  sig1 = a + b,          sig2 = a i / n_h + b,  theta = 0
    mode 2  sig1 = a j / n_w + b,  sig2 = a i / n_h + b,  theta = 0
    mode 3  sig1 = a + b,          sig2 = b,              theta = pi i / n_h
    mode 4  sig1 = a j / n_w + b,  sig2 = a i / n_h + b,  theta = pi i / n_h
    mode 5  sig1, sig2 ~ U(b, a + b), theta ~ U(0, pi): NumPy draws in block order (rows outer), one
            more draw per block discarded (the isotropic-or-not draw of the authors' kernel function)
    mode 6  sig1 = a + b,          sig2 = b,              theta = pi/4 where i + j is even, else 3 pi/4

theta is in radians here (not the deg/180*3.14 of the invariant test kernels). The parameters are
computed in float64 and rounded to float32, as the authors' are. Their test loop seeds NumPy's global
generator with 0; here mode 5 draws from a generator seeded with ``seed`` for every image, so one
image's pattern depends on its size and the seed alone (and equals theirs for the first image).

The blur loops over the blocks (one strided correlation each, never over pixels): every LR pixel
(y, x) is the correlation of the replicate-padded HR around (s y, s x) with the kernel of the block
that holds HR pixel (s y, s x), as the authors' per-pixel blur followed by the subsampling.

Public API: SV_MODES, SV_BLOCK, authors_block_params, block_kernels, blur_blocks, block_weights,
degrade_authors_sv, blur_per_pixel
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from data.degradation import DegradedBatch, add_noise, correlate_padded, quantize
from data.kernels import anisotropic_gaussian_kernels
from utils.errors import KULNetError

SV_MODES = (1, 2, 3, 4, 5, 6)
SV_BLOCK = 40  # HR pixels per block side


def _check_mode(mode):
    if mode not in SV_MODES:
        raise KULNetError(f"sv_mode {mode!r}: the authors' spatially variant patterns are "
                          f"{', '.join(map(str, SV_MODES))} (0: one kernel per image)")


def authors_block_params(mode, height, width, scale, seed=0, block=SV_BLOCK):
    """The kernel parameters of every block of an HR image of ``height x width`` (see the module docstring).

    Args:
        mode (int): 1..6. scale (int): SR scale ``s``. seed (int): mode 5's NumPy seed.
        block (int): block side in HR pixels.

    Returns:
        np.ndarray: float64 (n_h, n_w, 3), (sig1, sig2, theta) per block, rounded to float32 values.
    """
    _check_mode(mode)
    n_h, n_w = -(-height // block), -(-width // block)
    i, j = np.meshgrid(np.arange(n_h, dtype=np.float64), np.arange(n_w, dtype=np.float64), indexing="ij")
    a, b = (2.5 - 0.175) * scale, 0.175 * scale
    rows, cols = a * i / n_h + b, a * j / n_w + b
    tilt = math.pi * i / n_h
    full, low, zero = np.full_like(i, a + b), np.full_like(i, b), np.zeros_like(i)
    if mode == 5:
        u = np.random.RandomState(seed).random_sample((n_h, n_w, 4))  # the 4th draw is discarded
        spread = (a + b) - b  # NumPy's uniform(low, high) is low + (high - low) * u
        params = (b + spread * u[..., 0], b + spread * u[..., 1], math.pi * u[..., 2])
    else:
        checker = np.where((i + j) % 2 == 0, math.pi / 4, 3 * math.pi / 4)
        params = {1: (full, rows, zero), 2: (cols, rows, zero), 3: (full, low, tilt),
                  4: (cols, rows, tilt), 6: (full, low, checker)}[mode]
    return np.stack(params, axis=-1).astype(np.float32).astype(np.float64)


def block_kernels(params, kernel_size=21, scale=4, device=None):
    """Kernels (n_h, n_w, l, l) float32 of block parameters (n_h, n_w, 3) from :func:`authors_block_params`."""
    p = torch.as_tensor(params, dtype=torch.float64, device=device)
    n_h, n_w = p.shape[:2]
    flat = p.reshape(-1, 3)
    k = anisotropic_gaussian_kernels(flat[:, 0], flat[:, 1], flat[:, 2], kernel_size, scale)
    return k.reshape(n_h, n_w, kernel_size, kernel_size)


def _lr_ranges(size, scale, block):
    """For each block along one axis: the LR indices [start, stop) whose HR pixel (s * index) lies in it."""
    n_lr = -(-size // scale)
    starts = [-(-block * n // scale) for n in range(-(-size // block))]
    return [(start, min(n_lr, stop)) for start, stop in zip(starts, starts[1:] + [n_lr])]


def blur_blocks(hr, kernels, scale, block=SV_BLOCK):
    """Blur with a kernel per block and subsample from (0, 0) (replicate padding, correlation).

    Args:
        hr (Tensor): (B, C, H, W).
        kernels (Tensor): (n_h, n_w, l, l) shared by the batch, or (B, n_h, n_w, l, l); odd ``l``.
        scale (int): subsampling step ``s``. block (int): block side in HR pixels.

    Returns:
        Tensor: (B, C, ceil(H / s), ceil(W / s)).
    """
    b, c, height, width = hr.shape
    rows, cols = _lr_ranges(height, scale, block), _lr_ranges(width, scale, block)
    if kernels.dim() == 4:
        kernels = kernels.unsqueeze(0)
    l = kernels.shape[-1]
    if kernels.shape[1:3] != (len(rows), len(cols)) or kernels.shape[0] not in (1, b) or l % 2 == 0:
        raise KULNetError(f"block kernels {tuple(kernels.shape)}: expected ({len(rows)}, {len(cols)}, l, l) with "
                          f"odd l for a {height}x{width} image in blocks of {block}")
    kernels = kernels.to(device=hr.device, dtype=hr.dtype).expand(b, -1, -1, -1, -1)
    p = l // 2
    padded = F.pad(hr, (p, p, p, p), mode="replicate")
    out = hr.new_empty(b, c, rows[-1][1], cols[-1][1])
    for i, (y0, y1) in enumerate(rows):
        for j, (x0, x1) in enumerate(cols):
            region = padded[:, :, scale * y0:scale * (y1 - 1) + l, scale * x0:scale * (x1 - 1) + l]
            out[:, :, y0:y1, x0:x1] = correlate_padded(region, kernels[:, i, j], scale)
    return out


def block_weights(height, width, scale, block=SV_BLOCK):
    """float64 (n_h, n_w): the share of the LR pixels that each block's kernel blurs (sums to 1)."""
    rows, cols = _lr_ranges(height, scale, block), _lr_ranges(width, scale, block)
    counts = np.outer([y1 - y0 for y0, y1 in rows], [x1 - x0 for x0, x1 in cols]).astype(np.float64)
    return counts / counts.sum()


def degrade_authors_sv(hr, mode, scale, kernel_size=21, noise=0.0, generator=None, seed=0):
    """The authors' spatially variant test degradation of a batch (one pattern for the whole batch: their
    code runs one image at a time).

    Args:
        hr (Tensor): (B, C, H, W) in [0, 1], H and W multiples of ``scale``.
        mode (int): 1..6. scale (int): SR scale. kernel_size (int): odd ``l``.
        noise (float): fixed noise level, 0..255 units.
        generator (torch.Generator | None): the noise, on ``hr.device``. seed (int): mode 5's draws.

    Returns:
        DegradedBatch: ``lr_clean``, ``lr`` as in the invariant case; ``kernel`` (B, l, l) the mean of the
        LR pixels' kernels (what one estimated kernel is compared with); sig1/sig2/theta NaN.
    """
    b, _, height, width = hr.shape
    if height % scale or width % scale:
        raise KULNetError(f"hr size {height}x{width}: not a multiple of scale {scale}; mod-crop the image first")
    kernels = block_kernels(authors_block_params(mode, height, width, scale, seed), kernel_size, scale, hr.device)
    lr_blur = blur_blocks(hr, kernels, scale)
    level = torch.full((b,), float(noise) / 255.0, device=hr.device)
    lr = add_noise(lr_blur, level, generator) if noise > 0 else torch.clamp(lr_blur, 0.0, 1.0)
    weights = torch.as_tensor(block_weights(height, width, scale), device=hr.device)
    mean = (kernels.double() * weights[..., None, None]).sum(dim=(0, 1)).float()
    nan = torch.full((b,), float("nan"), device=hr.device)
    return DegradedBatch(lr_clean=quantize(lr_blur), lr=quantize(lr), kernel=mean.expand(b, -1, -1),
                         sig1=nan, sig2=nan, theta=nan, noise=level)


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
