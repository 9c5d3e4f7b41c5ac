"""x8 self-ensemble: the flip convention on the real degradation, kernels, an equivariant toy network."""
import math

import pytest
import torch
import torch.nn.functional as F

from data.degradation import blur_subsample
from data.kernels import anisotropic_gaussian_kernels
from evaluation.self_ensemble import (
    TRANSFORMS,
    inverse_image,
    inverse_kernel,
    self_ensemble,
    sr_shift,
    transform_image,
    transform_kernel,
)
from models.modules.kulnet import KULNetOutput


def _shift_content(x, dims, d):
    """z[X] = x[X + d] along ``dims`` (circular; only the interior is compared)."""
    for dim in dims:
        x = x.roll(-d, dim)
    return x


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_flipped_lr_is_degradation_of_shifted_hr_with_block_flipped_kernel(scale):
    # The identity the ensemble rests on, on the real degradation code:
    # T(degrade(x, k)) == degrade(shift(T(x), 2(s-1) on flipped axes), transform_kernel(k)).
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24 * scale, 24 * scale, dtype=torch.float64)
    k = anisotropic_gaussian_kernels(3.5, 1.5, 0.7, 21, scale, dtype=torch.float64)
    y = blur_subsample(x, k, scale)
    m = (10 + sr_shift(scale)) // scale + 2  # LR margin: kernel reach + shift (replicate pad, roll)
    for t, fh, fw in TRANSFORMS:
        dims = [d for d, on in ((-2, fh), (-1, fw)) if on]
        z = _shift_content(transform_image(x, t, fh, fw), dims, sr_shift(scale))
        y2 = blur_subsample(z, transform_kernel(k, t, fh, fw, scale), scale)
        diff = (transform_image(y, t, fh, fw) - y2)[..., m:-m, m:-m].abs().max()
        assert diff < 1e-12, (t, fh, fw, float(diff))
    # and without the shift the flipped LR is NOT explained (the naive ensemble's error)
    y_naive = blur_subsample(x.flip(-1), transform_kernel(k, False, False, True, scale), scale)
    assert (y.flip(-1) - y_naive)[..., m:-m, m:-m].abs().max() > 1e-3


@pytest.mark.parametrize("scale", [2, 4])
def test_kernel_transforms_are_mirrored_gaussians_and_invert(scale):
    s1, s2, th = 4.0, 1.5, 0.6
    k = anisotropic_gaussian_kernels(s1, s2, th, 21, scale, dtype=torch.float64)
    flipped_w = transform_kernel(k, False, False, True, scale)  # x -> -x: theta -> -theta
    flipped_h = transform_kernel(k, False, True, False, scale)  # y -> -y: theta -> -theta
    transposed = transform_kernel(k, True, False, False, scale)  # x <-> y: theta -> pi/2 - theta
    mirrored = anisotropic_gaussian_kernels(s1, s2, -th, 21, scale, dtype=torch.float64)
    swapped = anisotropic_gaussian_kernels(s1, s2, math.pi / 2 - th, 21, scale, dtype=torch.float64)
    assert torch.allclose(flipped_w, mirrored, atol=1e-15)
    assert torch.allclose(flipped_h, mirrored, atol=1e-15)
    assert torch.allclose(transposed, swapped, atol=1e-15)
    lp = 21 - scale + 1
    for t, fh, fw in TRANSFORMS:
        kt = transform_kernel(k, t, fh, fw, scale)
        assert kt[..., lp:, :].abs().max() == 0 and kt[..., :, lp:].abs().max() == 0  # still top-left
        assert torch.equal(inverse_kernel(kt, t, fh, fw, scale), k)
        x = torch.rand(1, 2, 5, 7)
        assert torch.equal(inverse_image(transform_image(x, t, fh, fw), t, fh, fw), x)


# ------------------------------------------------------------------ an equivariant toy network
def _central_second_derivatives(u):
    p = F.pad(u, (1, 1, 1, 1), mode="replicate")
    c = p[..., 1:-1, 1:-1]
    uxx = p[..., 1:-1, 2:] - 2 * c + p[..., 1:-1, :-2]
    uyy = p[..., 2:, 1:-1] - 2 * c + p[..., :-2, 1:-1]
    uxy = (p[..., 2:, 2:] - p[..., 2:, :-2] - p[..., :-2, 2:] + p[..., :-2, :-2]) / 4
    return uxx, uyy, uxy


def _kernel_moments(k):
    """Central second moments (B,) of (B, l, l) kernels: xx (columns), yy (rows), xy."""
    l = k.shape[-1]
    ax = torch.arange(l, dtype=k.dtype)
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    mx, my = (k * x).sum((-2, -1), keepdim=True), (k * y).sum((-2, -1), keepdim=True)
    dx, dy = x - mx, y - my
    return (k * dx * dx).sum((-2, -1)), (k * dy * dy).sum((-2, -1)), (k * dx * dy).sum((-2, -1))


class EquivariantToy(torch.nn.Module):
    """Blind SR toy that follows the data convention exactly (LR pixel i <-> HR s*i - (s-1)/2).

    Kernel: a Gaussian in the top-left block whose covariance comes from the LR structure tensor
    (central differences), so flips and transposes of the LR mirror it. SR: convention-aligned
    nearest upsampling plus a kernel-moment-weighted second-derivative term, so a wrongly
    transformed kernel changes the output.
    """

    def __init__(self, scale, kernel_size=21):
        super().__init__()
        self.scale, self.kernel_size = scale, kernel_size

    def estimate_kernel(self, lr):
        g = lr.mean(1, keepdim=True).double()
        p = F.pad(g, (1, 1, 1, 1), mode="replicate")
        gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2
        gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2
        jxx, jyy, jxy = (v.mean((1, 2, 3)) for v in (gx * gx, gy * gy, gx * gy))
        a, b, c = 1 + 40 * jxx, 1 + 40 * jyy, 40 * jxy
        lp = self.kernel_size - self.scale + 1
        ax = torch.arange(lp, dtype=torch.float64) - (lp / 2 - 0.5)
        y, x = torch.meshgrid(ax, ax, indexing="ij")
        det = (a * b - c * c)[:, None, None]
        q = (b[:, None, None] * x * x - 2 * c[:, None, None] * x * y + a[:, None, None] * y * y) / det
        k = torch.exp(-0.5 * q)
        k = k / k.sum((-2, -1), keepdim=True)
        pad = self.kernel_size - lp
        k = F.pad(k, (0, pad, 0, pad)).float()
        return k, lr, lr  # mean / log_var stand-ins

    def restore(self, lr, kernel):
        s = self.scale
        up = F.interpolate(lr, scale_factor=s, mode="nearest")
        up = F.pad(up, (0, s - 1, 0, s - 1), mode="replicate")[..., s - 1:, s - 1:]  # u[X] = nn[X + s - 1]
        mxx, myy, mxy = (m.view(-1, 1, 1, 1) for m in _kernel_moments(kernel))
        uxx, uyy, uxy = _central_second_derivatives(up)
        return up + 0.05 * (mxx * uxx + myy * uyy + 2 * mxy * uxy)

    def forward(self, lr, kernel=None):
        if kernel is not None:
            return KULNetOutput(self.restore(lr, kernel), kernel, None, None)
        k, mean, log_var = self.estimate_kernel(lr)
        return KULNetOutput(self.restore(lr, k), k, mean, log_var)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_x8_of_equivariant_toy_equals_plain(scale):
    torch.manual_seed(1)
    toy = EquivariantToy(scale)
    lr = F.interpolate(torch.rand(1, 3, 5, 7), size=(14, 18), mode="bicubic", align_corners=False).clamp(0, 1)
    m = 2 * scale + 2  # HR border where replicate padding differs between passes
    plain = toy(lr)
    ens = self_ensemble(toy, lr, scale)
    assert ens.sr.shape == plain.sr.shape
    assert torch.allclose(ens.kernel, plain.kernel, atol=1e-6)
    assert torch.allclose(ens.sr[..., m:-m, m:-m], plain.sr[..., m:-m, m:-m], atol=1e-5)
    assert ens.mean is plain.mean or torch.equal(ens.mean, plain.mean)  # identity pass's latent

    # non-blind path with an anisotropic kernel: the kernel must be transformed consistently
    k = anisotropic_gaussian_kernels(4.0, 1.0, 0.5, 21, scale)
    plain_nb = toy(lr, kernel=k)
    ens_nb = self_ensemble(toy, lr, scale, kernel=k)
    assert torch.allclose(ens_nb.sr[..., m:-m, m:-m], plain_nb.sr[..., m:-m, m:-m], atol=1e-5)
    assert torch.equal(ens_nb.kernel, k)


def test_naive_x8_is_caught_by_the_toy():
    # Sensitivity check: averaging plain flips (no realignment, kernel not transformed) is wrong.
    scale = 4
    toy = EquivariantToy(scale)
    torch.manual_seed(2)
    lr = F.interpolate(torch.rand(1, 3, 5, 5), size=(16, 16), mode="bicubic", align_corners=False).clamp(0, 1)
    plain = toy(lr).sr
    naive = torch.stack([inverse_image(toy(transform_image(lr, t, fh, fw)).sr, t, fh, fw)
                         for t, fh, fw in TRANSFORMS]).mean(0)
    m = 2 * scale + 2
    assert (naive - plain)[..., m:-m, m:-m].abs().max() > 0.05


def test_x8_runs_on_kulnet_and_keeps_shapes():
    from _eval_helpers import tiny_model

    model = tiny_model(scale=4)
    lr = torch.rand(1, 3, 12, 16)
    with torch.inference_mode():
        out = self_ensemble(model, lr, 4)
    assert out.sr.shape == (1, 3, 48, 64) and torch.isfinite(out.sr).all()
    assert out.kernel.shape == (1, 21, 21)
    assert torch.allclose(out.kernel.sum((-2, -1)), torch.ones(1), atol=1e-5)
    assert out.log_var.shape[-2:] == (12, 16)
