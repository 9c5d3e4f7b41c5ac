"""KULNet: tensor names/counts, shapes, kernel validity, determinism, gradients, learning, options."""
import os

import pytest
import torch
import torch.nn.functional as F

from models.modules.dlsm import DLSM, pad_bottom_right
from models.modules.kulnet import KULNet, KULNetOutput
from models.networks import NETWORKS, define_G
from utils.errors import KULNetError

# inline copy of the reference numbers (KULNET.md §1), so the count test runs without ../shared
N_TENSORS, N_PARAMS, N_ESTIMATOR, N_SR = 126, 2_888_515, 1_437_817, 1_450_698


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _lr(batch=1, height=17, width=23, seed=0):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def net4():
    torch.manual_seed(0)
    return KULNet(scale=4).eval()


def test_parameter_counts_inline():
    net = KULNet()
    assert _count(net) == N_PARAMS
    assert _count(net.kernel_extra) == N_ESTIMATOR
    assert _count(net.SR_net) == N_SR
    assert len(net.state_dict()) == N_TENSORS


def test_state_dict_matches_reference_tsv(shared_reference):
    rows = []
    header = {}
    with open(os.path.join(shared_reference, "reference_checkpoint_keys.tsv")) as handle:
        for line in handle:
            if line.startswith("# tensors:"):
                header = dict(part.strip().split(": ") for part in line[1:].split(";"))
            elif line.strip() and not line.startswith("#"):
                name, shape = line.rstrip("\n").split("\t")
                rows.append((name, tuple(int(v) for v in shape.strip("()").split(",") if v.strip())))
    assert int(header["tensors"]) == N_TENSORS and int(header["parameters"]) == N_PARAMS
    for scale in (2, 3, 4):
        ours = [(k, tuple(v.shape)) for k, v in KULNet(scale=scale).state_dict().items()]
        assert ours == rows


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_odd_non_square(scale):
    torch.manual_seed(scale)
    net = KULNet(scale=scale).eval()
    with torch.no_grad():
        out = net(_lr(2, 17, 23))
    assert isinstance(out, KULNetOutput)
    assert out.sr.shape == (2, 3, 17 * scale, 23 * scale)
    assert out.kernel.shape == (2, 21, 21)
    assert out.mean.shape == out.log_var.shape == (2, 64, 17, 23)
    assert torch.isfinite(out.sr).all()
    torch.testing.assert_close(out.kernel.sum(dim=(1, 2)), torch.ones(2), rtol=0, atol=1e-5)
    assert (out.kernel >= 0).all() and (out.mean >= 0).all()


def test_kernel_map_and_batch_independence(net4):
    lr = _lr(2, 16, 19)
    with torch.no_grad():
        kernel, mean, log_var, kmap = net4.estimate_kernel(lr, return_kernel_map=True)
        single = net4(lr[1:])
        both = net4(lr)
    assert kmap.shape == (2, 441, 16, 19)
    torch.testing.assert_close(kmap.sum(dim=1), torch.ones(2, 16, 19))
    torch.testing.assert_close(kmap.mean(dim=(2, 3)).view(2, 21, 21), kernel)
    # no cross-talk between images of a batch
    torch.testing.assert_close(both.sr[1:], single.sr, rtol=1e-4, atol=1e-5)


def test_eval_deterministic_and_sampling_stochastic(net4):
    lr = _lr(1, 16, 16)
    with torch.no_grad():
        torch.manual_seed(1)
        a = net4(lr)
        torch.manual_seed(2)
        b = net4(lr)
        assert torch.equal(a.sr, b.sr) and torch.equal(a.kernel, b.kernel)
        net4.sample_at_eval = True
        try:
            torch.manual_seed(1)
            c = net4.estimate_kernel(lr)[0]
            torch.manual_seed(1)
            c_again = net4.estimate_kernel(lr)[0]
            torch.manual_seed(2)
            d = net4.estimate_kernel(lr)[0]
        finally:
            net4.sample_at_eval = False
        net4.train()
        try:
            torch.manual_seed(1)
            e = net4.estimate_kernel(lr)[0]
            torch.manual_seed(2)
            f = net4.estimate_kernel(lr)[0]
        finally:
            net4.eval()
    assert torch.equal(c, c_again)
    assert not torch.equal(c, d) and not torch.equal(c, a.kernel)
    assert not torch.equal(e, f)


def test_non_blind_path_uses_given_kernel(net4):
    lr = _lr(2, 16, 18)
    k = torch.zeros(2, 21, 21)
    k[0, 10, 10] = 1.0
    k[1, 8:13, 9:12] = 1.0 / 15
    calls = []
    hook = net4.kernel_extra.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            out = net4(lr, kernel=k)
            other = net4(lr, kernel=torch.flip(k, dims=(0,)))
            direct = net4.restore(lr, k)
    finally:
        hook.remove()
    assert not calls
    assert out.kernel is k and out.mean is None and out.log_var is None
    assert torch.equal(out.sr, direct)
    assert not torch.allclose(out.sr, other.sr)


def _backward(net, lr, hr):
    out = net(lr)
    kl = (-0.5 * (1 + 2 * out.log_var - out.mean ** 2 - torch.exp(2 * out.log_var))).mean()
    (F.l1_loss(out.sr, hr) + 1e-3 * kl).backward()


def test_gradients_reach_every_parameter():
    """Every tensor is in the graph; the u head gets a gradient only from pixels in the prox's dead zone.

    At init |t| = |w·δ| ~ 1e-3 while |R - u| ~ 0.5, so no pixel has |R - u| <= t and d(out)/du = 0
    (a property of soft-thresholding, as in the authors' model). Widening δ populates the dead zone.
    """
    torch.manual_seed(0)
    net = KULNet(scale=2).train()
    lr, hr = _lr(2, 16, 18), torch.rand(2, 3, 32, 36)
    _backward(net, lr, hr)
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        if ".u_generator." not in name:
            assert param.grad.abs().sum() > 0, name
    for i in range(4):
        assert net.SR_net.get_parameter(f"delta_{i}").grad.abs() > 0
    net.zero_grad()
    with torch.no_grad():
        for i in range(4):
            net.SR_net.get_parameter(f"delta_{i}").fill_(100.0)
    _backward(net, lr, hr)
    for name, param in net.named_parameters():
        assert param.grad.abs().sum() > 0, name


def test_a_few_adam_steps_reduce_the_loss():
    torch.manual_seed(0)
    net = KULNet(scale=2, est_nf=16, sr_nf=8)
    gen = torch.Generator().manual_seed(3)
    hr = F.avg_pool2d(torch.rand(1, 3, 40, 40, generator=gen), 5, stride=1, padding=2)[..., :32, :32]
    lr = hr[..., ::2, ::2]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.eval()
    with torch.no_grad():
        before = F.l1_loss(net(lr).sr, hr).item()
    net.train()
    for _ in range(8):
        opt.zero_grad()
        F.l1_loss(net(lr).sr, hr).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        after = F.l1_loss(net(lr).sr, hr).item()
    assert after < 0.9 * before


def test_delta_init_and_dlsm_init():
    torch.manual_seed(0)
    sr = DLSM(scale=4)
    deltas = torch.cat([sr.get_parameter(f"delta_{i}") for i in range(4)])
    assert ((deltas - 0.1).abs() < 0.05).all()  # N(0.1, std 0.01)
    assert all((m.bias == 0).all() for m in sr.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("size", [(16, 16), (17, 33), (5, 7), (1, 3)])
def test_pad_bottom_right(size):
    x = torch.rand(1, 2, *size)
    out = pad_bottom_right(x, 16)
    assert out.shape[-2] % 16 == 0 and out.shape[-1] % 16 == 0
    assert out.shape[-2] - size[0] < 16 and out.shape[-1] - size[1] < 16
    assert torch.equal(out[..., :size[0], :size[1]], x)
    if size == (17, 33):
        torch.testing.assert_close(out, F.pad(x, (0, 15, 0, 15), mode="reflect"))


def test_tiny_widths_bf16_autocast_and_fullgraph_trace():
    torch.manual_seed(0)
    net = KULNet(scale=3, est_nf=8, sr_nf=8).eval()
    lr = _lr(1, 16, 21)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(lr)
    assert out.sr.shape == (1, 3, 48, 63) and torch.isfinite(out.sr.float()).all()
    torch.testing.assert_close(out.kernel.float().sum(), torch.tensor(1.0), rtol=0, atol=1e-3)
    compiled = torch.compile(net, backend="eager", fullgraph=True)  # no graph breaks
    with torch.no_grad():
        torch.testing.assert_close(compiled(lr).sr, net(lr).sr)


def test_define_G_minimal_and_full_options():
    assert NETWORKS["KULNet"] is KULNet
    net = define_G({"scale": 4})
    assert isinstance(net, KULNet) and net.scale == 4 and net.kernel_size == 21
    assert _count(net) == N_PARAMS
    net = define_G({"scale": 2, "kernel_size": 21,
                    "network_G": {"which_model_G": "KULNet", "est_nf": 8, "sr_nf": 8, "sample_at_eval": True}})
    assert net.scale == 2 and net.sample_at_eval and net.SR_net.scale == 2


@pytest.mark.parametrize("opt, text", [
    ({}, "'scale' is missing"),
    ({"scale": 4, "network_G": {"which_model_G": "MANet"}}, "which_model_G='MANet'"),
    ({"scale": 4, "network_G": {"nf": 64}}, "network_G.nf"),
    ({"scale": 4, "network_G": {"scale": 2}}, "network_G.scale"),
    ({"scale": 4, "kernel_size": 20}, "kernel_size=20"),
    ({"scale": "4"}, "scale='4': must be a positive integer"),
    ({"scale": 4, "network_G": {"sr_nf": 0}}, "network_G.sr_nf=0"),
])
def test_define_G_errors(opt, text):
    with pytest.raises(KULNetError) as err:
        define_G(opt)
    assert text in str(err.value) and "\n" not in str(err.value)
