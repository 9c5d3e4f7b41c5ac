"""Batched A / Aᵀ against a slow per-sample reference, and adjointness of the blur pair."""
import torch
import torch.nn.functional as F

from models.modules.operators import A, At, blur_batch, blur_transpose_batch


def _slow_blur(x, k):
    """Per-sample, per-channel correlation with zero padding (the authors' loop, written plainly)."""
    pad = k.shape[-1] // 2
    out = []
    for b in range(x.shape[0]):
        chans = [F.conv2d(x[b:b + 1, c:c + 1], k[b][None, None], padding=pad) for c in range(x.shape[1])]
        out.append(torch.cat(chans, dim=1))
    return torch.cat(out, dim=0)


def _slow_blur_t(x, k):
    """Per-sample transposed blur: correlation with the flipped kernel, zero padding."""
    return _slow_blur(x, torch.flip(k, dims=(-2, -1)))


def _inputs(batch=3, channels=3, height=20, width=28, l=21, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, height, width, generator=gen, dtype=dtype)
    k = torch.rand(batch, l, l, generator=gen, dtype=dtype)
    k[:, :, -3:] = 0  # asymmetric kernels so a missing flip shows
    return x, k / k.sum(dim=(1, 2), keepdim=True)


def test_blur_batch_equals_per_sample_reference():
    x, k = _inputs(height=19, width=26)
    torch.testing.assert_close(blur_batch(x, k), _slow_blur(x, k), rtol=0, atol=1e-12)


def test_blur_transpose_equals_per_sample_reference():
    x, k = _inputs(height=19, width=26)
    torch.testing.assert_close(blur_transpose_batch(x, k), _slow_blur_t(x, k), rtol=0, atol=1e-12)


def test_A_and_At_equal_per_sample_reference():
    for scale in (2, 3, 4):
        x, k = _inputs(height=scale * 7, width=scale * 5, dtype=torch.float32, seed=scale)
        y = torch.rand(3, 3, 7, 5)
        ref_a = torch.cat([F.interpolate(_slow_blur(x[b:b + 1], k[b:b + 1]), scale_factor=1 / scale,
                                         mode="bicubic", align_corners=False) for b in range(3)])
        ref_at = torch.cat([_slow_blur_t(F.interpolate(y[b:b + 1], scale_factor=scale, mode="bicubic",
                                                       align_corners=False), k[b:b + 1]) for b in range(3)])
        assert A(x, k, scale).shape == (3, 3, 7, 5)
        assert At(y, k, scale).shape == (3, 3, 7 * scale, 5 * scale)
        torch.testing.assert_close(A(x, k, scale), ref_a, rtol=0, atol=1e-6)
        torch.testing.assert_close(At(y, k, scale), ref_at, rtol=0, atol=1e-6)


def test_blur_pair_is_exactly_adjoint():
    x, k = _inputs(height=23, width=17)
    y = torch.rand_like(x)
    lhs = (blur_batch(x, k) * y).sum()
    rhs = (x * blur_transpose_batch(y, k)).sum()
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_blur_is_correlation_not_convolution():
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    k = torch.zeros(1, 3, 3, dtype=torch.float64)
    k[0, 0, 0] = 1.0  # top-left tap
    out = blur_batch(x, k)
    # correlation: out[i, j] = k[0, 0] x[i - 1, j - 1] -> the impulse moves down-right
    assert out[0, 0, 5, 5] == 1.0 and out.sum() == 1.0


def test_full_A_At_are_not_adjoint_authors_design():
    """The bicubic down/up steps are not transposes of each other (authors' design, kept)."""
    scale = 4
    x, k = _inputs(height=32, width=24)
    y = torch.rand(3, 3, 8, 6, dtype=torch.float64)
    lhs = (A(x, k, scale) * y).sum()
    rhs = (x * At(y, k, scale)).sum()
    # bicubic up by s sums to about s^2 times the adjoint of bicubic down by 1/s: far beyond float error
    assert 0.5 * scale ** 2 < rhs / lhs < 1.5 * scale ** 2


def test_operators_keep_device_and_dtype():
    x, k = _inputs(dtype=torch.float32)
    assert blur_batch(x, k).dtype == torch.float32
    assert At(A(x[..., :16, :16], k, 2), k, 2).shape == (3, 3, 16, 16)
