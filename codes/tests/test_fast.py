"""The fast forms of KULNet (models/fast) against the literal network (models/modules): values and
gradients to float rounding, one option at a time and all together, weight layouts, memory."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _eval_helpers import make_thresholds_positive

from models.fast import accelerate, is_accelerated, match_weight_layout, plain
from models.fast.dlsm import FastDecoding, FastDLSM
from models.fast.kernel_estimator import FastKernelEstimator, banded_mean_softmax, tail_band_rows
from models.fast.operators import FastDegradationOperators, _fast_len, blur_fft, kernel_spectrum, resolve_blur_impl
from models.modules.kernel_estimator import KernelEstimator
from models.modules.kulnet import KULNet
from models.modules.operators import A, At, blur_batch, blur_transpose_batch
from utils.errors import KULNetError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these tests are tiny, and spinning OpenMP threads on a loaded 2-core
    machine make tiny ops up to 40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs(batch=2, channels=3, height=37, width=52, l=21, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, height, width, generator=gen, dtype=dtype)
    k = torch.rand(batch, l, l, generator=gen, dtype=dtype)
    k[:, :, -(l // 5 + 1):] = 0  # asymmetric: a wrong flip or shift shows
    k[:, :1] = 0
    return x, k / k.sum(dim=(1, 2), keepdim=True)


def _ops(k, scale, hr_size, impl):
    """A and Aᵀ of one blur implementation (the literal operators for 'transposed')."""
    ops = FastDegradationOperators(k, scale, 3, hr_size, impl)
    return ops.A, ops.At


def _is_even_5_smooth(v):
    if v % 2:
        return False
    for p in (2, 3, 5):
        while v % p == 0:
            v //= p
    return v == 1


def test_fast_len_is_even_5_smooth_and_minimal():
    for n in range(1, 300):
        m = _fast_len(n)
        assert m >= n and _is_even_5_smooth(m)
        assert not any(_is_even_5_smooth(v) for v in range(n, m))


@pytest.mark.parametrize("size", [(19, 26), (37, 52), (64, 48), (5, 7)])
@pytest.mark.parametrize("l", [21, 3, 9])
def test_fft_blur_equals_direct_float64(size, l):
    x, k = _inputs(height=size[0], width=size[1], l=l)
    torch.testing.assert_close(blur_fft(x, k), blur_batch(x, k), rtol=0, atol=1e-13)
    torch.testing.assert_close(blur_fft(x, k, transpose=True), blur_transpose_batch(x, k), rtol=0, atol=1e-13)


def test_fft_blur_float32_and_spectrum_reuse():
    x, k = _inputs(height=70, width=45, dtype=torch.float32)
    spec = kernel_spectrum(k, (70, 45))
    out = blur_fft(x, k, spectrum=spec)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, blur_batch(x, k), rtol=0, atol=2e-6)
    torch.testing.assert_close(blur_fft(x, None, True, spec), blur_transpose_batch(x, k), rtol=0, atol=2e-6)


def test_fft_operators_and_gradients_match_literal():
    scale = 3
    x, k = _inputs(height=3 * 13, width=3 * 11)
    y = torch.rand(2, 3, 13, 11, dtype=torch.float64)
    fft_a, fft_at = _ops(k, scale, x.shape[-2:], "fft")
    torch.testing.assert_close(fft_a(x), A(x, k, scale), rtol=0, atol=1e-13)
    torch.testing.assert_close(fft_at(y), At(y, k, scale), rtol=0, atol=1e-13)
    grads = []
    for impl in ("transposed", "fft"):
        xx, kk = x.clone().requires_grad_(), k.clone().requires_grad_()
        a, at = _ops(kk, scale, x.shape[-2:], impl)
        (at(a(xx)) ** 2).sum().backward()
        grads.append((xx.grad, kk.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-10, atol=1e-12)


def test_resolve_blur_impl():
    # the CPU: FFT from 32x32 on, training or not
    for training in (True, False):
        assert resolve_blur_impl("auto", (32, 32), "cpu", training) == "fft"
        assert resolve_blur_impl("auto", (31, 32), "cpu", training) == "direct"
    # CUDA: FFT for training maps of the x4 crop (192) and larger; x2/x3 crops and inference: direct
    assert resolve_blur_impl("auto", (192, 192), "cuda", training=True) == "fft"
    assert resolve_blur_impl("auto", (144, 144), "cuda", training=True) == "direct"
    assert resolve_blur_impl("auto", (96, 96), "cuda", training=True) == "direct"
    assert resolve_blur_impl("auto", (1024, 1024), "cuda", training=False) == "direct"
    with torch.no_grad():  # unset: autograd's state decides
        assert resolve_blur_impl("auto", (192, 192), "cuda") == "direct"
    assert resolve_blur_impl("auto", (192, 192), "cuda") == "fft"
    assert resolve_blur_impl("auto", (512, 512), "meta") == "direct"  # another device: direct
    assert resolve_blur_impl("direct", (512, 512), "cpu") == "direct"
    assert resolve_blur_impl("transposed", (512, 512), "cpu") == "transposed"
    with pytest.raises(ValueError):
        resolve_blur_impl("winograd", (8, 8), "cpu")


def _nets(scale, positive_thresholds=False):
    """(accelerated KULNet on the CPU, its literal twin with the same weights)."""
    torch.manual_seed(scale)
    fast = KULNet(scale=scale).eval()
    if positive_thresholds:  # for comparisons in bf16 (see make_thresholds_positive)
        make_thresholds_positive(fast)
    literal = KULNet(scale=scale).eval()
    literal.load_state_dict(fast.state_dict())
    return accelerate(fast, "cpu"), literal


@pytest.mark.parametrize("scale", [2, 4])
def test_optimised_network_equals_plain_fp32(scale):
    """Default speed options (FFT blur, channels-last U-Net on the CPU, fused dense fusion, split
    decoder concatenations, in-place ReLUs) vs plain."""
    fast, literal = _nets(scale)
    assert is_accelerated(fast) and not is_accelerated(literal)
    assert fast.SR_net.blur_impl == "auto" and fast.SR_net.channels_last is None
    lr = torch.rand(2, 3, 19, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = fast(lr), literal(lr)
    torch.testing.assert_close(a.kernel, b.kernel, rtol=0, atol=1e-7)
    torch.testing.assert_close(a.mean, b.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.sr, b.sr, rtol=0, atol=2e-5)
    assert a.sr.is_contiguous() and a.mean.is_contiguous()


def test_each_speed_option_alone_equals_literal():
    fast, literal = _nets(4)
    lr = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = literal(lr).sr
        for blur, cl, dense, split in (("fft", False, False, False), ("direct", False, False, False),
                                       ("transposed", False, False, False), ("direct", True, False, False),
                                       ("direct", False, True, False), ("direct", False, False, True),
                                       ("fft", True, True, True)):
            accelerate(fast, "cpu", blur_impl=blur, channels_last=cl)
            fast.SR_net.fused_dense, fast.SR_net.Decoding.split_concat = dense, split
            torch.testing.assert_close(fast(lr).sr, ref, rtol=0, atol=2e-5)
    with pytest.raises(KULNetError, match="blur_impl='winograd'"):
        accelerate(fast, blur_impl="winograd")


def test_plain_restores_the_literal_network_and_keys_never_change():
    fast, literal = _nets(2)
    keys = list(literal.state_dict())
    assert list(fast.state_dict()) == keys and type(fast.SR_net) is FastDLSM
    assert type(fast.SR_net.Decoding) is FastDecoding and type(fast.kernel_extra) is FastKernelEstimator
    assert plain(fast) is fast and not is_accelerated(fast) and list(fast.state_dict()) == keys
    assert all(p.is_contiguous() for p in fast.parameters())
    assert "blur_impl" not in vars(fast.SR_net) and "tail_band_rows" not in vars(fast.kernel_extra)
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(fast(lr).sr, literal(lr).sr)  # the same operations again: bit-identical
    with pytest.raises(KULNetError, match="not a KULNet"):
        accelerate(torch.nn.Linear(2, 2))


def test_optimised_training_gradients_equal_literal():
    fast, literal = _nets(2)
    fast.train(), literal.train()
    lr = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    grads = []
    for net in (fast, literal):
        torch.manual_seed(7)  # same latent noise
        out = net(lr)
        (out.sr.abs().mean() + out.kernel.pow(2).sum() + out.mean.mean()).backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-6, msg=name)


def test_matched_weight_layout_equals_plain_and_spares_the_gradient_conversions(tmp_path):
    """match_weight_layout: the U-Net and estimator weights channels-last where their maps
    are (both parts, as on CUDA), the DLSM's conv/Den_con as they are; forward and gradients equal
    the literal network; autograd no longer converts weight gradients (new_empty_strided + copy_ per
    weight in AccumulateGrad), which it does with contiguous weights; checkpoints stay contiguous."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from models.networks import read_checkpoint, save_network

    class WeightGradConversions(TorchDispatchMode):
        """Counts new 4-D tensors made with given strides: AccumulateGrad's layout conversions."""
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ == "new_empty_strided" and len(args[1]) == 4:
                self.count += 1
            return func(*args, **(kwargs or {}))

    fast, literal = _nets(2)
    fast.train(), literal.train()
    assert accelerate(fast, "cpu", channels_last=True) is fast
    convs = [m for m in fast.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    sr = fast.SR_net
    unet = {id(m) for part in (sr.Encoding, sr.Decoding, fast.kernel_extra) for m in part.modules()}
    for conv in (c for c in convs if c.kernel_size != (1, 1)):  # a 1x1 weight is in both layouts at once
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == (id(conv) in unet)
        assert conv.weight.is_contiguous() == (id(conv) not in unet)
    lr = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    grads, conversions = [], []
    for net in (fast, literal):
        torch.manual_seed(7)
        out = net(lr)
        with WeightGradConversions() as counter:
            (out.sr.abs().mean() + out.kernel.pow(2).sum() + out.mean.mean()).backward()
        conversions.append(counter.count)
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-6, msg=name)
    assert conversions == [0, 0]
    fast.to(memory_format=torch.contiguous_format)  # channels-last maps, contiguous weights: converted
    fast.zero_grad(set_to_none=True)
    with WeightGradConversions() as counter:
        fast(lr).sr.sum().backward()
    assert counter.count > 20
    match_weight_layout(fast, "cpu")
    save_network(fast, str(tmp_path / "w.pth"))
    assert all(t.is_contiguous() for t in read_checkpoint(str(tmp_path / "w.pth"))[1].values())
    accelerate(fast, "cpu")  # the CPU default: the estimator runs NCHW, its weights too
    assert fast.kernel_extra.Conv_tail.Conv_end.weight.is_contiguous()
    assert sr.Decoding.D4[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_estimator_samples_the_same_latent_noise_in_training():
    """On CUDA the estimator runs channels-last by default; its training noise must be the same
    numbers at the same pixels as in the plain layout (randn_like would follow the layout)."""
    fast, literal = _nets(2)
    accelerate(fast, "cpu", channels_last=True)  # both parts, as on CUDA
    fast.train(), literal.train()
    lr = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    outs = []
    for net in (fast, literal):
        torch.manual_seed(7)
        outs.append(net(lr))
    torch.testing.assert_close(outs[0].kernel, outs[1].kernel, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(outs[0].sr, outs[1].sr, rtol=1e-4, atol=1e-5)


def _dlsm_pair(n_stages=3, fused_dense=True, split_concat=True):
    """A fast DLSM with the given memory options (direct blur, NCHW) and its literal twin (same
    weights, float64)."""
    from models.modules.dlsm import DLSM

    torch.manual_seed(5)
    fused = DLSM(scale=2, nf=8, n_stages=n_stages).double()
    with torch.no_grad():
        for name, param in fused.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.1)  # biases start at zero: make a wrong bias term show
        fused.delta_0.fill_(-0.05)  # t < 0 at some pixels: both prox branches are exercised
    literal = DLSM(scale=2, nf=8, n_stages=n_stages).double()
    literal.load_state_dict(fused.state_dict())
    fused.__class__, fused.Decoding.__class__ = FastDLSM, FastDecoding  # what accelerate does to a KULNet's
    fused.blur_impl, fused.channels_last = "direct", False
    fused.fused_dense, fused.Decoding.split_concat = fused_dense, split_concat
    return fused, literal


def test_fused_dense_weights_are_the_composed_maps_float64():
    """Closed form: Den_con(cat_j conv(X_j)) == conv3x3(cat_j X_j; composed weight, bias)."""
    fused, _ = _dlsm_pair()
    xs = [torch.rand(2, 3, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(j))
          for j in range(3)]
    for stage in range(3):
        literal = getattr(fused, f"Den_con{stage + 1}")(torch.cat([fused.conv(x) for x in xs[:stage + 1]], 1))
        weight, bias = fused.dense_fusion_weights(stage)
        assert weight.shape == (8, 3 * (stage + 1), 3, 3) and bias.shape == (8,)
        composed = torch.nn.functional.conv2d(torch.cat(xs[:stage + 1], 1), weight.double(), bias.double(),
                                              padding=1)
        torch.testing.assert_close(composed, literal, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fused_dense,split_concat", [(True, False), (False, True), (True, True)])
def test_memory_options_forward_and_gradients_equal_literal_float64(fused_dense, split_concat):
    """fused_dense and Decoding.split_concat, alone and together, vs the literal network."""
    fused, literal = _dlsm_pair(fused_dense=fused_dense, split_concat=split_concat)
    y = torch.rand(2, 3, 10, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    k = _inputs(l=9)[1]
    outs, grads = [], []
    for net in (fused, literal):
        out = net(y, k)
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in net.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-12)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:  # conv.*, Den_con*.*, D*.0.* get theirs through composed/split weights
        assert grads[0][name] is not None and grads[0][name].abs().sum() > 0, name
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-9, atol=1e-12, msg=name)


def test_dlsm_forward_prepares_kernel_weights_and_decoder_splits_once():
    """One forward flips the kernels once (not once per Aᵀ) and splits each decoder block's first
    weight once (not twice a stage): operators a GPU step would otherwise launch every time."""
    from benchmarks.op_count import OpCounter

    fused, literal = _dlsm_pair(n_stages=3)
    y = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    k = _inputs(l=9)[1][:1].requires_grad_()
    for net, flips, splits in ((fused, 2, 4), (literal, 0, 0)):  # the literal Aᵀ is a transposed conv
        counter = OpCounter()
        with counter:
            net(y, k).sum().backward()
        counts = {name: n for (_, name), n in counter.counts.items()}
        assert counts.get("flip", 0) == flips, counts  # forward and backward, for the 2T+1 = 7 Aᵀ
        assert counts.get("split_with_sizes", 0) == splits
        assert counts.get("convolution", 0) > 0


def test_fused_dense_under_bf16_autocast_close_to_literal():
    fused, literal = _dlsm_pair()
    fused.float(), literal.float()
    y = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    k = _inputs(l=9, dtype=torch.float32)[1][:1]
    with torch.no_grad():
        ref = literal(y, k)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            weight, _ = fused.dense_fusion_weights(2)
            got = fused(y, k)
    assert weight.dtype == torch.float32  # composed in fp32, cast by autocast at the conv only
    assert (got.float() - ref).abs().max() < 0.05


def test_default_network_runs_in_bfloat16_and_on_the_meta_device():
    """The composed fusion weights follow the parameters' dtype and need no autocast support."""
    fast, literal = _nets(2, positive_thresholds=True)
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = literal(lr).sr
        got = fast.to(torch.bfloat16)(lr.to(torch.bfloat16)).sr
    assert got.dtype == torch.bfloat16 and (got.float() - ref).abs().max() < 0.1
    meta = accelerate(KULNet(scale=2, est_nf=8, sr_nf=8), "cpu").to("meta")
    assert meta(torch.empty(1, 3, 16, 16, device="meta")).sr.shape == (1, 3, 32, 32)


def test_kernel_map_optional_and_state_dict_unchanged():
    fast, _ = _nets(4)
    assert list(fast.state_dict()) == list(KULNet(scale=4).state_dict())
    lr = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        kernel, mean, log_var, kmap = fast.estimate_kernel(lr, return_kernel_map=True)
        assert kmap.shape == (1, 441, 10, 10) and kmap.is_contiguous()
        assert fast.kernel_extra(lr, return_kernel_map=False)[3] is None
        torch.testing.assert_close(kmap.mean(dim=(2, 3)).view(1, 21, 21), kernel)


def test_channels_last_default_per_device():
    """None (default): the DLSM U-Net in channels-last on the CPU and CUDA, the estimator on CUDA
    only (no gain for it on the CPU); True/False force both."""
    net = accelerate(KULNet(scale=4, est_nf=8, sr_nf=8, n_stages=1), "cpu")
    on = {d: torch.device(d) for d in ("cpu", "cuda", "meta")}
    assert net.SR_net.channels_last is None
    assert [net.SR_net.use_channels_last(on[d]) for d in on] == [True, True, False]
    assert [net.kernel_extra.use_channels_last(on[d]) for d in on] == [False, True, False]
    for value in (True, False):
        accelerate(net, "cpu", channels_last=value)
        assert all(part.use_channels_last(on[d]) == value for part in (net.SR_net, net.kernel_extra)
                   for d in on)


def test_flipped_correlation_equals_conv_transpose_in_value_and_gradients():
    """Blur impl 'direct' (Aᵀ as a correlation with the flipped kernel) against 'transposed' (the
    literal F.conv_transpose2d), float64 and float32, gradients for x and k too."""
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        x, k = _inputs(batch=2, height=3 * 9, width=3 * 7, dtype=dtype)
        y = torch.rand(2, 3, 9, 7, dtype=dtype, generator=torch.Generator().manual_seed(5))
        results = []
        for impl in ("direct", "transposed"):
            xx, kk, yy = x.clone().requires_grad_(), k.clone().requires_grad_(), y.clone().requires_grad_()
            a, at = _ops(kk, 3, xx.shape[-2:], impl)
            out = at(yy - a(xx))
            (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
            results.append((out, xx.grad, kk.grad, yy.grad))
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=0, atol=tol * max(1.0, b.abs().max().item()))


def test_prepared_operators_equal_one_off_operators_in_values_and_gradients():
    """FastDegradationOperators (weights or spectrum built once, applied 2T+1 times in a DLSM
    forward) against the literal one-off A/At, for each blur impl; float64, gradients for x, k, y."""
    scale = 3
    x, k = _inputs(batch=2, height=scale * 9, width=scale * 7)
    y = torch.rand(2, 3, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    for impl in ("direct", "transposed", "fft"):
        results = []
        for prepared in (True, False):
            xx, kk, yy = x.clone().requires_grad_(), k.clone().requires_grad_(), y.clone().requires_grad_()
            if prepared:
                a, at = _ops(kk, scale, xx.shape[-2:], impl)
            else:
                a, at = (lambda v: A(v, kk, scale)), (lambda v: At(v, kk, scale))
            out = at(yy)
            for _ in range(2):  # the stage loop's pattern: the same operators on new inputs
                out = out + at(yy - a(out + xx))
            (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
            results.append((out, xx.grad, kk.grad, yy.grad))
        for got, ref in zip(*results):
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-12 * max(1.0, ref.abs().max().item()))


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
    """A fast kernel estimator (what accelerate makes of a KULNet's) with tiny widths."""
    torch.manual_seed(seed)
    net = KernelEstimator(3, nf, 21).eval()
    net.__class__ = FastKernelEstimator
    return net


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
    import models.fast.kernel_estimator as ke

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
    import models.fast.kernel_estimator as ke

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


def test_memory_options_off_switch_bands_off():
    net = accelerate(KULNet(scale=2, est_nf=8, sr_nf=8, n_stages=1), "cpu")
    assert net.kernel_extra.tail_band_rows is None
    accelerate(net, "cpu", memory_options=False)
    assert net.kernel_extra.tail_band_rows == 0 and not net.SR_net.fused_dense
