"""Speed paths equal the plain implementation (float tolerance); the benchmark runs and writes JSON.

No timing asserts: the benchmark smoke test checks the schema and that figures are positive/finite.
"""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from models.modules.operators import (A, At, _fast_len, blur_batch, blur_fft,
                                      blur_transpose_batch, kernel_spectrum, resolve_blur_impl)
from _eval_helpers import make_thresholds_positive
from models.modules.kulnet import KULNet
from utils.errors import KULNetError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def test_fft_operators_and_gradients_match_direct():
    scale = 3
    x, k = _inputs(height=3 * 13, width=3 * 11)
    y = torch.rand(2, 3, 13, 11, dtype=torch.float64)
    torch.testing.assert_close(A(x, k, scale, "fft"), A(x, k, scale), rtol=0, atol=1e-13)
    torch.testing.assert_close(At(y, k, scale, "fft"), At(y, k, scale), rtol=0, atol=1e-13)
    grads = []
    for impl in ("direct", "fft"):
        xx, kk = x.clone().requires_grad_(), k.clone().requires_grad_()
        (At(A(xx, kk, scale, impl), kk, scale, impl) ** 2).sum().backward()
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
    torch.manual_seed(scale)
    fast = KULNet(scale=scale).eval()
    if positive_thresholds:  # for comparisons in bf16 (see make_thresholds_positive)
        make_thresholds_positive(fast)
    plain = KULNet(scale=scale).eval()
    plain.load_state_dict(fast.state_dict())
    plain.use_plain_path()
    return fast, plain


@pytest.mark.parametrize("scale", [2, 4])
def test_optimised_network_equals_plain_fp32(scale):
    """Default speed options (FFT blur, channels-last U-Net on the CPU, fused dense fusion, split
    decoder concatenations, in-place ReLUs) vs plain."""
    fast, plain = _nets(scale)
    assert fast.blur_impl == "auto" and fast.channels_last is None
    lr = torch.rand(2, 3, 19, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = fast(lr), plain(lr)
    torch.testing.assert_close(a.kernel, b.kernel, rtol=0, atol=1e-7)
    torch.testing.assert_close(a.mean, b.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.sr, b.sr, rtol=0, atol=2e-5)
    assert a.sr.is_contiguous() and a.mean.is_contiguous()


def test_each_speed_option_alone_equals_plain():
    fast, plain = _nets(4)
    lr = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = plain(lr).sr
        for blur, cl, dense, split in (("fft", False, False, False), ("direct", False, False, False),
                                       ("direct", True, False, False),
                                       ("direct", False, True, False), ("direct", False, False, True),
                                       ("fft", True, True, True)):
            fast.blur_impl, fast.channels_last = blur, cl
            fast.SR_net.fused_dense, fast.SR_net.Decoding.split_concat = dense, split
            torch.testing.assert_close(fast(lr).sr, ref, rtol=0, atol=2e-5)
    with pytest.raises(KULNetError):
        fast.blur_impl = "winograd"


def test_optimised_training_gradients_equal_plain():
    fast, plain = _nets(2)
    fast.train(), plain.train()
    lr = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    grads = []
    for net in (fast, plain):
        torch.manual_seed(7)  # same latent noise
        out = net(lr)
        (out.sr.abs().mean() + out.kernel.pow(2).sum() + out.mean.mean()).backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-6, msg=name)


def test_matched_weight_layout_equals_plain_and_spares_the_gradient_conversions(tmp_path):
    """KULNet.match_weight_layout: the U-Net and estimator weights channels-last where their maps
    are (both parts, as on CUDA), the DLSM's conv/Den_con as they are; forward and gradients equal
    the plain path; autograd no longer converts weight gradients (new_empty_strided + copy_ per
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

    fast, plain = _nets(2)
    fast.train(), plain.train()
    fast.channels_last = True
    assert fast.match_weight_layout("cpu") is fast
    convs = [m for m in fast.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    sr = fast.SR_net
    unet = {id(m) for part in (sr.Encoding, sr.Decoding, fast.kernel_extra) for m in part.modules()}
    for conv in (c for c in convs if c.kernel_size != (1, 1)):  # a 1x1 weight is in both layouts at once
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == (id(conv) in unet)
        assert conv.weight.is_contiguous() == (id(conv) not in unet)
    lr = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    grads, conversions = [], []
    for net in (fast, plain):
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
    fast.match_weight_layout("cpu")
    save_network(fast, str(tmp_path / "w.pth"))
    assert all(t.is_contiguous() for t in read_checkpoint(str(tmp_path / "w.pth"))[1].values())
    fast.channels_last = None
    fast.match_weight_layout("cpu")  # the CPU default: the estimator runs NCHW, its weights too
    assert fast.kernel_extra.Conv_tail.Conv_end.weight.is_contiguous()
    assert sr.Decoding.D4[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_estimator_samples_the_same_latent_noise_in_training():
    """On CUDA the estimator runs channels-last by default; its training noise must be the same
    numbers at the same pixels as in the plain layout (randn_like would follow the layout)."""
    fast, plain = _nets(2)
    fast.channels_last = True  # both parts, as on CUDA
    fast.train(), plain.train()
    lr = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    outs = []
    for net in (fast, plain):
        torch.manual_seed(7)
        outs.append(net(lr))
    torch.testing.assert_close(outs[0].kernel, outs[1].kernel, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(outs[0].sr, outs[1].sr, rtol=1e-4, atol=1e-5)


def _dlsm_pair(n_stages=3, fused_dense=True, split_concat=True):
    """A DLSM with the given memory options and a literal twin (same weights, float64)."""
    from models.modules.dlsm import DLSM

    torch.manual_seed(5)
    fused = DLSM(scale=2, nf=8, n_stages=n_stages).double()
    with torch.no_grad():
        for name, param in fused.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.1)  # biases start at zero: make a wrong bias term show
    literal = DLSM(scale=2, nf=8, n_stages=n_stages).double()
    literal.load_state_dict(fused.state_dict())
    literal.fused_dense, literal.Decoding.split_concat = False, False
    fused.fused_dense, fused.Decoding.split_concat = fused_dense, split_concat
    for net in (fused, literal):
        net.blur_impl, net.channels_last = "direct", False
        net.delta_0.data.fill_(-0.05)  # t < 0 at some pixels: both prox branches are exercised
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
    for net, splits in ((fused, 4), (literal, 0)):
        counter = OpCounter()
        with counter:
            net(y, k).sum().backward()
        counts = {name: n for (_, name), n in counter.counts.items()}
        assert counts.get("flip", 0) == 2, counts  # forward and backward, for the 2T+1 = 7 Aᵀ
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
    fast, plain = _nets(2, positive_thresholds=True)
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = plain(lr).sr
        got = fast.to(torch.bfloat16)(lr.to(torch.bfloat16)).sr
    assert got.dtype == torch.bfloat16 and (got.float() - ref).abs().max() < 0.1
    meta = KULNet(scale=2, est_nf=8, sr_nf=8).to("meta")
    assert meta(torch.empty(1, 3, 16, 16, device="meta")).sr.shape == (1, 3, 32, 32)


def test_kernel_map_optional_and_state_dict_unchanged():
    fast, plain = _nets(4)
    assert list(fast.state_dict()) == list(KULNet(scale=4).state_dict())
    lr = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        kernel, mean, log_var, kmap = fast.estimate_kernel(lr, return_kernel_map=True)
        assert kmap.shape == (1, 441, 10, 10) and kmap.is_contiguous()
        assert fast.kernel_extra(lr, return_kernel_map=False)[3] is None
        torch.testing.assert_close(kmap.mean(dim=(2, 3)).view(1, 21, 21), kernel)


def test_channels_last_default_per_device():
    """None (default): the DLSM U-Net in channels-last on the CPU and CUDA, the estimator on CUDA
    only (the H100 measurement of the first device session); True/False force both."""
    net = KULNet(scale=4, est_nf=8, sr_nf=8, n_stages=1)
    on = {d: torch.device(d) for d in ("cpu", "cuda", "meta")}
    assert net.channels_last is None
    assert [net.SR_net._use_channels_last(on[d]) for d in on] == [True, True, False]
    assert [net.kernel_extra._use_channels_last(on[d]) for d in on] == [False, True, False]
    for value in (True, False):
        net.channels_last = value
        assert all(part._use_channels_last(on[d]) == value for part in (net.SR_net, net.kernel_extra)
                   for d in on)


def test_time_call_after_warmup_runs_between_warmup_and_timed_calls():
    from benchmarks.timing import time_call

    calls = []
    result = time_call(lambda: calls.append("call"), torch.device("cpu"), repeats=3, warmup=2,
                       after_warmup=lambda: calls.append("reset"))
    assert calls == ["call", "call", "reset", "call", "call", "call"]
    assert result["repeats"] == 3 and result["warmup"] == 2


def test_benchmark_smoke(tmp_path, repo_root):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, os.path.join(repo_root, "codes", "benchmarks", "benchmark.py"), "--device", "cpu",
           "--scale", "2", "--batch", "2", "--gt_size", "32", "--infer_sizes", "16", "--repeats", "1",
           "--warmup", "0", "--threads", "1", "--json", str(out), "--profile", str(tmp_path / "prof.txt")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "train step" in proc.stdout and "inference LR 16x16" in proc.stdout
    train_prof, infer_prof = (tmp_path / "prof.txt").read_text(), (tmp_path / "prof_infer.txt").read_text()
    assert train_prof.startswith("x2 training step, batch 2, GT 32, fp32: 3 calls under torch.profiler")
    assert infer_prof.startswith("x2 inference, LR 16x16, fp32: 3 calls under torch.profiler")
    assert "convolution_backward" in train_prof and "convolution_backward" not in infer_prof
    assert "convolution" in infer_prof
    report = json.loads(out.read_text())
    for key in ("device", "device_name", "torch", "threads", "args", "results"):
        assert key in report
    res = report["results"]
    assert set(res) == {"train", "degrade", "infer", "flops"}

    def positive(d, keys):
        for key in keys:
            assert math.isfinite(d[key]) and d[key] > 0, (key, d[key])

    positive(res["train"], ("ms", "it_per_s", "peak_mem_mib", "cpu_ms", "tflops"))
    assert res["train"]["batch"] == 2 and res["train"]["gt_size"] == 32
    positive(res["degrade"], ("ms", "peak_mem_mib"))
    assert [d["lr_size"] for d in res["infer"]] == [16]
    positive(res["infer"][0], ("ms", "peak_mem_mib"))
    positive(res["flops"]["train_size"], ("forward_gflop", "step_gflop"))
    assert res["flops"]["train_size"]["step_gflop"] > res["flops"]["train_size"]["forward_gflop"]
    positive(res["flops"]["issue_reference"], ("forward_gflop",))


def test_profile_device_busy_counts_device_events_once():
    """The busy time sums the kernels and copies only: the CPU operators that launched them carry the
    same device time, and user annotations are not device work."""
    from types import SimpleNamespace

    from benchmarks.benchmark import device_busy

    def event(kind, us, count, annotation=False):
        return SimpleNamespace(device_type=f"DeviceType.{kind}", self_device_time_total=us, count=count,
                               is_user_annotation=annotation)

    averages = [event("CPU", 900.0, 6),  # aten::convolution: its kernels' time again
                event("CUDA", 600.0, 6), event("CUDA", 300.0, 3),
                event("CUDA", 5000.0, 3, annotation=True)]
    busy_ms, launches = device_busy(averages, calls=3)
    assert busy_ms == pytest.approx(0.3) and launches == 3


def test_profile_runs_after_the_json_is_written(tmp_path, monkeypatch):
    """A run stopped by its time limit while profiling keeps its figures."""
    import benchmarks.benchmark as bench

    def stop(*args, **kwargs):
        raise TimeoutError("the device script's timeout")

    monkeypatch.setattr(bench, "write_profile", stop)
    out = tmp_path / "bench.json"
    with pytest.raises(TimeoutError):
        bench.main(["--device", "cpu", "--parts", "infer", "--infer_sizes", "8", "--repeats", "1",
                    "--warmup", "0", "--json", str(out), "--profile", str(tmp_path / "p.txt")])
    assert json.loads(out.read_text())["results"]["infer"][0]["lr_size"] == 8


def test_benchmark_plain_switch_turns_every_option_off():
    import argparse

    from benchmarks.benchmark import _configure

    net = KULNet(scale=2, est_nf=8, sr_nf=8, n_stages=1)

    def memory(n):
        return n.SR_net.fused_dense, n.SR_net.Decoding.split_concat, n.kernel_extra.tail_band_rows

    def options(plain=False, memory_options="on", weight_layout="matched"):
        return argparse.Namespace(plain=plain, blur="fft", channels_last="on", memory_options=memory_options,
                                  weight_layout=weight_layout)

    def weights_channels_last(n):
        return {n.SR_net.Encoding.E1[0].weight.is_contiguous(memory_format=torch.channels_last),
                n.kernel_extra.Conv_tail.Conv_end.weight.is_contiguous(memory_format=torch.channels_last)}

    _configure(net, options())
    assert (net.blur_impl, net.channels_last) == ("fft", True) and memory(net) == (True, True, None)
    assert weights_channels_last(net) == {True}
    _configure(net, options(memory_options="off", weight_layout="contiguous"))
    assert (net.blur_impl, net.channels_last) == ("fft", True) and memory(net) == (False, False, 0)
    assert weights_channels_last(net) == {False}
    _configure(net, options())
    assert memory(net) == memory(KULNet(scale=2, est_nf=8, sr_nf=8, n_stages=1))  # the defaults again
    _configure(net, options(plain=True))
    assert (net.blur_impl, net.channels_last) == ("transposed", False) and memory(net) == (False, False, 0)
    assert weights_channels_last(net) == {False}


def test_op_count_phases_and_invariants():
    """Every forward convolution has one backward; the memory options add operators to a step (the
    reason to measure them in training on a GPU); the count is the same for every batch > 1."""
    from benchmarks.op_count import PHASES, count_step

    default = count_step(scale=2)
    assert tuple(default) == PHASES
    conv = default["forward"].counts[("compute", "convolution")]
    assert conv > 100 and default["backward"].counts[("compute", "convolution_backward")] == conv
    assert default["forward"].total("scalar") == 0 and default["backward"].total("scalar") == 0

    def compute(counters):
        return sum(c.total("compute") for c in counters.values())

    lean = count_step(scale=2, memory_options=False)
    assert compute(lean) < compute(default)
    assert compute(count_step(scale=2, batch=3)) == compute(default)


def test_flops_match_issue_reference():
    """The issue's figure: x4 training forward, batch 16, LR 48 = 843 GFLOP (counted on meta, instant)."""
    from benchmarks.benchmark import count_flops

    gflop = count_flops(4, 16, 48, with_step=False)["forward_gflop"]
    assert abs(gflop - 843) < 1.0


def test_benchmark_bad_arguments(repo_root):
    script = os.path.join(repo_root, "codes", "benchmarks", "benchmark.py")
    for extra in (["--parts", "train,warp"], ["--scale", "4", "--gt_size", "30"], ["--infer_sizes", "a"]):
        proc = subprocess.run([sys.executable, script, "--device", "cpu", *extra], capture_output=True,
                              text=True, timeout=120, cwd=repo_root)
        assert proc.returncode == 2 and proc.stderr.startswith("error: "), (extra, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_live_tensor_peak_meter_counts_storages_and_frees():
    from benchmarks.live_tensors import LiveTensorPeak

    with LiveTensorPeak() as meter:
        a = torch.zeros(256, 1024)  # 1 MiB
        b = torch.zeros(512, 1024)  # 2 MiB
        view = b[:10]  # a view: no new storage
        del a
        c = torch.zeros(128, 1024)  # 0.5 MiB
    assert meter.peak == 3 * 2 ** 20
    assert meter.current == int(2.5 * 2 ** 20)
    assert meter.at_peak[0][0] == 2 * 2 ** 20 and view.shape == (10, 1024) and c.numel() > 0


def test_memory_options_lower_the_peak_of_live_tensors():
    """The point of fused_dense / split_concat: a lower inference peak than the plain path."""
    from benchmarks.live_tensors import LiveTensorPeak

    fast, plain = _nets(4)
    fast.blur_impl, fast.channels_last = "direct", False  # the memory options alone
    lr = torch.rand(1, 3, 64, 64)  # maps large beside the weights (the decoder's split copies are 2 MiB)
    peaks = []
    for net in (fast, plain):
        with torch.no_grad(), LiveTensorPeak() as meter:
            net(lr)
        peaks.append(meter.peak)
    assert peaks[0] < 0.7 * peaks[1], peaks


def test_gpu_check_dry_run_and_rendered_tables(tmp_path):
    """gpu_check.sh end to end on the CPU (DRY_RUN: tiny sizes) with the interpreter given as PYTHON,
    then its tables rendered into a copy of codes/benchmarks/README.md from its JSON."""
    import shutil

    from benchmarks.render_tables import GPU_RUNS, main as render

    out = tmp_path / "check"
    env = {**os.environ, "DRY_RUN": "1", "DEADLINE": "900", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "codes/benchmarks/gpu_check.sh", str(out)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for stem in GPU_RUNS:
        assert f"{stem}: exit 0" in proc.stdout, proc.stdout
        report = json.loads((out / f"{stem}.json").read_text())
        assert report["results"]["train"]["ms"] > 0
    defaults = json.loads((out / "x4_defaults.json").read_text())["results"]
    assert {"train", "infer", "degrade", "blur"} <= set(defaults)
    profile = json.loads((out / "x4_profile.json").read_text())
    assert len(profile["top"]) == 15 and abs(sum(r["share"] for r in profile["top"]) - 1) < 1  # the top 15 only

    readme = tmp_path / "README.md"
    shutil.copy(os.path.join(REPO_ROOT, "codes", "benchmarks", "README.md"), readme)
    assert render([str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    train_ms = json.loads((out / "x4_eager.json").read_text())["results"]["train"]["ms"]
    assert f"| compile eager | {train_ms:.1f} |" in text  # the figure comes from the JSON
    assert "| defaults (fp16, compile auto, blur auto) |" in text and "Profile of the x4 step" in text
    assert "| cuda | training | 192x192 | fft |" in text  # the rule table, from BLUR_RULES
