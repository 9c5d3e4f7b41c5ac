"""Metrics against closed forms, hand-computed values and scikit-image's SSIM."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from evaluation.metrics import (
    calculate_psnr,
    calculate_psnr_batch,
    calculate_ssim,
    calculate_ssim_batch,
    kernel_psnr,
    rgb_to_y,
)


def _img(h=40, w=36, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth(h=48, w=44, seed=0):
    """A natural-ish image: smooth gradients plus noise, uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] * np.array([1.0, 0.7, 0.4])
    noise = np.random.default_rng(seed).normal(0, 12, (h, w, 3))
    return np.clip(np.round(base + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("rgb,want", [((0, 0, 0), 16.0), ((255, 255, 255), 235.0),
                                      ((255, 0, 0), 16 + 65.481), ((0, 255, 0), 16 + 128.553),
                                      ((0, 0, 255), 16 + 24.966), ((128, 64, 32), None)])
def test_rgb_to_y_pure_colours(rgb, want):
    if want is None:
        want = 16 + (65.481 * 128 + 128.553 * 64 + 24.966 * 32) / 255.0
    img = np.zeros((2, 3, 3), np.uint8) + np.array(rgb, np.uint8)
    np.testing.assert_allclose(rgb_to_y(img), np.full((2, 3), want), atol=1e-10)
    np.testing.assert_allclose(rgb_to_y(img.astype(np.float64) + 0.3), rgb_to_y(img), atol=1e-12)  # 8-bit rounding


def test_psnr_constant_offset_rgb():
    img = np.full((20, 20, 3), 100, np.uint8)
    other = img + 5
    assert calculate_psnr(img, other, 0, test_y_channel=False) == pytest.approx(10 * math.log10(255**2 / 25))
    # On Y, a +5 offset on all channels is a Y offset of 5 * (65.481 + 128.553 + 24.966) / 255 = 5 * 219/255.
    dy = 5 * 219.0 / 255.0
    assert calculate_psnr(img, other, 4) == pytest.approx(10 * math.log10(255**2 / dy**2))


def test_psnr_crop_border_and_identical():
    img = _img()
    other = img.copy()
    other[:3] = 0  # differences only in the top 3 rows
    assert calculate_psnr(img, other, 3) == float("inf")
    assert calculate_psnr(img, img, 0) == float("inf")
    other = img.astype(np.int32)
    other[10, 10, 0] = (other[10, 10, 0] + 51) % 256
    d = (other[10, 10, 0] - int(img[10, 10, 0])) * 65.481 / 255.0
    h, w = 40 - 8, 36 - 8
    assert calculate_psnr(img, other.astype(np.uint8), 4) == pytest.approx(10 * math.log10(255**2 * h * w / d**2))


def test_psnr_rounds_float_inputs():
    img = _img()
    assert calculate_psnr(img, img.astype(np.float64) + 0.4, 2) == float("inf")


def test_ssim_identical_is_one():
    img = _smooth()
    assert calculate_ssim(img, img, 4) == pytest.approx(1.0, abs=1e-12)
    assert calculate_ssim(img, img, 0, test_y_channel=False) == pytest.approx(1.0, abs=1e-12)


def _skimage_ssim(a, b):
    # skimage filters the whole image with a reflect border, then averages over the map cropped by
    # (win_size - 1) / 2 = 5: that is exactly the valid region of an 11x11 window.
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255)


def test_ssim_matches_skimage_on_y():
    a, b = _smooth(seed=0), _smooth(seed=1)
    ya, yb = rgb_to_y(a)[4:-4, 4:-4], rgb_to_y(b)[4:-4, 4:-4]
    ours = calculate_ssim(a, b, 4)
    assert 0.2 < ours < 0.99
    assert ours == pytest.approx(_skimage_ssim(ya, yb), abs=1e-8)


def test_ssim_matches_skimage_on_rgb():
    a, b = _smooth(seed=2), _smooth(seed=3)
    ref = np.mean([_skimage_ssim(a[..., c].astype(np.float64), b[..., c].astype(np.float64)) for c in range(3)])
    assert calculate_ssim(a, b, 0, test_y_channel=False) == pytest.approx(ref, abs=1e-8)


def test_torch_batch_metrics_match_numpy():
    imgs = [(_smooth(seed=s), _smooth(seed=s + 10)) for s in range(3)]
    to_t = lambda x: torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    x, y = to_t([a for a, _ in imgs]), to_t([b for _, b in imgs])
    for y_ch in (True, False):
        psnr = calculate_psnr_batch(x, y, 3, test_y_channel=y_ch)
        ssim = calculate_ssim_batch(x, y, 3, test_y_channel=y_ch)
        for i, (a, b) in enumerate(imgs):
            assert psnr[i].item() == pytest.approx(calculate_psnr(a, b, 3, y_ch), abs=1e-9)
            assert ssim[i].item() == pytest.approx(calculate_ssim(a, b, 3, y_ch), abs=1e-9)


def test_kernel_psnr_closed_form():
    k = np.zeros((21, 21))
    k[10, 10] = 1.0
    k2 = np.full((21, 21), 1.0 / 441)
    rmse = math.sqrt(((1 - 1 / 441) ** 2 + 440 * (1 / 441) ** 2) / 441)
    assert kernel_psnr(k2, k) == pytest.approx(20 * math.log10(1 / rmse))
    assert kernel_psnr(torch.from_numpy(k2).float(), torch.from_numpy(k)) == pytest.approx(20 * math.log10(1 / rmse),
                                                                                           rel=1e-6)
    assert kernel_psnr(k, k) == float("inf")
    delta = np.zeros((21, 21))
    delta[0, 0] = 0.01  # RMSE = 0.01 / 21 exactly
    assert kernel_psnr(k + delta, k) == pytest.approx(20 * math.log10(21 / 0.01))
    batch = kernel_psnr(np.stack([k2, k + delta]), np.stack([k, k]))
    assert batch == pytest.approx((20 * math.log10(1 / rmse) + 20 * math.log10(21 / 0.01)) / 2)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differ in shape"):
        calculate_psnr(_img(10, 10), _img(10, 12), 0)
