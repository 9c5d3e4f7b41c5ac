"""Kernel synthesis (data/kernels.py): reference file, invariants, training distribution, determinism."""
import math
import os

import numpy as np
import pytest
import torch

from data.kernels import (
    PAPER_KERNELS,
    anisotropic_gaussian_kernels,
    degrees_to_radians_authors,
    isotropic_gaussian_kernels,
    make_kernels,
    paper_kernel_params,
    paper_kernels,
    random_kernel_params,
)
from utils.errors import KULNetError


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_paper_kernels_match_reference_file(shared_reference, scale):
    ref = np.load(os.path.join(shared_reference, "benchmark_kernels.npz"))[f"x{scale}"]
    ours = paper_kernels(scale, dtype=torch.float64).numpy()
    assert ours.shape == ref.shape == (9, 21, 21)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    # float32 output is the same within float32 rounding
    np.testing.assert_allclose(paper_kernels(scale).numpy(), ref, rtol=0, atol=1e-6)


def test_isotropic_matches_reference_file(shared_reference):
    ref = np.load(os.path.join(shared_reference, "benchmark_kernels.npz"))["iso_sigma2.6_x4"]
    ours = isotropic_gaussian_kernels(2.6, 21, 4, dtype=torch.float64)[0].numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_degrees_quirk_uses_3_14():
    assert degrees_to_radians_authors(180.0) == pytest.approx(3.14, abs=1e-12)
    assert degrees_to_radians_authors(90.0) == pytest.approx(1.57, abs=1e-12)
    theta = paper_kernel_params()["theta"]
    assert theta[-1].item() == pytest.approx(3.14)
    assert [p[0] for p in PAPER_KERNELS] == [2.0, 2.0, 3.5, 3.5, 3.5, 4.0, 4.0, 4.0, 4.0]


def _numpy_aniso(s1, s2, th, l, s):
    """Slow single-kernel reference written from KULNET.md §5.1 (matrix inverse, numpy)."""
    lp = l - s + 1
    ax = np.arange(lp) - (lp / 2 - 0.5)
    x, y = np.meshgrid(ax, ax)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    cov = rot @ np.diag([s1, s2]) @ rot.T
    z = np.stack([x, y], -1)
    q = np.einsum("...i,ij,...j->...", z, np.linalg.inv(cov), z)
    k = np.exp(-q / 2) / (2 * np.pi * np.sqrt(np.linalg.det(cov)))
    k[k < np.finfo(np.float64).eps * k.max()] = 0
    out = np.zeros((l, l))
    out[:lp, :lp] = k / k.sum()
    return out


@pytest.mark.parametrize("scale,l", [(1, 7), (2, 21), (3, 15), (4, 21)])
def test_batch_equals_single_reference(scale, l):
    g = torch.Generator().manual_seed(3)
    p = random_kernel_params(5, g)
    batch = anisotropic_gaussian_kernels(p["sig1"], p["sig2"], p["theta"], l, scale, dtype=torch.float64)
    for i in range(5):
        ref = _numpy_aniso(p["sig1"][i].item(), p["sig2"][i].item(), p["theta"][i].item(), l, scale)
        np.testing.assert_allclose(batch[i].numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_invariants_sum_nonneg_support(scale):
    g = torch.Generator().manual_seed(1)
    p = random_kernel_params(64, g, rate_iso=0.5)
    k = make_kernels(p, 21, scale, dtype=torch.float64)
    assert k.shape == (64, 21, 21)
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(64, dtype=torch.float64), atol=1e-12)
    assert (k >= 0).all()
    lp = 21 - scale + 1
    outside = k.clone()
    outside[:, :lp, :lp] = 0
    assert outside.abs().max() == 0
    assert (k[:, :lp, :lp].sum(dim=(1, 2)) > 0.999).all()


def test_isotropic_closed_forms():
    # anisotropic with equal variances sigma^2 is the isotropic kernel of std sigma
    iso = isotropic_gaussian_kernels(torch.tensor([1.3, 2.0]), 21, 4, dtype=torch.float64)
    ani = anisotropic_gaussian_kernels(torch.tensor([1.69, 4.0]), torch.tensor([1.69, 4.0]), 0.7, 21, 4,
                                       dtype=torch.float64)
    assert torch.allclose(iso, ani, atol=1e-12)
    # separable: the isotropic kernel is the outer product of its marginals
    k = iso[0, :18, :18]
    assert torch.allclose(k, torch.outer(k.sum(1), k.sum(0)), atol=1e-12)
    # symmetric about the (shifted) grid centre
    assert torch.allclose(k, k.flip(0).flip(1), atol=1e-15)


def test_rotation_symmetries():
    a = anisotropic_gaussian_kernels(3.0, 1.0, 0.4, 21, 4, dtype=torch.float64)
    b = anisotropic_gaussian_kernels(3.0, 1.0, 0.4 + math.pi, 21, 4, dtype=torch.float64)
    c = anisotropic_gaussian_kernels(1.0, 3.0, 0.4 + math.pi / 2, 21, 4, dtype=torch.float64)
    assert torch.allclose(a, b, atol=1e-12) and torch.allclose(a, c, atol=1e-12)
    # theta = 0: the long axis (sig1) lies along x (columns): wider spread across columns
    k = anisotropic_gaussian_kernels(4.0, 0.5, 0.0, 21, 4, dtype=torch.float64)[0, :18, :18]
    ax = torch.arange(18, dtype=torch.float64) - 8.5
    var_x = (k.sum(0) * ax**2).sum()
    var_y = (k.sum(1) * ax**2).sum()
    assert var_x > 3 * var_y


def test_random_params_within_training_ranges():
    g = torch.Generator().manual_seed(0)
    p = random_kernel_params(4000, g)
    assert p["sig1"].shape == p["sig2"].shape == p["theta"].shape == p["is_iso"].shape == (4000,)
    assert (p["sig1"] >= 0.2).all() and (p["sig1"] <= 4.0).all()
    assert (p["sig2"] >= 0.2).all() and (p["sig2"] <= p["sig1"]).all()
    assert (p["theta"] >= 0).all() and (p["theta"] <= math.pi).all()
    assert not p["is_iso"].any()
    # roughly uniform: means near the analytic values
    assert p["sig1"].mean().item() == pytest.approx(2.1, abs=0.1)
    assert p["sig2"].mean().item() == pytest.approx(0.2 + (2.1 - 0.2) / 2, abs=0.1)
    assert p["theta"].mean().item() == pytest.approx(math.pi / 2, abs=0.1)


def test_rate_iso_mixing():
    g = torch.Generator().manual_seed(0)
    p = random_kernel_params(2000, g, rate_iso=0.3)
    frac = p["is_iso"].float().mean().item()
    assert frac == pytest.approx(0.3, abs=0.05)
    assert torch.equal(p["sig1"][p["is_iso"]], p["sig2"][p["is_iso"]])
    k = make_kernels({key: v[:50] for key, v in p.items()}, 21, 4)
    iso_idx = int(torch.nonzero(p["is_iso"][:50])[0])
    ani_idx = int(torch.nonzero(~p["is_iso"][:50])[0])
    assert torch.allclose(k[iso_idx], isotropic_gaussian_kernels(p["sig1"][iso_idx], 21, 4)[0], atol=1e-7)
    ref = anisotropic_gaussian_kernels(p["sig1"][ani_idx], p["sig2"][ani_idx], p["theta"][ani_idx], 21, 4)
    assert torch.allclose(k[ani_idx], ref[0], atol=1e-7)


def test_random_params_deterministic_under_seed():
    a = random_kernel_params(8, torch.Generator().manual_seed(5))
    b = random_kernel_params(8, torch.Generator().manual_seed(5))
    c = random_kernel_params(8, torch.Generator().manual_seed(6))
    for key in a:
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["sig1"], c["sig1"])


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(KULNetError):
        anisotropic_gaussian_kernels(0.0, 1.0, 0.0)
    with pytest.raises(KULNetError):
        anisotropic_gaussian_kernels(1.0, 1.0, 0.0, kernel_size=20)
    with pytest.raises(KULNetError):
        isotropic_gaussian_kernels(1.0, kernel_size=3, scale=4)
    with pytest.raises(KULNetError):
        random_kernel_params(2, sig_min=2.0, sig_max=1.0)
    with pytest.raises(KULNetError):
        make_kernels({"sig1": torch.ones(2)})
