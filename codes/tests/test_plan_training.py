"""codes/scripts/plan_training.py: iterations, compile mode and blur from the benchmark archive."""
import io
import json
import subprocess
import sys
import tarfile

import pytest

from scripts.plan_training import MIN_ITERS, SAFETY, plan, read_runs


def _runs(**trains):
    """The shape read_runs returns: name -> the JSON's results, here a train part only."""
    return {name: {"train": train} for name, train in trains.items()}


def _archive(path, runs, broken=()):
    with tarfile.open(path, "w:gz") as tar:
        for name, results in runs.items():
            data = json.dumps({"results": results}).encode()
            info = tarfile.TarInfo(f"bench/{name}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in broken:  # a run cut off while writing its JSON
            info = tarfile.TarInfo(f"bench/{name}.json")
            info.size = 3
            tar.addfile(info, io.BytesIO(b'{"r'))
    return path


def test_eager_iterations_fill_the_budget(tmp_path):
    runs = read_runs(_archive(tmp_path / "b.tgz", _runs(x4_fp16={"ms": 80.0}), broken=["x4_fp16_compile_ro"]))
    assert set(runs) == {"x4_fp16"}
    iters, mode, _, _ = plan(runs, 4, 5.0, "auto")
    assert mode == "eager" and iters == int(SAFETY * (300 - 20) * 1000 / 80.0)


def test_reduce_overhead_chosen_only_when_clearly_faster(tmp_path):
    runs = _runs(x4_fp16={"ms": 80.0}, x4_fp16_compile_ro={"ms": 40.0, "warmup_s": 60.0})
    iters, mode, _, reason = plan(runs, 4, 5.0, "auto")
    assert mode == "reduce-overhead" and iters == int(SAFETY * (300 - 20 - 60) * 1000 / 40.0)
    assert "40.0 ms against eager 80.0 ms" in reason
    runs["x4_fp16_compile_ro"]["train"]["ms"] = 72.0  # 10% faster: not worth the compilation
    iters, mode, _, _ = plan(runs, 4, 5.0, "auto")
    assert mode == "eager" and iters == int(SAFETY * 280 * 1000 / 80.0)
    assert plan(runs, 4, 5.0, "eager")[1] == "eager"
    runs["x4_fp16_compile_ro"]["train"].update(ms=40.0, warmup_s=90.0)  # a short budget: compiling costs more
    iters, mode, _, reason = plan(runs, 4, 1.5, "auto")
    assert mode == "eager" and iters == int(SAFETY * 70 * 1000 / 80.0) and "costs more than it saves" in reason
    assert plan(runs, 4, 5.0, "reduce-overhead")[1] == "reduce-overhead"  # forced


def test_other_scale_uses_its_eager_step_and_x4_compile_ratio():
    runs = _runs(x4_fp16={"ms": 80.0}, x2_fp16={"ms": 60.0}, x4_fp16_compile_ro={"ms": 40.0, "warmup_s": 50})
    iters, mode, _, _ = plan(runs, 2, 5.0, "auto")
    assert mode == "reduce-overhead" and iters == int(SAFETY * (280 - 50) * 1000 / 30.0)
    iters, mode, _, _ = plan(_runs(x4_fp16={"ms": 80.0}), 3, 5.0, "auto")  # x3: x4's step, eager
    assert mode == "eager" and iters == int(SAFETY * 280 * 1000 / 80.0)


def test_no_benchmark_or_short_budget_gives_a_constant_learning_rate(tmp_path):
    assert plan(read_runs(tmp_path / "missing.tgz"), 4, 5.0, "auto")[:2] == (None, "eager")
    assert plan(_runs(x4_fp16={"ms": 1000.0}), 4, 0.5, "auto")[0] is None  # < MIN_ITERS
    assert MIN_ITERS == 100


@pytest.mark.parametrize("runs, expected", [
    (_runs(x4_fp16={"ms": 80.0}, x4_fp16_compile_ro={"ms": 40.0, "warmup_s": 60}), "reduce-overhead"),
    ({}, "eager"),
])
def test_command_line_prints_three_words_for_the_shell(tmp_path, repo_root, runs, expected):
    archive = _archive(tmp_path / "b.tgz", runs)
    out = subprocess.run([sys.executable, "codes/scripts/plan_training.py", str(archive), "--scale", "4",
                          "--minutes", "5", "--compile", "auto"], cwd=repo_root, capture_output=True,
                         text=True, check=True)
    iters, mode, blur = out.stdout.split()
    assert mode == expected and (iters == "-") == (not runs) and blur == "auto"
    assert "plan:" in out.stderr


def test_fft_blur_chosen_for_an_eager_run_when_its_step_is_faster():
    runs = _runs(x4_fp16={"ms": 80.0}, x4_fp16_fft={"ms": 60.0})
    iters, mode, blur, reason = plan(runs, 4, 5.0, "auto")
    assert (mode, blur) == ("eager", "fft") and iters == int(SAFETY * 280 * 1000 / 60.0)
    assert "FFT blur (x4 step 60.0 against 80.0 ms)" in reason
    iters, mode, blur, _ = plan({**runs, "x2_fp16": {"train": {"ms": 50.0}}}, 2, 5.0, "auto")
    assert blur == "fft" and iters == int(SAFETY * 280 * 1000 / (50.0 * 0.75))  # x2's step, x4's ratio
    runs["x4_fp16_fft"]["train"]["ms"] = 79.0  # 1% faster: the default blur
    assert plan(runs, 4, 5.0, "auto")[2] == "auto"
    runs = _runs(x4_fp16={"ms": 80.0}, x4_fp16_fft={"ms": 60.0},
                 x4_fp16_compile_ro={"ms": 40.0, "warmup_s": 60.0})
    assert plan(runs, 4, 5.0, "auto")[1:3] == ("reduce-overhead", "auto")  # compiled: the measured default
