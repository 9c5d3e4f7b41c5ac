"""The authors' spatially variant test degradation (data/spatially_variant.py) against their output."""
import os

import numpy as np
import pytest
import torch
from _fixture_compare import assert_matches_fixture

from data.kernels import anisotropic_gaussian_kernels
from data.spatially_variant import (
    SV_MODES,
    authors_block_params,
    block_kernels,
    block_weights,
    blur_blocks,
    blur_per_pixel,
    degrade_authors_sv,
)
from utils.errors import KULNetError


@pytest.fixture
def authors(shared_reference):
    return np.load(os.path.join(shared_reference, "authors_sv_degradation.npz"))


@pytest.mark.parametrize("scale", (2, 3, 4))
@pytest.mark.parametrize("mode", SV_MODES)
def test_block_parameters_kernels_and_lr_are_the_authors(authors, scale, mode):
    hr = torch.from_numpy(authors["hr"])[None]
    key = f"x{scale}_m{mode}"
    params = authors_block_params(mode, 96, 120, scale)
    assert params.shape == (3, 3, 3)
    np.testing.assert_array_equal(params.reshape(-1, 3), authors[f"{key}/block_params"])
    kernels = block_kernels(params, 21, scale).reshape(-1, 21, 21).numpy()
    assert_matches_fixture(kernels, authors[f"{key}/block_kernels"], 5e-8, f"{key}/block_kernels")
    lr = np.round(degrade_authors_sv(hr, mode, scale).lr_clean[0].numpy() * 255)
    theirs = np.round(authors[f"{key}/lr"] * 255)
    assert_matches_fixture(lr, theirs, 1, f"{key}/lr")  # no mask here: every level within one
    assert np.mean(lr == theirs) >= 0.999


def test_block_blur_is_the_per_pixel_blur_of_the_block_kernels():
    """Partial blocks and a scale that does not divide 40: every LR pixel takes the kernel of the block
    that holds its HR pixel (s y, s x)."""
    scale, height, width = 3, 87, 45
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, height, width, generator=gen, dtype=torch.float64)
    kernels = block_kernels(authors_block_params(4, height, width, scale), 9, scale).double()
    assert kernels.shape == (3, 2, 9, 9)
    ys, xs = torch.arange(0, height, scale) // 40, torch.arange(0, width, scale) // 40
    kmap = kernels[ys][:, xs].reshape(len(ys), len(xs), 81).permute(2, 0, 1)[None]
    out = blur_blocks(hr, kernels, scale)
    assert out.shape == (2, 3, 29, 15)
    assert torch.allclose(out, blur_per_pixel(hr, kmap, stride=scale), atol=1e-12)
    weights = block_weights(height, width, scale)
    assert weights.sum() == pytest.approx(1.0) and weights[0, 0] == pytest.approx(14 * 14 / (29 * 15))


def test_degradation_mean_kernel_noise_and_errors():
    hr = torch.rand(1, 3, 48, 88, generator=torch.Generator().manual_seed(1))
    clean = degrade_authors_sv(hr, 2, 4)
    params = authors_block_params(2, 48, 88, 4)
    w = block_weights(48, 88, 4)
    want = sum(w[i, j] * anisotropic_gaussian_kernels(*params[i, j], 21, 4, dtype=torch.float64)[0]
               for i in range(2) for j in range(3))
    assert torch.allclose(clean.kernel[0].double(), want, atol=1e-7) and torch.isnan(clean.sig1).all()
    noisy = degrade_authors_sv(hr, 2, 4, noise=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy.lr_clean, clean.lr_clean) and not torch.equal(noisy.lr, clean.lr)
    assert noisy.noise.item() == pytest.approx(10 / 255)
    assert not np.array_equal(authors_block_params(5, 48, 88, 4, seed=1), authors_block_params(5, 48, 88, 4))
    with pytest.raises(KULNetError, match=r"sv_mode 7: the authors' spatially variant patterns are 1, 2, 3"):
        degrade_authors_sv(hr, 7, 4)
    with pytest.raises(KULNetError, match="not a multiple of scale 3"):
        degrade_authors_sv(hr, 1, 3)
