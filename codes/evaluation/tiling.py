"""Tiled restoration of large images with ONE kernel for the whole image.

The kernel estimator runs once on the whole LR image (its kernel is a spatial mean over all pixels,
so estimating it per tile would give every tile a different kernel and visible seams); every tile is
then restored by the SR network with that shared kernel (``KULNet.restore(lr_tile, kernel)``).
Memory is bounded by the tile size for the SR part, which works at HR resolution and dominates.

Layout. The LR image is split into cores of ``tile x tile`` pixels. Each core is restored from a
patch that extends ``overlap`` LR pixels beyond it on every side (clipped at the image border); the
patch start is rounded down to a multiple of ``16 / gcd(16, s)`` LR pixels so that the DLSM U-Net's
four 2x2 poolings (16 HR pixels) see the same grid as in the untiled run. A patch's SR output has
weight 1 on its core and a linear ramp over ``overlap // 2`` LR pixels beyond it (0 further out);
the output is the weighted mean. Every output pixel therefore comes from patches that have at least
``overlap - overlap // 2`` LR pixels of real context around it.

Exactness. With one tile covering the whole image the result is the untiled one, bit for bit (the
network is called once on the whole image). With real tiles it is exact for any network whose
receptive field is under ``overlap - overlap // 2`` LR pixels (tested with a local toy network).
KULNet's SR part is not local: the gradient steps (21x21 kernel plus bicubic resampling) and the
U-Net (16x pooling) of four stages reach a few hundred HR pixels, with contributions that decay
with the distance, so tiled outputs differ from untiled ones by an amount that falls as ``overlap``
grows (``tests/test_tiling.py`` bounds it), and a difference can also flip one of the LSM step's
masks at a pixel. Tiling is therefore used only where the untiled run does not fit in memory
(:func:`auto_tile`).

Public API:
    tile_alignment, tiled_restore, tiled_forward, auto_tile
"""
import math

import torch

from models.modules.kulnet import KULNetOutput

DEFAULT_OVERLAP = 32
# Untiled KULNet needs about 2.5 GB per HR megapixel on the CPU, so auto_tile leaves images up to 4 HR
# megapixels whole and splits larger ones into cores of 1024 HR pixels (patches of about 4 GB).
MAX_UNTILED_HR_PIXELS = 2048 * 2048
AUTO_TILE_HR = 1024


def tile_alignment(scale):
    """LR multiple of the patch starts that keeps the U-Net's 16-pixel HR pooling grid aligned."""
    return 16 // math.gcd(16, int(scale))


def auto_tile(lr_shape, tile, scale):
    """Resolve the ``tile`` option: None/0 means automatic (untiled up to MAX_UNTILED_HR_PIXELS).

    Args:
        lr_shape (tuple): (..., h, w) of the LR image.
        tile (int | None): the user's tile size in LR pixels (None or 0: automatic).
        scale (int): s.

    Returns:
        int | None: a tile size in LR pixels, or None for an untiled run.
    """
    h, w = lr_shape[-2:]
    if not tile:
        if h * w * scale * scale <= MAX_UNTILED_HR_PIXELS:
            return None
        tile = AUTO_TILE_HR // scale
    return None if tile >= max(h, w) else int(tile)


def _spans(length, tile, overlap, align):
    """(core_start, core_end, patch_start, patch_end) along one axis, in LR pixels."""
    spans = []
    for c0 in range(0, length, tile):
        c1 = min(c0 + tile, length)
        p0 = max(0, c0 - overlap) // align * align
        p1 = min(length, c1 + overlap)
        spans.append((c0, c1, p0, p1))
    return spans


def _weights(c0, c1, p0, p1, ramp, scale, device, dtype):
    """1-D HR weights of one patch: 1 on the core, a linear ramp of ``ramp`` HR pixels, then 0."""
    pos = torch.arange(p0 * scale, p1 * scale, device=device, dtype=dtype)
    dist = torch.clamp(torch.maximum(c0 * scale - pos, pos - (c1 * scale - 1)), min=0)
    if ramp <= 0:
        return (dist == 0).to(dtype)
    return torch.clamp(1 - dist / ramp, min=0)


def tiled_restore(restore, lr, kernel, scale, tile, overlap=DEFAULT_OVERLAP):
    """Restore ``lr`` tile by tile with one shared kernel.

    Args:
        restore (callable): ``restore(lr_patch (B, 3, ph, pw), kernel (B, l, l)) -> (B, 3, s*ph, s*pw)``,
            e.g. ``KULNet.restore``.
        lr (Tensor): (B, 3, h, w) in [0, 1].
        kernel (Tensor): (B, l, l), shared by all tiles.
        scale (int): s.
        tile (int | None): core size in LR pixels; None, 0 or >= the image: one call, untiled.
        overlap (int): context in LR pixels on each side of a core (see the module notes).

    Returns:
        Tensor: (B, 3, s*h, s*w) on ``lr.device``.
    """
    h, w = lr.shape[-2:]
    if not tile or tile >= max(h, w):
        return restore(lr, kernel)
    align = tile_alignment(scale)
    ramp = (overlap // 2) * scale
    out = weight = None
    for c0y, c1y, p0y, p1y in _spans(h, tile, overlap, align):
        for c0x, c1x, p0x, p1x in _spans(w, tile, overlap, align):
            sr = restore(lr[..., p0y:p1y, p0x:p1x], kernel)
            if out is None:
                out = sr.new_zeros(sr.shape[:2] + (h * scale, w * scale))
                weight = sr.new_zeros((1, 1, h * scale, w * scale))
            wy = _weights(c0y, c1y, p0y, p1y, ramp, scale, sr.device, sr.dtype)
            wx = _weights(c0x, c1x, p0x, p1x, ramp, scale, sr.device, sr.dtype)
            w2 = wy[:, None] * wx[None, :]
            ys, xs = slice(p0y * scale, p1y * scale), slice(p0x * scale, p1x * scale)
            out[..., ys, xs] += sr * w2
            weight[..., ys, xs] += w2
    return out / weight


def tiled_forward(model, lr, kernel=None, scale=None, tile=None, overlap=DEFAULT_OVERLAP):
    """KULNet forward pass with the SR part tiled (the kernel estimated once on the whole image).

    Args:
        model: a KULNet (``forward``, ``estimate_kernel``, ``restore``, ``scale``).
        lr (Tensor): (B, 3, h, w) in [0, 1].
        kernel (Tensor | None): (B, l, l) known kernel (non-blind path), None: estimate it.
        scale (int | None): s (default ``model.scale``).
        tile (int | None): core size in LR pixels; None/0 or >= the image: the plain ``model(lr, kernel)``.
        overlap (int): LR context on each side of a core.

    Returns:
        KULNetOutput: sr (B, 3, s*h, s*w), kernel (B, l, l), mean and log_var (None when the kernel
        was given).
    """
    h, w = lr.shape[-2:]
    if not tile or tile >= max(h, w):
        return model(lr, kernel=kernel)
    scale = model.scale if scale is None else scale
    mean = log_var = None
    if kernel is None:
        kernel, mean, log_var = model.estimate_kernel(lr)[:3]
    sr = tiled_restore(model.restore, lr, kernel, scale, tile, overlap)
    return KULNetOutput(sr, kernel, mean, log_var)
