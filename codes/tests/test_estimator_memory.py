"""Banded estimator tail (no-grad inference): same kernel as the plain tail, without the full map."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.modules.kernel_estimator import KernelEstimator, banded_mean_softmax, tail_band_rows
from models.modules.kulnet import KULNet


def _plain_mean_softmax(z, conv):
    return F.softmax(conv(z).float(), dim=1).mean(dim=(2, 3))


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1), (9, 13), (17, 11)])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 8, 100])
def test_banded_mean_softmax_equals_plain(size, rows):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 25, 3, padding=1)
    z = torch.randn(2, 6, *size) * 3  # sharp softmax: border rows and halos matter
    ref = _plain_mean_softmax(z, conv)
    out = banded_mean_softmax(z, conv, rows)
    assert out.shape == (2, 25) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out.sum(1), torch.ones(2), rtol=0, atol=1e-5)


def test_banded_halo_and_borders_are_used():
    """A conv that only looks one row up (or down): a missing halo or padding row changes the mean."""
    for tap in (0, 2):
        conv = nn.Conv2d(1, 4, 3, padding=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[:, 0, tap, 1] = torch.tensor([1.0, -2.0, 3.0, 0.5])
        z = torch.arange(7 * 3, dtype=torch.float32).view(1, 1, 7, 3) / 5
        for rows in (1, 2, 3, 6, 7, 10):
            torch.testing.assert_close(banded_mean_softmax(z, conv, rows), _plain_mean_softmax(z, conv),
                                       rtol=1e-6, atol=1e-7)


def test_band_rows_budget():
    assert tail_band_rows(1, 441, 2000, 2000) == 256 * 2 ** 20 // (441 * 2000 * 4) == 76
    assert tail_band_rows(1, 441, 10, 10) == 10  # fits: one band (the estimator then runs plain)
    assert tail_band_rows(4, 441, 50, 10 ** 6) == 1  # a single row over the budget still runs


def _estimator(seed=0, nf=8):
    torch.manual_seed(seed)
    return KernelEstimator(3, nf, 21).eval()


@pytest.mark.parametrize("rows", [1, 3, 7, 40])
@pytest.mark.parametrize("channels_last", [False, True])
def test_estimator_banded_equals_plain_fp32(rows, channels_last):
    net = _estimator()
    net.channels_last = channels_last
    lr = torch.rand(2, 3, 19, 13, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.tail_band_rows = 0
        ref_k, ref_m, ref_v, _ = net(lr, return_kernel_map=False)
        net.tail_band_rows = rows
        k, m, v, kmap = net(lr, return_kernel_map=False)
    assert kmap is None and k.shape == (2, 21, 21)
    torch.testing.assert_close(k, ref_k, rtol=1e-5, atol=1e-8)
    assert torch.equal(m, ref_m) and torch.equal(v, ref_v)


def test_estimator_banded_equals_plain_bf16_autocast():
    net = _estimator(1)
    lr = torch.rand(1, 3, 15, 21, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        net.tail_band_rows = 0
        ref = net(lr, return_kernel_map=False)[0]
        net.tail_band_rows = 4
        out = net(lr, return_kernel_map=False)[0]
    assert out.dtype == torch.float32
    # identical bf16 logits per pixel; only the float32 summation order differs
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(out.sum(dim=(1, 2)), torch.ones(1), rtol=0, atol=1e-5)


def test_banded_only_without_grad_and_without_kernel_map(monkeypatch):
    import models.modules.kernel_estimator as ke

    calls = []
    real = ke.banded_mean_softmax
    monkeypatch.setattr(ke, "banded_mean_softmax", lambda *a: calls.append(1) or real(*a))
    net = _estimator()
    net.tail_band_rows = 2
    lr = torch.rand(1, 3, 9, 9)
    k_grad = net(lr, return_kernel_map=False)[0]  # autograd on: plain
    assert not calls and k_grad.requires_grad
    with torch.no_grad():
        kmap = net(lr, return_kernel_map=True)[3]  # map requested: plain
        assert not calls and kmap.shape == (1, 441, 9, 9)
        net(lr, return_kernel_map=False)
        assert calls == [1]
    with torch.inference_mode():
        net(lr, return_kernel_map=False)
        assert calls == [1, 1]
    net.tail_band_rows = None  # automatic: a 9x9 image fits the budget, plain
    with torch.no_grad():
        net(lr, return_kernel_map=False)
    assert calls == [1, 1]


def test_automatic_bands_on_a_large_image(monkeypatch):
    """The default setting bands once the logits exceed the budget (budget lowered to keep it small)."""
    import models.modules.kernel_estimator as ke

    monkeypatch.setattr(ke, "TAIL_BAND_BYTES", 441 * 4 * 24 * 3)  # 3 rows of a 24-wide image
    seen = []
    real = ke.banded_mean_softmax
    monkeypatch.setattr(ke, "banded_mean_softmax", lambda z, c, r: seen.append(r) or real(z, c, r))
    net = _estimator()
    lr = torch.rand(1, 3, 10, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        k = net(lr, return_kernel_map=False)[0]
        net.tail_band_rows = 0
        ref = net(lr, return_kernel_map=False)[0]
    assert seen == [3]
    torch.testing.assert_close(k, ref, rtol=1e-5, atol=1e-8)


def test_kulnet_plain_path_switches_bands_off_and_keys_unchanged():
    net = KULNet(scale=2, est_nf=8, sr_nf=8, n_stages=1)
    keys = list(net.state_dict())
    assert net.kernel_extra.tail_band_rows is None
    net.kernel_extra.tail_band_rows = 5
    assert list(net.state_dict()) == keys
    net.use_plain_path()
    assert net.kernel_extra.tail_band_rows == 0
