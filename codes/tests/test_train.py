"""Training end to end on tiny images and a tiny network (CPU): outputs, exact resume, DDP, NaN guard."""
import glob
import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from _eval_helpers import TINY_NET_YAML as TINY_NET
from _eval_helpers import record_latent_mean
from _eval_helpers import tiny_train_options as _tiny_opt
from _lmdb_helpers import write_photos

from options.options import REPO_ROOT, parse
from utils.errors import KULNetError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_photos(str(root / "train"), 8, 64, 0)
    write_photos(str(root / "val"), 2, 32, 1)
    return root


def _options(path, data_dir, exp_root, niter=6, extra=""):
    text = (
        "name: tiny\nscale: 4\nkernel_size: 11\ndevice: cpu\n"
        "datasets:\n"
        f"  train: {{dataroot_GT: {data_dir / 'train'}, GT_size: 32, batch_size: 2, n_workers: 0}}\n"
        f"  val: {{dataroot_GT: {data_dir / 'val'}}}\n"
        + TINY_NET
        + f"train: {{niter: {niter}, lr_steps: [4], val_freq: 3}}\n"
        "logger: {print_freq: 1, save_checkpoint_freq: 3, progress_bar: false}\n"
        f"path: {{experiments_root: {exp_root}}}\n" + extra
    )
    path.write_text(text)
    return str(path)


def _run(args, timeout=240, env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _loss_lines(exp_dir):
    lines = {}
    for log in sorted(glob.glob(os.path.join(exp_dir, "train_*.log"))):
        for line in open(log):
            m = re.search(r"iter:\s*(\d+), lr:(\S+)\] \[.*?\] (l_pix.*)$", line)
            if m:
                lines[int(m.group(1))] = (m.group(2), m.group(3))
    return lines


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["params"]


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory):
    """6 iterations straight: 8 images, batch 2 -> 4 iterations per epoch; checkpoints at 3 and 6."""
    root = tmp_path_factory.mktemp("straight")
    opt = _options(root / "tiny.yml", data_dir, root / "exp")
    _run(["codes/train.py", "-opt", opt])
    return root / "exp" / "tiny"


def test_short_run_writes_everything(straight_run):
    exp = str(straight_run)
    for name in ("3_G.pth", "6_G.pth", "latest_G.pth"):
        assert os.path.isfile(os.path.join(exp, "models", name))
    assert sorted(os.listdir(os.path.join(exp, "training_state"))) == ["3.state", "6.state"]
    assert glob.glob(os.path.join(exp, "*_tiny.yml"))
    resolved = parse(glob.glob(os.path.join(exp, "*_resolved_options.yml"))[0])  # re-parseable copy
    assert resolved["train"]["niter"] == 6 and resolved["network_G"]["est_nf"] == 8
    assert glob.glob(os.path.join(exp, "tb_logger", "events.out.tfevents.*"))
    for it in (3, 6):
        assert sorted(os.listdir(os.path.join(exp, "val_images", str(it)))) == [
            "00_SR.png", "00_kernel.png", "01_SR.png", "01_kernel.png"]
    losses = _loss_lines(exp)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert [float(losses[i][0]) for i in range(1, 7)] == [2e-4] * 3 + [1e-4] * 3  # milestone 4
    log = open(glob.glob(os.path.join(exp, "train_*.log"))[0]).read()
    assert re.search(r"validation at iteration 6 \(\d+\.\d s\): psnr_y \d+\.\d+, ssim_y \S+, kernel_psnr \d+\.\d+, "
                     r"lr_psnr_y", log)
    # weights load into the network with their metadata
    from models.networks import define_G, load_network

    opt = {"scale": 4, "kernel_size": 11, "network_G": {"est_nf": 8, "sr_nf": 8, "n_stages": 2}}
    meta = load_network(define_G(opt), os.path.join(exp, "models", "latest_G.pth"), expected_scale=4)
    assert meta["iteration"] == 6
    state = torch.load(os.path.join(exp, "training_state", "6.state"), weights_only=True)
    assert state["iter"] == 6 and state["epoch"] == 1 and len(state["rng"]) == 1


def test_exact_resume(straight_run, data_dir, tmp_path):
    """Resume from the mid-epoch state at iteration 3 with 2 data workers: iterations 4-6 give the
    same losses, learning rates and final weights as the straight run (0 workers)."""
    exp = tmp_path / "exp" / "tiny"
    shutil.copytree(straight_run, exp)
    for name in ("models/6_G.pth", "models/latest_G.pth", "training_state/6.state"):
        os.remove(exp / name)
    for log in glob.glob(str(exp / "train_*.log")):
        os.remove(log)
    opt = _options(tmp_path / "tiny.yml", data_dir, tmp_path / "exp")
    _run(["codes/train.py", "-opt", opt, "--auto_resume", "--set", "datasets.train.n_workers=2"])
    resumed, straight = _loss_lines(str(exp)), _loss_lines(str(straight_run))
    assert sorted(resumed) == [4, 5, 6]
    assert all(resumed[i] == straight[i] for i in (4, 5, 6))
    a, b = _weights(straight_run / "models" / "6_G.pth"), _weights(exp / "models" / "6_G.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(straight_run / "training_state" / "6.state", weights_only=True)
    sb = torch.load(exp / "training_state" / "6.state", weights_only=True)
    for k, v in sa["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], sb["optimizer"]["state"][k]["exp_avg_sq"])
    assert torch.equal(sa["rng"][0]["degradation"], sb["rng"][0]["degradation"])


def test_existing_experiment_is_archived(tmp_path):
    import train

    exp = tmp_path / "exp" / "tiny"
    (exp / "models").mkdir(parents=True)
    (exp / "models" / "old_G.pth").write_text("x")
    opt_file = tmp_path / "o.yml"
    opt_file.write_text("name: tiny\n")
    train.prepare_experiment(str(exp), False, {"opt_path": str(opt_file), "name": "tiny"}, "240101-000000")
    assert (tmp_path / "exp" / "tiny_archived_240101-000000" / "models" / "old_G.pth").exists()
    assert not (exp / "models" / "old_G.pth").exists() and (exp / "training_state").is_dir()


def test_nonfinite_loss_guard(tmp_path):
    from models import create_model

    opt = _tiny_opt(tmp_path, "train: {max_nonfinite: 3}\n")
    torch.manual_seed(0)
    model = create_model(opt, device="cpu")
    model.last_checkpoint = "experiments/w/training_state/1000.state"
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    hr = torch.rand(2, 3, 32, 32)
    bad = hr.clone()
    bad[0, 0, 5, 5] = float("nan")
    for step in (1, 2):
        model.feed_data({"hr": bad})
        assert model.optimize_parameters(step) is False
        assert model.get_current_log()["nonfinite_total"] == step
    assert all(torch.equal(before[k], v) for k, v in model.net.state_dict().items())
    # the backward ran (it is queued before the losses are read) but left nothing behind
    assert all(p.grad is None for p in model.net.parameters()) and not model.optimizer.state
    model.feed_data({"hr": hr})  # a good step resets the run of failures
    assert model.optimize_parameters(3) is True and model.nonfinite_in_row == 0
    for step in (4, 5):
        model.feed_data({"hr": bad})
        model.optimize_parameters(step)
    model.feed_data({"hr": bad})
    with pytest.raises(KULNetError, match=r"3 skipped steps in a row \(non-finite loss or gradients; "
                                          r".*learning rate too high.*"
                                          r"last good checkpoint: experiments/w/training_state/1000\.state"):
        model.optimize_parameters(6)


def _zeros_like(t, **kwargs):
    return torch.zeros_like(t, **kwargs)


def _ddp_worker(rank, opt, batch, store, out_dir):
    import torch.distributed as dist

    from models import create_model

    torch.set_num_threads(1)
    torch.randn_like = _zeros_like  # z = mean: the latent noise would differ between 1 and 2 processes
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = create_model(opt, device="cpu", rank=rank, world_size=2)
        half = slice(2 * rank, 2 * rank + 2)
        model.feed_data({"hr": batch["hr"][half]}, _Degraded(batch, half))
        model.optimize_parameters(1)
        torch.save({"loss": model.get_current_log(),
                    "grads": {n: p.grad for n, p in model.net.named_parameters()},
                    "params": model.net.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


class _Degraded:
    def __init__(self, batch, sl=slice(None)):
        self.lr, self.lr_clean, self.kernel = batch["lr"][sl], batch["lr_clean"][sl], batch["kernel"][sl]


def test_ddp_two_processes_match_one(tmp_path, monkeypatch):
    from data.degradation import Degradation
    from models import create_model

    opt = _tiny_opt(tmp_path)
    hr = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    d = Degradation(4, 11)(hr, generator=torch.Generator().manual_seed(6))
    batch = {"hr": hr, "lr": d.lr, "lr_clean": d.lr_clean, "kernel": d.kernel}
    mp.spawn(_ddp_worker, args=(opt, batch, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)

    monkeypatch.setattr(torch, "randn_like", _zeros_like)
    torch.manual_seed(0)
    model = create_model(opt, device="cpu")
    model.feed_data({"hr": hr}, _Degraded(batch))
    model.optimize_parameters(1)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in ("l_pix", "l_ker", "l_kl", "l_total"):  # equal halves: mean of means = mean
        assert (r0["loss"][key] + r1["loss"][key]) / 2 == pytest.approx(model.get_current_log()[key], rel=1e-5)
    for name, p in model.net.named_parameters():
        assert torch.allclose(r0["grads"][name], p.grad, rtol=1e-4, atol=1e-7), name
        assert torch.equal(r0["grads"][name], r1["grads"][name])  # all-reduced: identical on ranks
    for name, v in model.net.state_dict().items():
        assert torch.allclose(r0["params"][name], v, rtol=1e-5, atol=1e-6), name


def test_torchrun_two_processes_and_resume(data_dir, tmp_path):
    opt = _options(tmp_path / "tiny.yml", data_dir, tmp_path / "exp", niter=3,
                   extra="")
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              "codes/train.py", "-opt", opt]
    _run(launch + ["--set", "train.niter=3"])
    exp = tmp_path / "exp" / "tiny"
    state = torch.load(exp / "training_state" / "3.state", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["degradation"], state["rng"][1]["degradation"])
    _run(launch + ["--auto_resume", "--set", "train.niter=4"])
    assert (exp / "models" / "latest_G.pth").is_file() and (exp / "training_state" / "4.state").is_file()
    assert sorted(_loss_lines(str(exp))) == [1, 2, 3, 4]


def test_precision_options_and_grad_clip(tmp_path):
    from models import create_model

    assert create_model(_tiny_opt(tmp_path), device="cpu").precision == "fp32"  # auto on CPU
    opt = _tiny_opt(tmp_path, "train: {precision: bf16, grad_clip: 0.001}\n")
    torch.manual_seed(0)
    model = create_model(opt, device="cpu")
    assert model.precision == "bf16" and not model.scaler.is_enabled()
    model.feed_data({"hr": torch.rand(2, 3, 32, 32)})
    assert model.optimize_parameters(1) is True
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.net.parameters()]))
    assert norm.item() <= 0.001 * 1.001
    assert all(np.isfinite(v) for v in model.get_current_log().values())


def test_time_budget_stops_cleanly_and_resumes_exactly(straight_run, data_dir, tmp_path):
    """A spent wall-clock budget stops after iteration 1 with a checkpoint there; --auto_resume then
    finishes the run with the same final weights as the straight run."""
    opt = _options(tmp_path / "tiny.yml", data_dir, tmp_path / "exp")
    proc = _run(["codes/train.py", "-opt", opt, "--time_budget", "0.0001"])
    exp = tmp_path / "exp" / "tiny"
    assert sorted(os.listdir(exp / "training_state")) == ["1.state"]
    assert sorted(os.listdir(exp / "models")) == ["1_G.pth", "latest_G.pth"]
    assert "stopped at iteration 1 of 6 (time budget spent)" in proc.stderr
    _run(["codes/train.py", "-opt", opt, "--auto_resume"])
    a, b = _weights(straight_run / "models" / "6_G.pth"), _weights(exp / "models" / "6_G.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_snapshot_after_saves_an_extra_checkpoint_without_changing_the_run(straight_run, data_dir,
                                                                           tmp_path):
    """--snapshot_after keeps the weights of the first iteration past the deadline (here iteration 1),
    says so in the log, and the run goes on to the same final weights as the straight run."""
    opt = _options(tmp_path / "tiny.yml", data_dir, tmp_path / "exp")
    proc = _run(["codes/train.py", "-opt", opt, "--snapshot_after", "0.0001"])
    exp = tmp_path / "exp" / "tiny"
    assert "1_G.pth" in os.listdir(exp / "models")
    assert "1_G.pth" not in os.listdir(straight_run / "models")
    assert re.search(r"snapshot at iteration 1 \(\d+ s after the start\)", proc.stderr)
    assert proc.stderr.count("snapshot at iteration") == 1
    a, b = _weights(straight_run / "models" / "6_G.pth"), _weights(exp / "models" / "6_G.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)
    bad = subprocess.run([sys.executable, "codes/train.py", "-opt", opt, "--snapshot_after", "0"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--snapshot_after 0.0: give a positive number of minutes" in bad.stderr


def test_sigterm_saves_a_checkpoint_at_the_current_iteration(data_dir, tmp_path):
    import signal
    import time

    opt = _options(tmp_path / "tiny.yml", data_dir, tmp_path / "exp", niter=100000)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "codes/train.py", "-opt", opt], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    exp = tmp_path / "exp" / "tiny"
    deadline = time.time() + 120
    while time.time() < deadline and len(_loss_lines(str(exp))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    assert len(_loss_lines(str(exp))) >= 2, "the run did not start"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    match = re.search(r"stopped at iteration (\d+) of 100000 \(SIGTERM received\)", err)
    assert match, err[-2000:]
    stopped_at = int(match.group(1))
    states = sorted(int(name.split(".")[0]) for name in os.listdir(exp / "training_state"))
    assert stopped_at >= 2 and states[-1] == stopped_at  # the last completed iteration is saved
    assert (exp / "models" / f"{stopped_at}_G.pth").is_file()


@pytest.mark.parametrize("blur", ["direct", "fft"])
def test_compiled_training_step_matches_eager(tmp_path, blur):
    """train.compile: two steps of the compiled network equal the eager ones to float rounding, with the
    latent mean (z = mean: no random draw, which inductor may make from a generator of its own even
    with fallback_random, so that the estimator's gradients differ on some machines).

    The first step's gradients are compared (relative to each tensor's gradient), not the weights after
    Adam: Adam scales every element's step to about the learning rate, so where a gradient is near 0
    the rounding of another order of operations moves a weight by a whole step."""
    import torch._inductor.config as inductor_config
    from _eval_helpers import make_thresholds_positive

    from models import create_model

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    results = {}
    for mode in ("eager", "default"):
        torch.manual_seed(0)
        extra = f"train: {{compile: {mode}, latent_mean_iter: 2, blur_impl: {blur}}}\n"
        model = create_model(_tiny_opt(tmp_path, extra), device="cpu")
        assert (model.net_train is model.net) == (mode == "eager")
        # positive thresholds: the LSM step is then a contraction; with t < 0 it amplifies the rounding of
        # another order of operations by orders of magnitude, differently on each CPU
        make_thresholds_positive(model.net)
        losses, grads = [], None
        with inductor_config.patch(fallback_random=True):
            for step in (1, 2):
                model.feed_data({"hr": hr})
                assert model.optimize_parameters(step) is True
                losses.append(model.get_current_log()["l_total"])
                if step == 1:
                    grads = {n: p.grad.clone() for n, p in model.net.named_parameters() if p.grad is not None}
        results[mode] = losses, grads
    (eager_losses, eager_g), (comp_losses, comp_g) = results["eager"], results["default"]
    assert comp_losses == pytest.approx(eager_losses, rel=1e-4)  # inductor reorders float sums
    assert comp_g.keys() == eager_g.keys() and len(eager_g) > 50
    rel = {k: (comp_g[k] - v).norm().item() / (v.norm().item() + 1e-30) for k, v in eager_g.items()}
    assert max(rel.values()) <= 1e-3, sorted(rel.items(), key=lambda kv: -kv[1])[:3]


def test_error_in_a_data_loader_worker_exits_instead_of_hanging(tmp_path):
    """Workers ignore SIGTERM (so a scheduler's stop reaches the main process first); at exit they
    must still end: a corrupt image found by a worker gave the message and then hung forever."""
    write_photos(str(tmp_path / "train"), 4, 64, 3)
    data = (tmp_path / "train" / "01.png").read_bytes()
    (tmp_path / "train" / "01.png").write_bytes(data[: len(data) // 2])  # truncated: header still fine
    write_photos(str(tmp_path / "val"), 1, 32, 4)
    opt = _options(tmp_path / "o.yml", tmp_path, tmp_path / "exp", niter=20)
    proc = subprocess.run([sys.executable, "codes/train.py", "-opt", opt, "--set", "datasets.train.n_workers=2"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "01.png" in last and "Traceback" not in proc.stderr


def test_non_finite_gradients_of_a_finite_loss_skip_the_step(tmp_path):
    """fp32/bf16 have no grad scaler: a NaN gradient must not reach the weights (it would be saved)."""
    from models import create_model

    torch.manual_seed(0)
    model = create_model(_tiny_opt(tmp_path), device="cpu")
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    param = next(model.net.parameters())
    handle = param.register_hook(lambda g: g * float("nan"))
    model.feed_data({"hr": torch.rand(2, 3, 32, 32)})
    assert model.optimize_parameters(1) is False
    log = model.get_current_log()
    assert np.isfinite(log["l_total"]) and log["nonfinite_total"] == 1
    assert all(torch.equal(before[k], v) for k, v in model.net.state_dict().items())
    assert not model.optimizer.state
    handle.remove()
    model.feed_data({"hr": torch.rand(2, 3, 32, 32)})
    assert model.optimize_parameters(2) is True and model.nonfinite_in_row == 0


def test_resume_uses_the_optimiser_options_of_the_run(tmp_path, caplog):
    """Lowering train.lr_G and resuming (the advice after non-finite losses) must take effect; with
    unchanged options nothing changes."""
    from models import create_model
    from models.networks import save_network

    torch.manual_seed(0)
    model = create_model(_tiny_opt(tmp_path, "train: {lr_G: 0.001, lr_steps: [2]}\n"), device="cpu")
    for step in (1, 2):
        model.feed_data({"hr": torch.rand(2, 3, 32, 32)})
        model.optimize_parameters(step)
    state = model.training_state(2, 0)
    weights = str(tmp_path / "2_G.pth")
    save_network(model.net, weights, {"iteration": 2})
    same = create_model(_tiny_opt(tmp_path, "train: {lr_G: 0.001, lr_steps: [2]}\n"), device="cpu")
    with caplog.at_level("WARNING", logger="kulnet"):
        same.resume_training(state, weights)
    assert same.get_current_learning_rate() == pytest.approx(0.0005) and not caplog.records
    lower = create_model(_tiny_opt(tmp_path, "train: {lr_G: 0.0001, lr_steps: [2], beta1: 0.5}\n"), device="cpu")
    with caplog.at_level("WARNING", logger="kulnet"):
        lower.resume_training(state, weights)
    assert lower.get_current_learning_rate() == pytest.approx(0.00005)
    assert lower.optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    assert "initial_lr 0.001 in the training state, 0.0001 in the options" in caplog.text
    assert lower.optimizer.state  # Adam's moments are kept


def test_checkpoints_during_skipped_steps_are_not_called_good_and_save_errors_are_one_line(tmp_path):
    from models import create_model

    torch.manual_seed(0)
    model = create_model(_tiny_opt(tmp_path), device="cpu")
    model.feed_data({"hr": torch.rand(2, 3, 32, 32)})
    assert model.optimize_parameters(1)
    good = model.save(1, 0, str(tmp_path / "models"), str(tmp_path / "states"))
    assert model.last_checkpoint == good
    bad = torch.rand(2, 3, 32, 32)
    bad[0, 0, 0, 0] = float("nan")
    model.feed_data({"hr": bad})
    assert not model.optimize_parameters(2)
    model.save(2, 0, str(tmp_path / "models"), str(tmp_path / "states"))
    assert model.last_checkpoint == good and os.path.exists(tmp_path / "states" / "2.state")
    (tmp_path / "full").write_text("a file where the folder should be")
    with pytest.raises(KULNetError) as err:
        model.save(3, 0, str(tmp_path / "full" / "models"), str(tmp_path / "states"))
    text = str(err.value)
    assert "\n" not in text and "saving the checkpoint of iteration 3 failed" in text
    assert f"--set path.resume_state={good}" in text  # --auto_resume would pick 2.state
    assert model.resume_advice() == f"continue with --set path.resume_state={good}"
    model.feed_data({"hr": torch.rand(2, 3, 32, 32)})
    assert model.optimize_parameters(3)
    newest = model.save(3, 0, str(tmp_path / "models"), str(tmp_path / "states"))
    assert model.resume_advice() == f"continue with --auto_resume (from {newest})"


def test_bad_start_fails_before_the_experiment_folder_is_touched(data_dir, tmp_path):
    """A broken validation image or an unusable experiments_root: one line at the start, and an
    existing experiment of the same name is not archived by the failed start."""
    import cv2
    import train

    exp_root = tmp_path / "exp"
    (exp_root / "tiny" / "models").mkdir(parents=True)
    val = tmp_path / "val"
    val.mkdir()
    cv2.imwrite(str(val / "a.png"), np.zeros((32, 32, 3), np.uint8))
    (val / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    opt = _options(tmp_path / "o.yml", data_dir, exp_root)
    with pytest.raises(KULNetError, match=r"b\.png"):
        train.main(["-opt", opt, "--set", f"datasets.val.dataroot_GT={val}"])
    assert sorted(os.listdir(exp_root)) == ["tiny"] and os.listdir(exp_root / "tiny") == ["models"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(KULNetError, match=r"path\.experiments_root .*afile.*is a file, not a folder"):
        train.main(["-opt", opt, "--set", f"path.experiments_root={tmp_path / 'afile'}"])


def test_resumed_optimiser_states_take_their_weights_layout():
    """A state saved with contiguous weights, resumed into channels-last ones (the wrapper's
    match_weight_layout, or another device): Adam's moments get the weights' strides, same values
    (fused Adam refuses parameters, gradients and states in different layouts)."""
    import copy

    from models.kulnet_model import _match_state_layouts

    conv = torch.nn.Conv2d(4, 4, 3)
    adam = torch.optim.Adam(conv.parameters())
    conv(torch.rand(1, 4, 5, 5)).sum().backward()
    adam.step()
    saved = copy.deepcopy(adam.state_dict())
    conv.to(memory_format=torch.channels_last)
    resumed = torch.optim.Adam(conv.parameters())
    resumed.load_state_dict(saved)
    state = resumed.state[conv.weight]
    assert state["exp_avg"].stride() != conv.weight.stride()
    _match_state_layouts(resumed)
    for key in ("exp_avg", "exp_avg_sq"):
        assert state[key].stride() == conv.weight.stride()
        torch.testing.assert_close(state[key], saved["state"][0][key], rtol=0, atol=0)
    assert resumed.state[conv.bias]["exp_avg"].stride() == (1,)


def test_train_blur_impl_option_sets_the_networks_blur_and_trains_the_same(tmp_path):
    """train.blur_impl (speed only): the wrapper's network uses it, and one step with the FFT blur
    gives the losses and weights of the direct blur to float rounding (same seed, same batch)."""
    from models import create_model

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    results = {}
    for impl in ("direct", "fft"):
        torch.manual_seed(0)
        model = create_model(_tiny_opt(tmp_path, f"train: {{blur_impl: {impl}}}\n"), device="cpu")
        assert model.net.SR_net.blur_impl == impl
        model.feed_data({"hr": hr})
        assert model.optimize_parameters(1) is True
        results[impl] = model.get_current_log()["l_total"], model.net.state_dict()
    assert results["fft"][0] == pytest.approx(results["direct"][0], rel=1e-5)
    for key, value in results["direct"][1].items():
        torch.testing.assert_close(results["fft"][1][key], value, rtol=1e-4, atol=1e-6, msg=key)


def test_compile_auto_decision_rule():
    from models.kulnet_model import COMPILE_MIN_ITERATIONS, choose_compile_mode

    long_run = COMPILE_MIN_ITERATIONS
    assert choose_compile_mode("auto", "cuda", long_run)[0] == "reduce-overhead"
    assert choose_compile_mode("auto", "cuda:1", 480000, time_budget_min=600)[0] == "reduce-overhead"
    assert choose_compile_mode("auto", "cpu", 480000)[0] == "eager"  # the CPU stays eager
    assert choose_compile_mode("auto", "cuda", long_run - 1)[0] == "eager"  # a short run
    mode, why = choose_compile_mode("auto", "cuda", 480000, time_budget_min=6)
    assert mode == "eager" and "6 minutes" in why  # a short time budget
    for explicit in ("eager", "default", "reduce-overhead"):
        assert choose_compile_mode(explicit, "cpu", 1)[0] == explicit


def test_train_yml_ships_the_fast_defaults():
    opt = parse(os.path.join(REPO_ROOT, "options", "train", "train.yml"), check_paths=False)
    assert opt["train"]["compile"] == "auto" and opt["train"]["blur_impl"] == "auto"


def test_a_failing_compilation_goes_on_eagerly(tmp_path, monkeypatch, caplog):
    """A compiler error at the first step (simulated) gives one warning line and the run goes on
    eagerly, with the losses and weights of a run that never tried to compile."""
    from models import create_model

    def broken_compile(module, mode=None, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("InductorError: no working C++ compiler\nmore lines of the trace")
        return call

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    results = {}
    for mode in ("eager", "reduce-overhead"):
        torch.manual_seed(0)
        model = create_model(_tiny_opt(tmp_path, "train: {compile: eager}\n"), device="cpu")
        if mode != "eager":
            monkeypatch.setattr(torch, "compile", broken_compile)
            model.use_compile(mode)
        losses = []
        with caplog.at_level(logging.WARNING, logger="kulnet"):
            for step in (1, 2):
                model.feed_data({"hr": hr})
                assert model.optimize_parameters(step) is True
                losses.append(model.get_current_log()["l_total"])
        results[mode] = losses, model.net.state_dict(), model
    (eager_losses, eager_w, _), (fb_losses, fb_w, fallback) = results["eager"], results["reduce-overhead"]
    warnings = [r.getMessage() for r in caplog.records if "train.compile" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert ("reduce-overhead failed at the first step (RuntimeError: InductorError: no working C++ compiler)"
            in warnings[0])
    assert fallback.compile_mode == "eager" and fallback.net_train is fallback.net
    assert fallback.compile_failed.startswith("RuntimeError")
    assert fb_losses == eager_losses  # the step was redone from the same random state
    for key, value in eager_w.items():
        assert torch.equal(fb_w[key], value), key


def test_l1_kernel_loss_is_the_kernel_distance_at_every_patch_size():
    from models.losses import KULNetLoss, kernel_l1_distance
    from models.modules.kulnet import KULNetOutput

    k = torch.zeros(2, 5, 5)
    k[:, 0, 0] = 1
    other = torch.zeros(2, 5, 5)
    other[:, 4, 4] = 1
    assert kernel_l1_distance(k, k).item() == 0 and kernel_l1_distance(k, other).item() == 2  # disjoint: 2
    half = 0.5 * (k + other)
    for size in (32, 96):  # the same value whatever the patch, unlike the authors' loss
        hr = torch.zeros(2, 3, size, size)
        out = KULNetOutput(None, half, None, None)
        l1 = KULNetLoss(4, kernel_loss="l1")(out, hr, k)[1]["l_ker"].item()
        authors = KULNetLoss(4)(out, hr, k)[1]["l_ker"].item()
        assert l1 == pytest.approx(1.0) and authors == pytest.approx(1e4 * 1 / 25 / (size * size))


def test_estimator_mode_trains_the_estimator_alone(tmp_path):
    """train.mode estimator: one step moves the estimator's weights, leaves the SR part's as they were,
    and has no pixel loss; the joint step moves both."""
    from models import create_model

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    for mode in ("estimator", "joint"):
        torch.manual_seed(0)
        model = create_model(_tiny_opt(tmp_path, f"train: {{mode: {mode}, kernel_loss: l1}}\n"), device="cpu")
        before = {k: v.clone() for k, v in model.net.state_dict().items()}
        model.feed_data({"hr": hr})
        assert model.optimize_parameters(1) is True
        log = model.get_current_log()
        changed = {k.split(".")[0] for k, v in model.net.state_dict().items() if not torch.equal(v, before[k])}
        if mode == "estimator":
            assert changed == {"kernel_extra"} and "l_pix" not in log and log["l_ker"] > 0
            with torch.no_grad():  # validation still runs the whole network
                assert model.test(torch.rand(1, 3, 8, 8)).sr.shape == (1, 3, 32, 32)
        else:
            assert changed == {"kernel_extra", "SR_net"} and "l_pix" in log


def test_pretrain_model_K_loads_the_estimator_alone(tmp_path):
    """From a whole-network checkpoint's kernel_extra.* or from an estimator's own state_dict; the SR
    part keeps its own weights; the log says what was loaded; another estimator is a one-line error."""
    from models import create_model
    from models.networks import define_G, save_network

    torch.manual_seed(5)
    source = define_G({"scale": 4, "kernel_size": 11, "network_G": {"est_nf": 8, "sr_nf": 8, "n_stages": 2}})
    save_network(source, str(tmp_path / "whole.pth"))
    torch.save(source.kernel_extra.state_dict(), tmp_path / "estimator.pth")
    for name, kind in (("whole.pth", "whole network"), ("estimator.pth", "estimator")):
        torch.manual_seed(0)
        model = create_model(_tiny_opt(tmp_path, f"path: {{pretrain_model_K: {tmp_path / name}}}\n"), device="cpu")
        for key, value in source.kernel_extra.state_dict().items():
            assert torch.equal(model.net.kernel_extra.state_dict()[key], value), key
        assert not torch.equal(model.net.SR_net.conv.weight, source.SR_net.conv.weight)
        (line,) = model.loaded_weights
        assert line.startswith(f"path.pretrain_model_K: {tmp_path / name}") and kind in line
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(KULNetError, match="not the weights of this kernel estimator") as err:
        create_model(_tiny_opt(tmp_path, f"path: {{pretrain_model_K: {tmp_path / 'other.pth'}}}\n"), device="cpu")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("mode", ["estimator", "joint"])
def test_latent_mean_iter_trains_with_the_latent_mean_first(tmp_path, mode):
    """train.latent_mean_iter N: iterations 1..N use z = mean, later ones a sample (the paper's
    z = mean + noise from iteration 1 when N is 0); evaluation uses the mean either way."""
    from models import create_model

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    for n, want in ((2, [True, True, False]), (0, [False, False, False])):
        torch.manual_seed(0)
        model = create_model(_tiny_opt(tmp_path, f"train: {{mode: {mode}, latent_mean_iter: {n}}}\n"), device="cpu")
        used_mean = record_latent_mean(model.net.kernel_extra)
        for step in (1, 2, 3):
            model.feed_data({"hr": hr})
            assert model.optimize_parameters(step) is True
        assert used_mean == want, (n, used_mean)
        with torch.no_grad():
            model.test(torch.rand(1, 3, 8, 8))
        assert used_mean[-1] is True  # evaluation: the mean
