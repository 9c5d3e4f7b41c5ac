"""Loss values against hand computations (KULNET.md §4) and the learning-rate schedules."""
import math

import pytest
import torch

from data.degradation import Degradation
from models.losses import KULNetLoss, kernel_loss, kl_loss, lr_consistency_loss, pixel_loss
from models.lr_scheduler import IterationLR
from models.modules.kulnet import KULNetOutput


def test_kernel_loss_equals_authors_repeated_construction():
    g = torch.Generator().manual_seed(0)
    b, l, h, w, s = 2, 5, 3, 2, 3
    k_est = torch.rand(b, l, l, generator=g)
    k_true = torch.rand(b, l, l, generator=g)
    k_est, k_true = k_est / k_est.sum((1, 2), keepdim=True), k_true / k_true.sum((1, 2), keepdim=True)
    # Literal construction: each kernel repeated h*w*s^2 times (one copy per HR pixel), x1e4,
    # mean L1, then divided by h*w*s^2.
    rep_est = k_est.reshape(b, l * l, 1, 1).repeat(1, 1, h * s, w * s) * 1e4
    rep_true = k_true.reshape(b, l * l, 1, 1).repeat(1, 1, h * s, w * s) * 1e4
    literal = torch.nn.functional.l1_loss(rep_est, rep_true) / (h * w * s * s)
    value = kernel_loss(k_est, k_true, (h, w), s)
    assert value.item() == pytest.approx(literal.item(), rel=1e-6)
    hand = 1e4 * (k_est - k_true).abs().mean().item() / (h * w * s * s)
    assert value.item() == pytest.approx(hand, rel=1e-6)


def test_kl_closed_forms():
    zeros = torch.zeros(2, 3, 4, 4)
    assert kl_loss(zeros, zeros).item() == 0.0  # N(0, 1) against N(0, 1)
    mean = torch.ones(2, 3, 4, 4)
    assert kl_loss(mean, zeros).item() == pytest.approx(0.5)  # -0.5 (1 + 0 - 1 - 1)
    log_var = torch.full((1, 1, 2, 2), math.log(2.0))  # std 2 (exp(log_var) is the std: quirk)
    hand = -0.5 * (1 + 2 * math.log(2.0) - 0 - 4.0)
    assert kl_loss(torch.zeros_like(log_var), log_var).item() == pytest.approx(hand, rel=1e-6)


def test_pixel_loss_and_weighted_sum():
    g = torch.Generator().manual_seed(1)
    s, l = 2, 5
    hr = torch.rand(2, 3, 8, 6, generator=g)
    sr = torch.rand(2, 3, 8, 6, generator=g)
    k_true = torch.softmax(torch.rand(2, l * l, generator=g), 1).reshape(2, l, l)
    k_est = torch.softmax(torch.rand(2, l * l, generator=g), 1).reshape(2, l, l)
    mean, log_var = torch.rand(2, 4, 4, 3, generator=g), torch.rand(2, 4, 4, 3, generator=g) - 0.5
    assert pixel_loss(sr, hr).item() == pytest.approx((sr - hr).abs().mean().item(), rel=1e-6)
    out = KULNetOutput(sr, k_est, mean, log_var)
    total, parts = KULNetLoss(s)(out, hr, k_true)
    expect = {"l_pix": pixel_loss(sr, hr).item(), "l_ker": kernel_loss(k_est, k_true, (4, 3), s).item(),
              "l_kl": 1e-3 * kl_loss(mean, log_var).item()}
    assert set(parts) == set(expect)
    for key, value in expect.items():
        assert parts[key].item() == pytest.approx(value, rel=1e-6)
    assert total.item() == pytest.approx(sum(expect.values()), rel=1e-6)
    # LR-consistency branch: its L1 added, and the KL weight becomes 1e-4.
    lr_clean = torch.rand(2, 3, 4, 3, generator=g)
    total2, parts2 = KULNetLoss(s, lr_consistency_weight=1.0)(out, hr, k_true, lr_clean)
    assert parts2["l_kl"].item() == pytest.approx(1e-4 * kl_loss(mean, log_var).item(), rel=1e-6)
    assert total2.item() == pytest.approx(sum(v.item() for v in parts2.values()), rel=1e-6)


def test_lr_consistency_is_zero_for_the_true_kernel():
    hr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    deg = Degradation(4, 11, random_noise=False, noise=0.0)
    d = deg(hr, generator=torch.Generator().manual_seed(3))
    # Only the 8-bit quantisation of the clean LR separates them.
    assert lr_consistency_loss(hr, d.kernel, d.lr_clean, 4).item() <= 0.5 / 255 + 1e-7
    assert lr_consistency_loss(hr, torch.roll(d.kernel, 2, 1), d.lr_clean, 4).item() > 1e-3


def _lrs(sched, steps):
    out = []
    for t in steps:
        sched.step(t)
        out.append(sched.get_lr()[0])
    return out


def test_multistep_schedule_and_resume():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = IterationLR(opt, "MultiStepLR", milestones=[120000, 240000, 360000, 480000], gamma=0.5)
    lrs = _lrs(sched, [1, 119999, 120000, 240000, 360000, 479999, 480000])
    assert lrs == pytest.approx([2e-4, 2e-4, 1e-4, 5e-5, 2.5e-5, 2.5e-5, 1.25e-5])
    # warm-up: linear to the base lr
    sched = IterationLR(opt, "MultiStepLR", milestones=[10], gamma=0.5, warmup_iter=4)
    assert _lrs(sched, [1, 2, 3, 4, 10]) == pytest.approx([5e-5, 1e-4, 1.5e-4, 2e-4, 1e-4])
    # resume: a fresh scheduler loaded from the state continues identically
    state = sched.state_dict()
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched2 = IterationLR(opt2, "MultiStepLR", milestones=[10], gamma=0.5, warmup_iter=4)
    sched2.load_state_dict(state)
    assert sched2.get_lr() == sched.get_lr()
    assert _lrs(sched2, range(11, 20)) == _lrs(sched, range(11, 20))


def test_cosine_restarts():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = IterationLR(opt, "CosineAnnealingRestartLR", periods=[10, 10], weights=[1.0, 0.5], eta_min=0.0)
    lrs = _lrs(sched, [5, 10, 15, 20])
    assert lrs == pytest.approx([0.5, 0.0, 0.25, 0.0], abs=1e-12)
