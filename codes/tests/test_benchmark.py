"""The benchmark scripts run and write JSON (the fast forms' equality with the literal network is
tests/test_fast.py). No timing asserts: the smoke tests check the schema and that figures are
positive and finite."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from models.fast import accelerate, is_accelerated
from models.modules.kulnet import KULNet

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    positive(res["flops"]["reference_forward"], ("forward_gflop",))


def test_profile_device_busy_counts_device_events_once():
    """The busy time sums the kernels and copies only: the CPU operators that launched them report the
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
    assert (net.SR_net.blur_impl, net.SR_net.channels_last) == ("fft", True) and memory(net) == (True, True, None)
    assert weights_channels_last(net) == {True}
    _configure(net, options(memory_options="off", weight_layout="contiguous"))
    assert (net.SR_net.blur_impl, net.SR_net.channels_last) == ("fft", True) and memory(net) == (False, False, 0)
    assert weights_channels_last(net) == {False}
    _configure(net, options())
    assert memory(net) == (True, True, None)  # the defaults again
    _configure(net, options(plain=True))
    assert not is_accelerated(net) and weights_channels_last(net) == {False}


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


def test_flops_match_the_reference_figure():
    """A reference figure: x4 training forward, batch 16, LR 48 = 843 GFLOP (counted on meta, instant)."""
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
    """The point of fused_dense / split_concat: a lower inference peak than the literal network."""
    from benchmarks.live_tensors import LiveTensorPeak

    torch.manual_seed(0)
    literal = KULNet(scale=4).eval()
    fast = KULNet(scale=4).eval()
    fast.load_state_dict(literal.state_dict())
    accelerate(fast, "cpu", blur_impl="transposed", channels_last=False)  # the memory options alone
    lr = torch.rand(1, 3, 64, 64)  # maps large beside the weights (the decoder's split copies are 2 MiB)
    peaks = []
    for net in (fast, literal):
        with torch.no_grad(), LiveTensorPeak() as meter:
            net(lr)
        peaks.append(meter.peak)
    assert peaks[0] < 0.7 * peaks[1], peaks


def test_gpu_check_dry_run_and_rendered_tables(tmp_path):
    """gpu_check.sh end to end on the CPU (DRY_RUN: tiny sizes) with the interpreter given as PYTHON,
    then its tables rendered into a copy of codes/benchmarks/README.md from its JSON."""
    import shutil

    from benchmarks.render_tables import GPU_RUNS
    from benchmarks.render_tables import main as render

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
