"""Tiled restoration: one shared kernel, exact for local networks, bounded error for KULNet."""
import pytest
import torch
import torch.nn.functional as F
from _eval_helpers import tiny_model

from evaluation.tiling import (
    AUTO_TILE_HR,
    MAX_UNTILED_HR_PIXELS,
    auto_tile,
    tile_alignment,
    tiled_forward,
    tiled_restore,
)


def _smooth_lr(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(2, h // 4), max(2, w // 4), generator=g)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _local_restore(scale, radius):
    """A non-linear SR function with a receptive field of ``radius`` LR pixels (plus the kernel)."""
    torch.manual_seed(3)
    w1 = torch.randn(6, 3, 2 * radius + 1, 2 * radius + 1) * 0.1

    def restore(lr, kernel):
        feat = torch.tanh(F.conv2d(F.pad(lr, (radius,) * 4, mode="reflect"), w1))
        feat = feat * kernel.amax((-2, -1)).view(-1, 1, 1, 1)  # uses the shared kernel
        up = F.interpolate(feat[:, :3] - feat[:, 3:], scale_factor=scale, mode="nearest")
        return up + F.interpolate(lr, scale_factor=scale, mode="nearest")

    return restore


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_equals_untiled_for_a_local_network(scale):
    radius, overlap = 3, 8  # context overlap - overlap // 2 = 4 > radius
    restore = _local_restore(scale, radius)
    lr = _smooth_lr(37, 53)
    kernel = torch.rand(1, 21, 21)
    full = restore(lr, kernel)
    tiled = tiled_restore(restore, lr, kernel, scale, tile=12, overlap=overlap)
    assert tiled.shape == full.shape
    assert torch.allclose(tiled, full, atol=1e-6)
    # too little overlap for the receptive field: the seams show
    assert (tiled_restore(restore, lr, kernel, scale, tile=12, overlap=2) - full).abs().max() > 1e-3


def test_one_tile_covering_the_image_is_the_untiled_run():
    model = tiny_model(scale=4)
    lr = _smooth_lr(20, 28)
    with torch.inference_mode():
        ref = model(lr)
        for tile in (None, 0, 28, 100):
            out = tiled_forward(model, lr, None, 4, tile=tile, overlap=8)
            assert torch.equal(out.sr, ref.sr) and torch.equal(out.kernel, ref.kernel)
        # the estimate-then-restore path on one tile is the same computation as forward
        k, _, _ = model.estimate_kernel(lr)
        assert torch.equal(tiled_restore(model.restore, lr, k, 4, tile=None), ref.sr)


def test_kulnet_tiles_share_one_kernel_and_stay_close():
    model = tiny_model(scale=4, positive_thresholds=True)  # see make_thresholds_positive
    lr = _smooth_lr(40, 40, seed=1)
    with torch.inference_mode():
        ref = model(lr)
        errors = {}
        for overlap in (0, 16):
            out = tiled_forward(model, lr, None, 4, tile=16, overlap=overlap)
            assert torch.equal(out.kernel, ref.kernel)  # estimated once on the whole image
            assert torch.equal(out.log_var, ref.log_var)
            errors[overlap] = float((out.sr - ref.sr).abs().max())
        nb = tiled_forward(model, lr, ref.kernel, 4, tile=16, overlap=16)
    assert nb.mean is None and nb.sr.shape == ref.sr.shape
    # the error is bounded (below one 8-bit level here) and falls with the overlap
    assert errors[16] < 1 / 255
    assert errors[16] < errors[0] / 10


def test_alignment_and_auto_tile():
    assert [tile_alignment(s) for s in (1, 2, 3, 4, 8)] == [16, 8, 16, 4, 2]
    assert auto_tile((1, 3, 100, 120), None, 4) is None  # small: whole
    side = int((MAX_UNTILED_HR_PIXELS ** 0.5) // 4) + 8
    assert auto_tile((1, 3, side, side), None, 4) == AUTO_TILE_HR // 4
    assert auto_tile((1, 3, 100, 120), 64, 4) == 64
    assert auto_tile((1, 3, 100, 120), 500, 4) is None  # the tile covers the image
