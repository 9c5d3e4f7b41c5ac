"""Batched degradation (data/degradation.py) and spatially variant blur (data/spatially_variant.py)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data.degradation import (
    Degradation,
    DegradedBatch,
    add_noise,
    blur,
    blur_subsample,
    jpeg_compress,
    paper_test_degradation,
    quantize,
    subsample,
    validation_degradation,
)
from data.kernels import anisotropic_gaussian_kernels, make_kernels, paper_kernels, random_kernel_params
from data.spatially_variant import blur_per_pixel
from utils.errors import KULNetError


def _rand_images(b=3, c=3, h=12, w=10, seed=0, dtype=torch.float64):
    return torch.rand((b, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _rand_kernels(b, l=7, seed=1, dtype=torch.float64):
    k = torch.rand((b, l, l), generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return k / k.sum(dim=(1, 2), keepdim=True)


def _slow_blur(hr, kernels):
    """Per-image loop: replicate pad, F.conv2d with the kernel repeated over channels (groups=C)."""
    out = []
    for img, k in zip(hr, kernels):
        c = img.shape[0]
        p = k.shape[-1] // 2
        padded = F.pad(img[None], (p, p, p, p), mode="replicate")
        out.append(F.conv2d(padded, k.expand(c, 1, -1, -1), groups=c)[0])
    return torch.stack(out)


def _numpy_correlate(img, k):
    """Explicit correlation (no flip) with edge padding, one channel, pure numpy loops."""
    p = k.shape[0] // 2
    padded = np.pad(img, p, mode="edge")
    out = np.zeros_like(img)
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            out[y, x] = (padded[y:y + k.shape[0], x:x + k.shape[1]] * k).sum()
    return out


# ----------------------------------------------------------------------------- blur / subsample
def test_blur_equals_per_image_conv_loop():
    hr = _rand_images(4, 3, 13, 11)
    k = _rand_kernels(4, 7)
    assert torch.allclose(blur(hr, k), _slow_blur(hr, k), atol=1e-12)


def test_blur_is_correlation_with_replicate_padding():
    hr = _rand_images(1, 1, 6, 5, dtype=torch.float64)
    k = _rand_kernels(1, 5)
    ref = _numpy_correlate(hr[0, 0].numpy(), k[0].numpy())
    np.testing.assert_allclose(blur(hr, k)[0, 0].numpy(), ref, atol=1e-12)
    # a kernel wider than the image: replicate padding still works
    k21 = _rand_kernels(1, 21)
    ref21 = _numpy_correlate(hr[0, 0].numpy(), k21[0].numpy())
    np.testing.assert_allclose(blur(hr, k21)[0, 0].numpy(), ref21, atol=1e-12)


def test_blur_constant_image_is_unchanged():
    hr = torch.full((2, 3, 9, 8), 0.37, dtype=torch.float64)
    k = paper_kernels(4, dtype=torch.float64)[:2]
    assert torch.allclose(blur(hr, k), hr, atol=1e-12)


@pytest.mark.parametrize("dy,dx", [(0, 0), (-3, 2), (4, -1)])
def test_delta_kernel_is_a_predictable_shift(dy, dx):
    hr = _rand_images(2, 3, 10, 9)
    k = torch.zeros(2, 21, 21, dtype=torch.float64)
    k[:, 10 + dy, 10 + dx] = 1
    out = blur(hr, k)
    ys = torch.arange(10).add(dy).clamp(0, 9)
    xs = torch.arange(9).add(dx).clamp(0, 8)
    assert torch.equal(out, hr[:, :, ys][:, :, :, xs])
    # delta at the centre + subsample: the LR is the (0,0)-aligned HR grid
    if dy == dx == 0:
        assert torch.equal(blur_subsample(hr, k, 3), hr[..., ::3, ::3])


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(12, 24), (13, 14)])
def test_strided_blur_equals_blur_then_subsample(scale, size):
    hr = _rand_images(3, 3, *size, dtype=torch.float32)
    g = torch.Generator().manual_seed(scale)
    k = make_kernels(random_kernel_params(3, g), 21, scale)
    two_step = subsample(blur(hr, k), scale)
    one_step = blur_subsample(hr, k, scale)
    assert one_step.shape == two_step.shape == (3, 3, -(-size[0] // scale), -(-size[1] // scale))
    assert torch.allclose(one_step, two_step, atol=1e-6)


def test_subsample_starts_at_origin_and_takes_ceil():
    x = torch.arange(7 * 9, dtype=torch.float32).view(1, 1, 7, 9)
    y = subsample(x, 4)
    assert y.shape == (1, 1, 2, 3)
    assert y[0, 0].tolist() == [[0, 4, 8], [36, 40, 44]]


def test_blur_rejects_bad_kernels():
    hr = _rand_images(2)
    with pytest.raises(KULNetError):
        blur(hr, torch.ones(2, 4, 4) / 16)  # even size
    with pytest.raises(KULNetError):
        blur(hr, torch.ones(3, 5, 5) / 25)  # batch mismatch
    with pytest.raises(KULNetError):
        blur(hr[0], torch.ones(2, 5, 5) / 25)  # not 4-D


# ----------------------------------------------------------------------------- noise / quantise
def test_add_noise_matches_per_image_closed_form():
    x = _rand_images(3, 3, 8, 8, dtype=torch.float32)
    sigma = torch.tensor([0.0, 0.05, 0.2])
    out = add_noise(x, sigma, torch.Generator().manual_seed(7))
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    for b in range(3):
        ref = torch.clamp(x[b] + sigma[b] * n[b], 0, 1)
        assert torch.allclose(out[b], ref, atol=1e-7)
    assert torch.equal(out[0], x[0])
    assert out.min() >= 0 and out.max() <= 1


def test_add_noise_level_is_the_std():
    x = torch.full((2, 1, 200, 200), 0.5)
    out = add_noise(x, torch.tensor([5 / 255, 10 / 255]), torch.Generator().manual_seed(0))
    std = (out - 0.5).flatten(1).std(dim=1)
    assert std[0].item() == pytest.approx(5 / 255, rel=0.02)
    assert std[1].item() == pytest.approx(10 / 255, rel=0.02)


def test_quantize_per_element_and_idempotent():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = quantize(x)
    ref = np.round(x.numpy() * 255) / 255
    np.testing.assert_allclose(q.numpy(), ref, atol=1e-15)
    assert torch.equal(quantize(q), q)
    assert torch.allclose(q * 255, (q * 255).round(), atol=1e-9)
    assert torch.equal(quantize(torch.tensor([-0.1, 1.2])), torch.tensor([0.0, 1.0]))


def test_jpeg_per_image_and_on_8bit_grid():
    pytest.importorskip("cv2")
    x = _rand_images(2, 3, 16, 16, dtype=torch.float32)
    q = torch.tensor([30, 95])
    out = jpeg_compress(x, q)
    assert out.shape == x.shape
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)
    single = jpeg_compress(x[1:], q[1:])
    assert torch.equal(out[1:], single)
    # lower quality loses more
    err = (out - x).abs().flatten(1).mean(1)
    assert err[0] > err[1]


# ----------------------------------------------------------------------------- Degradation
def test_degradation_is_deterministic_under_a_seed():
    hr = _rand_images(4, 3, 16, 16, dtype=torch.float32)
    deg = Degradation(4)
    a = deg(hr, torch.Generator().manual_seed(0))
    b = deg(hr, torch.Generator().manual_seed(0))
    c = deg(hr, torch.Generator().manual_seed(1))
    for field in ("lr", "lr_clean", "kernel", "sig1", "sig2", "theta", "noise"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.lr, c.lr) and not torch.equal(a.kernel, c.kernel)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degradation_shapes_ranges_and_params(scale):
    hr = _rand_images(5, 3, 6 * scale, 4 * scale, dtype=torch.float32)
    out = Degradation(scale)(hr, torch.Generator().manual_seed(scale))
    assert isinstance(out, DegradedBatch)
    assert out.lr.shape == out.lr_clean.shape == (5, 3, 6, 4)
    assert out.kernel.shape == (5, 21, 21) and out.kernel.dtype == torch.float32
    assert torch.allclose(out.kernel.sum(dim=(1, 2)), torch.ones(5), atol=1e-5)
    for t in (out.lr, out.lr_clean):
        assert t.min() >= 0 and t.max() <= 1
        assert torch.allclose(t * 255, (t * 255).round(), atol=1e-4)
    assert ((out.noise >= 0) & (out.noise <= 25 / 255)).all()
    assert ((out.sig2 <= out.sig1) & (out.sig1 <= 4.0) & (out.sig2 >= 0.2)).all()
    ref_k = anisotropic_gaussian_kernels(out.sig1, out.sig2, out.theta, 21, scale)
    assert torch.allclose(out.kernel, ref_k, atol=1e-7)
    assert out.jpeg_quality is None


def test_degradation_batch_equals_single_images():
    hr = _rand_images(3, 3, 16, 12, dtype=torch.float64)
    out = Degradation(4)(hr, torch.Generator().manual_seed(0))
    # clean LR: each image through the two-step slow path with its own kernel
    slow = quantize(subsample(_slow_blur(hr, out.kernel.double()), 4))
    assert torch.allclose(out.lr_clean, slow, atol=1e-9)
    # noisy LR: redraw the same random stream (kernel params, levels, noise) by hand
    g = torch.Generator().manual_seed(0)
    random_kernel_params(3, g)
    level = torch.rand(3, generator=g) * (25 / 255)
    assert torch.allclose(out.noise, level)
    blurred = subsample(_slow_blur(hr, out.kernel.double()), 4)
    n = torch.randn(blurred.shape, generator=g, dtype=torch.float64)
    for b in range(3):
        ref = quantize(torch.clamp(blurred[b] + level[b].double() * n[b], 0, 1))
        # the blur paths differ by ~1e-16; allow one 8-bit step in the rare rounding tie
        assert (out.lr[b] - ref).abs().max() <= 1 / 255 + 1e-9
        assert (out.lr[b] != ref).float().mean() < 0.01
    # a single image, given its kernel, reproduces its clean LR
    one = Degradation(4, random_noise=False)(hr[1:2], kernel=out.kernel[1])
    assert torch.allclose(one.lr_clean[0], out.lr_clean[1], atol=1e-9)
    assert torch.equal(one.lr, one.lr_clean) and torch.isnan(one.sig1).all()


def test_fixed_test_mode_and_validation_degradation():
    hr = _rand_images(2, 3, 8, 8, dtype=torch.float32)
    val = validation_degradation(4)
    out = val(hr, torch.Generator().manual_seed(0))
    assert torch.allclose(out.noise, torch.full((2,), 10 / 255))
    assert torch.allclose(out.sig1, torch.full((2,), 3.5))
    assert torch.allclose(out.theta, torch.full((2,), 0.5233))
    ref = anisotropic_gaussian_kernels(3.5, 1.5, 0.5233, 21, 4)
    assert torch.allclose(out.kernel, ref.expand(2, -1, -1), atol=1e-7)
    assert not torch.equal(out.lr, out.lr_clean)
    clean = paper_test_degradation(4, 2, noise=0)(hr)
    assert torch.allclose(clean.kernel[0], paper_kernels(4)[2], atol=1e-7)
    assert torch.equal(clean.lr, clean.lr_clean)
    iso = Degradation(2, random_kernel=False, sig1=1.2, random_noise=False)(hr)
    assert torch.allclose(iso.sig2, iso.sig1) and torch.equal(iso.lr, iso.lr_clean)


def test_degradation_jpeg_option():
    pytest.importorskip("cv2")
    hr = _rand_images(2, 3, 32, 32, dtype=torch.float32)
    deg = Degradation(2, jpeg_low=40)
    a = deg(hr, torch.Generator().manual_seed(0))
    b = deg(hr, torch.Generator().manual_seed(0))
    assert torch.equal(a.lr, b.lr)
    assert ((a.jpeg_quality >= 40) & (a.jpeg_quality <= 100)).all()
    noisy = quantize(add_noise(blur_subsample(hr, a.kernel, 2), a.noise, _advanced_generator(a)))
    assert not torch.equal(a.lr, noisy)  # JPEG changed something


def _advanced_generator(out):
    g = torch.Generator().manual_seed(0)
    random_kernel_params(out.lr.shape[0], g)
    torch.rand(out.lr.shape[0], generator=g)
    return g


def test_degradation_bad_inputs():
    deg = Degradation(4)
    with pytest.raises(KULNetError):
        deg(torch.rand(1, 3, 10, 12))  # not a multiple of 4
    with pytest.raises(KULNetError):
        deg(torch.rand(3, 8, 8))
    with pytest.raises(KULNetError):
        Degradation(4, random_kernel=False)
    with pytest.raises(KULNetError):
        Degradation(4, random_kernel=False, sig1=2.0, sig2=1.0)
    with pytest.raises(KULNetError):
        Degradation(4, sig_min=0.0)
    with pytest.raises(KULNetError):
        paper_test_degradation(4, 9)


# ----------------------------------------------------------------------------- spatially variant
def test_per_pixel_blur_with_constant_map_equals_blur():
    hr = _rand_images(2, 3, 12, 8)
    k = paper_kernels(4, dtype=torch.float64)[[1, 5]]
    kmap = k.reshape(2, 441, 1, 1).expand(-1, -1, 12, 8)
    assert torch.allclose(blur_per_pixel(hr, kmap), blur(hr, k), atol=1e-12)
    # tiny chunk budget: many row chunks, same result
    assert torch.allclose(blur_per_pixel(hr, kmap, max_chunk_bytes=1), blur(hr, k), atol=1e-12)
    lr_map = kmap[..., ::4, ::4]
    assert torch.allclose(blur_per_pixel(hr, lr_map, stride=4), blur_subsample(hr, k, 4), atol=1e-12)


def test_per_pixel_blur_equals_slow_loop():
    hr = _rand_images(2, 2, 5, 6)
    kmap = torch.rand(2, 9, 5, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = blur_per_pixel(hr, kmap, max_chunk_bytes=200)
    padded = F.pad(hr, (1, 1, 1, 1), mode="replicate")
    ref = torch.zeros_like(hr)
    for y in range(5):
        for x in range(6):
            patch = padded[:, :, y:y + 3, x:x + 3].reshape(2, 2, 9)
            ref[:, :, y, x] = (patch * kmap[:, None, :, y, x]).sum(-1)
    assert torch.allclose(out, ref, atol=1e-12)


# ----------------------------------------------------------------------------- benchmark smoke test
def test_benchmark_runs_and_writes_json(tmp_path, capsys):
    import json

    from benchmarks.bench_degradation import main

    out = tmp_path / "bench.json"
    main(["--device", "cpu", "--batch", "2", "--gt_size", "16", "--repeats", "1", "--warmup", "0",
          "--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["row"] for r in data["results"]] == ["degradation (fused)", "two-step blur", "kernels only"]
    assert all(r["median_ms"] >= 0 for r in data["results"])
    assert "median" in capsys.readouterr().out
    with pytest.raises(KULNetError):
        main(["--device", "cpu", "--gt_size", "15", "--scale", "4"])
