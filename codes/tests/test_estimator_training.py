"""The estimator's training options (each off by default, as the paper) and its learning curves: closed
forms of the losses and the rules, one step of each option, the estimator-only validation, the curve CSV
of train.py and the curve runner."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from _eval_helpers import TINY_NET_YAML, record_latent_mean
from _eval_helpers import tiny_train_options as _opt
from _lmdb_helpers import write_photos

from data.degradation import EXTREME_FRACTION, Degradation, to_extremes
from data.hr_dataset import HRDataset, texture_score
from data.kernels import paper_kernels, random_kernel_params
from evaluation.validation import estimator_metrics, read_curve, validate
from models.estimator_training import KERNEL_HEAD, EstimatorOutput, parameter_groups
from models.losses import KULNetLoss, kernel_l1_distance, kernel_map_l1, kl_loss
from options.options import REPO_ROOT, parse
from utils.errors import KULNetError


# ---------------------------------------------------------------- losses
def test_kernel_map_l1_closed_forms():
    k = paper_kernels(4, 11)[:2]  # (2, 11, 11)
    exact = k.flatten(1)[:, :, None, None].expand(-1, -1, 3, 5)
    assert kernel_map_l1(exact, k).item() == 0.0
    other = k.flip(0)  # each image's pixels all hold the other image's kernel
    want = kernel_l1_distance(other, k).item()
    assert kernel_map_l1(other.flatten(1)[:, :, None, None].expand(-1, -1, 3, 5), k).item() == pytest.approx(want)
    half = exact.clone()
    half[:, :, :, :2] = other.flatten(1)[:, :, None, None]  # 2 of 5 columns wrong: 2/5 of the distance
    assert kernel_map_l1(half, k).item() == pytest.approx(want * 2 / 5)


def test_kl_free_bits_and_warmup():
    g = torch.Generator().manual_seed(0)
    mean, log_var = torch.rand(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g) * 0.1
    literal = torch.mean(-0.5 * (1 + 2 * log_var - mean.pow(2) - torch.exp(2 * log_var)))
    assert torch.equal(kl_loss(mean, log_var), literal)  # the paper's term, bit for bit
    zero = torch.zeros(2, 4, 3, 3)
    assert kl_loss(zero, zero).item() == 0.0 and kl_loss(zero, zero, free_bits=0.3).item() == pytest.approx(0.3)
    mean2 = zero.clone()
    mean2[:, 0] = 2.0  # channel 0's KL is 0.5 * 4 = 2, above the floor; the other three sit at it
    assert kl_loss(mean2, zero, free_bits=0.3).item() == pytest.approx((2.0 + 3 * 0.3) / 4)

    loss = KULNetLoss(4, kl_warmup_iter=4)
    out = EstimatorOutput(None, paper_kernels(4, 11)[:1], mean, log_var)
    weights = []
    for step in (1, 2, 4, 9):
        loss.set_iteration(step)
        weights.append(loss(out, torch.zeros(1, 3, 8, 8), out.kernel)[1]["l_kl"].item() / (1e-3 * literal.item()))
    assert weights == pytest.approx([0.25, 0.5, 1.0, 1.0])
    plain = KULNetLoss(4)
    plain.set_iteration(1)
    assert torch.equal(plain(out, torch.zeros(1, 3, 8, 8), out.kernel)[1]["l_kl"], 1e-3 * literal)


# ---------------------------------------------------------------- optimiser groups
def test_parameter_groups_give_each_part_its_rate():
    from models.networks import define_G

    net = define_G({"scale": 4, "kernel_size": 11, "network_G": {"est_nf": 8, "sr_nf": 8, "n_stages": 2}})
    (one,) = parameter_groups(net, 1e-3)
    assert one["lr"] == 1e-3 and [id(p) for p in one["params"]] == [id(p) for p in net.parameters()]
    groups = parameter_groups(net, 1e-3, estimator_lr_mult=2, kernel_head_lr_mult=5)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert len(rate) == sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    for name, param in net.named_parameters():
        want = 1e-2 if name.startswith(KERNEL_HEAD) else 2e-3 if name.startswith("kernel_extra.") else 1e-3
        assert rate[id(param)] == pytest.approx(want), name
    net.SR_net.requires_grad_(False)  # frozen parameters are left out
    assert all(g["lr_mult"] != 1.0 for g in parameter_groups(net, 1e-3, estimator_lr_mult=2))


def test_multipliers_survive_the_schedule_and_a_resume(tmp_path):
    from models import create_model

    opt = _opt(tmp_path, "train: {mode: estimator, kernel_loss: l1, estimator_lr_mult: 3, kernel_head_lr_mult: 10,"
                         " lr_G: 0.001, lr_steps: [2]}\n")
    model = create_model(opt, device="cpu")
    model.scheduler.step(3)  # after the milestone: every rate halved, the ratios kept
    assert sorted(g["lr"] for g in model.optimizer.param_groups) == pytest.approx([1.5e-3, 1.5e-2])
    model._apply_optimizer_options()  # what a resume does: the options' rates, times each group's factor
    assert sorted(g["initial_lr"] for g in model.optimizer.param_groups) == pytest.approx([3e-3, 3e-2])


# ---------------------------------------------------------------- data
def test_texture_tries_keep_the_most_textured_window(tmp_path):
    import cv2

    img = np.full((64, 128, 3), 128, np.uint8)
    img[:, 64:] = np.random.default_rng(0).integers(0, 256, (64, 64, 3))  # right half textured
    cv2.imwrite(str(tmp_path / "a.png"), img)
    assert texture_score(img[:, :64]) == 0.0 and texture_score(img[:, 64:]) > 0.2
    for tries, pick_textured in ((1, None), (8, True)):
        ds = HRDataset(str(tmp_path), 4, gt_size=32, use_flip=False, use_rot=False)
        ds.texture_tries = tries
        torch.manual_seed(0)
        scores = [texture_score(ds[0]["hr"].numpy().transpose(1, 2, 0) * 255) for _ in range(20)]
        if pick_textured:  # 8 tries: a window entirely in the flat half is almost never kept
            assert np.mean(scores) > 0.2
        else:
            assert min(scores) < 0.1  # one try: flat windows come up
    ds = HRDataset(str(tmp_path), 4, gt_size=32)
    torch.manual_seed(1)
    one = ds[0]["hr"]
    torch.manual_seed(1)
    ds.texture_tries = 1
    assert torch.equal(ds[0]["hr"], one)  # the default draws as before


def test_curriculum_moves_kernels_to_the_ends_of_the_range():
    g = torch.Generator().manual_seed(0)
    p = random_kernel_params(64, g, sig_min=0.2, sig_max=4.0)
    moved = to_extremes(p, 0.2, 4.0)
    span = 3.8 * EXTREME_FRACTION
    for key in ("sig1", "sig2"):
        assert (moved[key][0::2] >= 0.2 - 1e-6).all() and (moved[key][0::2] <= 0.2 + span + 1e-6).all()
        assert (moved[key][1::2] >= 4.0 - span - 1e-6).all() and (moved[key][1::2] <= 4.0 + 1e-6).all()
    assert (moved["sig2"] <= moved["sig1"] + 1e-6).all() and torch.equal(moved["theta"], p["theta"])
    deg, hr = Degradation(4, 21, random_noise=False), torch.rand(4, 3, 32, 32)
    plain = deg(hr, generator=torch.Generator().manual_seed(1)).kernel
    deg.extremes = True
    ends = deg(hr, generator=torch.Generator().manual_seed(1)).kernel
    deg.extremes = False
    assert torch.equal(deg(hr, generator=torch.Generator().manual_seed(1)).kernel, plain)
    assert not torch.equal(ends, plain)


# ---------------------------------------------------------------- one step of each option
@pytest.mark.parametrize("extra", [
    "train: {mode: estimator, kernel_loss: map}\n",
    "train: {mode: estimator, kernel_loss: l1, estimator_lr_mult: 2, kernel_head_lr_mult: 10}\n",
    "train: {mode: estimator, kernel_loss: l1, kl_free_bits: 0.1, kl_warmup_iter: 10}\n",
    "train: {mode: joint, estimator_lr_mult: 0.5}\n",
    "degradation: {curriculum_iter: 5}\ntrain: {mode: estimator, kernel_loss: l1}\n",
])
def test_one_step_of_each_option(tmp_path, extra):
    from models import create_model

    torch.manual_seed(0)
    model = create_model(_opt(tmp_path, extra), device="cpu")
    before = {k: v.clone() for k, v in model.net.kernel_extra.state_dict().items()}
    model.feed_data({"hr": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))}, step=1)
    assert model.optimize_parameters(1) is True
    assert np.isfinite(model.get_current_log()["l_total"])
    assert any(not torch.equal(v, before[k]) for k, v in model.net.kernel_extra.state_dict().items())
    assert model.degradation.extremes == ("curriculum" in extra)


def test_map_loss_needs_the_estimator_alone(tmp_path):
    from models import create_model

    with pytest.raises(KULNetError, match="train.mode estimator") as err:
        create_model(_opt(tmp_path, "train: {kernel_loss: map}\n"), device="cpu")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- validation and curves
def test_estimator_validation_runs_the_estimator_alone():
    class StandIn:
        scale, device, opt, mode = 2, torch.device("cpu"), {"kernel_size": 21}, "estimator"

        def __init__(self, follows):
            self.follows = follows

        def test(self, lr):
            raise AssertionError("the SR part must not run")

        def test_kernel(self, lr):
            assert lr.shape == (9, 3, 8, 8)  # the 16x16 centre crop under the nine kernels
            return paper_kernels(2) if self.follows else paper_kernels(2).mean(0, keepdim=True).expand(9, -1, -1)

    data = [{"hr": torch.rand(3, 30, 26, generator=torch.Generator().manual_seed(i)), "path": f"{i}.png"}
            for i in range(2)]
    val_opt = {"noise": 0.0, "max_images": None, "center_crop": 16}
    follows, constant = validate(StandIn(True), data, val_opt, 1), validate(StandIn(False), data, val_opt, 1)
    assert follows["kernel_gain"] == pytest.approx(1) and follows["kernel_response"] == pytest.approx(1)
    assert follows["kernel_l1"] == 0.0 and follows["kernel_psnr"] == float("inf")
    assert constant["kernel_gain"] == pytest.approx(0, abs=1e-9) and constant["kernel_response"] == 0.0
    assert constant["kernel_l1"] == pytest.approx(constant["const_kernel_l1"])
    assert constant["kernel_psnr"] == pytest.approx(constant["const_kernel_psnr"])
    assert estimator_metrics(paper_kernels(2), paper_kernels(2))["const_kernel_l1"] == follows["const_kernel_l1"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photos(str(root / "train"), 6, 64, 0)
    write_photos(str(root / "val"), 2, 48, 1)
    return root


def _curve_options(path, photos, exp_root):
    path.write_text(
        "name: curve\nscale: 4\nkernel_size: 11\ndevice: cpu\n"
        f"datasets:\n  train: {{dataroot_GT: {photos / 'train'}, GT_size: 32, batch_size: 2, n_workers: 0}}\n"
        f"  val: {{dataroot_GT: {photos / 'val'}, noise: 0, center_crop: 32}}\n" + TINY_NET_YAML +
        "train: {mode: estimator, kernel_loss: l1, val_freq: 2, niter: 4}\n"
        "logger: {print_freq: 1, progress_bar: false, use_tb_logger: false}\n"
        f"path: {{experiments_root: {exp_root}}}\n")
    return str(path)


def test_curve_runner_writes_each_arms_curve(photos, tmp_path):
    opt = _curve_options(tmp_path / "c.yml", photos, tmp_path / "exp")
    proc = subprocess.run([sys.executable, "codes/benchmarks/estimator_curve.py", "-opt", opt, "--iters", "4",
                           "--every", "2", "--arm", "l1:", "--arm", "map: train.kernel_loss=map",
                           "--out", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_curve(str(tmp_path / "exp" / "curve_map" / "val_curve.csv"))
    assert [r["iteration"] for r in rows] == [0, 2, 4]  # a fresh initialisation's row first
    assert np.isnan(rows[0]["l_ker"]) and rows[1]["l_ker"] > 0 and "kernel_gain" in rows[0]
    summary = json.load(open(tmp_path / "out" / "curves.json"))
    assert sorted(summary["arms"]) == ["l1", "map"] and summary["arms"]["map"]["set"] == ["train.kernel_loss=map"]
    assert summary["arms"]["l1"]["last"]["iteration"] == 4
    lines = open(tmp_path / "out" / "curves.csv").read().splitlines()
    assert lines[0].startswith("arm,iteration,seconds,") and len(lines) == 1 + 6
    import cv2
    assert cv2.imread(str(tmp_path / "out" / "curves.png")).shape[0] > 300


@pytest.mark.parametrize("arm, message", [("no colon", "give NAME: KEY=VALUE"), ("a b: x=1", "give NAME"),
                                          ("a: train.lr_G", "is not KEY=VALUE")])
def test_curve_runner_arm_errors(arm, message):
    from benchmarks.estimator_curve import parse_arm

    with pytest.raises(KULNetError, match=message):
        parse_arm(arm)


# ---------------------------------------------------------------- the estimator's input
def test_local_contrast_closed_forms():
    from models.modules.kernel_estimator import CONTRAST_FLOOR, local_contrast

    flat = torch.full((1, 3, 12, 12), 0.4)
    assert local_contrast(flat).abs().max().item() < 1e-4  # 0 but for the rounding of the local mean
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    # an affine change of brightness and contrast changes nothing where the spread is far above the floor
    big = local_contrast(x * 50 + 3, floor=CONTRAST_FLOOR * 50)
    assert torch.allclose(local_contrast(x), big, atol=1e-4)
    step = torch.zeros(1, 1, 1, 9)
    step[..., 4:] = 1.0  # one window spans the step: mean 5/9, spread sqrt(20)/9
    centre = local_contrast(step, window=9, floor=0.0)[0, 0, 0, 4].item()
    assert centre == pytest.approx((1 - 5 / 9) / (20 ** 0.5 / 9), rel=1e-5)


def test_contrast_input_is_recorded_and_checked(tmp_path):
    from models.networks import define_G, load_estimator, load_network, network_options_for_checkpoint, save_network

    def net(kind):
        torch.manual_seed(0)
        return define_G({"scale": 4, "kernel_size": 11,
                         "network_G": {"est_nf": 8, "sr_nf": 8, "n_stages": 2, "estimator_input": kind}})

    contrast, image = net("contrast"), net("image")
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.allclose(contrast.eval()(lr).kernel, image.eval()(lr).kernel)
    save_network(contrast, str(tmp_path / "c.pth"))
    restored = network_options_for_checkpoint({"network_G": {}}, str(tmp_path / "c.pth"))
    assert restored["estimator_input"] == "contrast"
    load_network(net("contrast"), str(tmp_path / "c.pth"))
    for load in (load_network, load_estimator):
        with pytest.raises(KULNetError, match="estimator_input = contrast") as err:
            load(net("image"), str(tmp_path / "c.pth"))
        assert "\n" not in str(err.value)
    with pytest.raises(KULNetError, match="estimator_input"):
        define_G({"scale": 4, "network_G": {"estimator_input": "edges"}})


def test_sr_mode_trains_the_sr_part_on_a_frozen_estimator(tmp_path):
    """train.mode sr: the estimator's weights stay as they were, the SR part moves, the loss is the pixel
    term alone, and the estimator gives its latent mean (what the SR part will see at test time)."""
    from models import create_model

    torch.manual_seed(0)
    model = create_model(_opt(tmp_path, "train: {mode: sr, latent_mean_iter: 0}\n"), device="cpu")
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    used_mean = record_latent_mean(model.net.kernel_extra)
    model.feed_data({"hr": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))}, step=1)
    assert model.optimize_parameters(1) is True
    changed = {k.split(".")[0] for k, v in model.net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"SR_net"} and used_mean == [True]
    assert set(model.get_current_log()) == {"l_pix", "l_total", "nonfinite_total"}


def test_sr_part_of_one_file_and_a_contrast_estimator_of_another(tmp_path):
    """pretrain_model_G from a file whose estimator saw the image, pretrain_model_K from a contrast
    estimator: allowed (the estimator is replaced); the G file alone into a contrast network is refused."""
    from models import create_model
    from models.networks import define_G, save_network

    widths = {"est_nf": 8, "sr_nf": 8, "n_stages": 2}
    torch.manual_seed(1)
    save_network(define_G({"scale": 4, "kernel_size": 11, "network_G": widths}), str(tmp_path / "x4_g.pth"))
    torch.manual_seed(2)
    contrast = define_G({"scale": 4, "kernel_size": 11, "network_G": {**widths, "estimator_input": "contrast"}})
    save_network(contrast, str(tmp_path / "x4_k.pth"))
    extra = ("network_G: {est_nf: 8, sr_nf: 8, n_stages: 2, estimator_input: contrast}\ntrain: {mode: sr}\n"
             f"path: {{pretrain_model_G: {tmp_path / 'x4_g.pth'}, pretrain_model_K: {tmp_path / 'x4_k.pth'}}}\n")
    (tmp_path / "hr").mkdir(exist_ok=True)
    (tmp_path / "s.yml").write_text(f"name: s\nscale: 4\nkernel_size: 11\ndevice: cpu\ndatasets:\n  train: "
                                    f"{{dataroot_GT: {tmp_path / 'hr'}, GT_size: 32}}\n" + extra)
    model = create_model(parse(str(tmp_path / "s.yml")), device="cpu")
    for key, value in contrast.kernel_extra.state_dict().items():
        assert torch.equal(model.net.kernel_extra.state_dict()[key], value)
    (tmp_path / "s.yml").write_text((tmp_path / "s.yml").read_text().replace(
        f", pretrain_model_K: {tmp_path / 'x4_k.pth'}", ""))
    with pytest.raises(KULNetError, match="estimator_input = image"):
        create_model(parse(str(tmp_path / "s.yml")), device="cpu")
