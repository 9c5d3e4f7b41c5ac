"""The test protocol: table arithmetic, results files, baselines, options, test.py end to end."""
import csv
import io
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _eval_helpers import (
    REPO_ROOT,
    checkout_without_pretrained,
    run_script,
    smooth_image,
    write_tiny_checkpoint,
    write_yaml,
)

from data.degradation import blur_subsample, quantize
from data.kernels import anisotropic_gaussian_kernels, paper_kernels
from evaluation.evaluator import Evaluator
from evaluation.metrics import calculate_psnr
from evaluation.protocol import HRSet, ProtocolKernel, build_kernels
from evaluation.results import COLUMNS, paper_table, summarize, write_results
from models.modules.kulnet import KULNetOutput
from options.inference_options import check_test_paths, validate_test_options
from utils.errors import KULNetError
from utils.image_io import tensor2img, write_image


# ------------------------------------------------------------------------------- table arithmetic
def _row(dataset, kernel, image, psnr, noise=0.0, **extra):
    row = {"dataset": dataset, "image": image, "noise": noise, "kernel": kernel, "sig1": 1.0, "sig2": 1.0,
           "theta_deg": 0.0, "psnr_y": psnr, "ssim_y": psnr / 100}
    row.update(extra)
    return row


def test_nine_kernel_average_is_mean_of_per_kernel_means():
    rows = [
        # dataset A: kernel 1 has three images, kernel 2 only one (so the mean of means differs
        # from the mean over all rows: (20 + 40) / 2 = 30, not (10 + 20 + 30 + 40) / 4 = 25)
        _row("A", 1, "a", 10.0), _row("A", 1, "b", 20.0), _row("A", 1, "c", 30.0),
        _row("A", 2, "a", 40.0),
        # dataset B: two images, two kernels, another noise level too
        _row("B", 1, "x", 1.0), _row("B", 1, "y", 3.0), _row("B", 2, "x", 5.0), _row("B", 2, "y", 11.0),
        _row("B", 1, "x", 7.0, noise=5.0),
    ]
    summary = summarize(rows)
    assert [(e["dataset"], e["noise"]) for e in summary] == [("A", 0.0), ("B", 0.0), ("B", 5.0)]
    a, b, b5 = summary
    assert [k["psnr_y"] for k in a["per_kernel"]] == [20.0, 40.0]
    assert [k["n_images"] for k in a["per_kernel"]] == [3, 1]
    assert a["average"]["psnr_y"] == 30.0
    assert a["average"]["ssim_y"] == pytest.approx(0.30)
    assert [k["psnr_y"] for k in b["per_kernel"]] == [2.0, 8.0] and b["average"]["psnr_y"] == 5.0
    assert b5["average"]["psnr_y"] == 7.0 and b5["n_kernels"] == 1


def test_summary_nan_is_skipped_and_inf_propagates():
    rows = [_row("A", 1, "a", 10.0, lr_psnr_y=float("nan")), _row("A", 1, "b", 20.0, lr_psnr_y=30.0),
            _row("A", 2, "a", float("inf"), lr_psnr_y=float("nan"))]
    (entry,) = summarize(rows)
    assert entry["per_kernel"][0]["lr_psnr_y"] == 30.0
    assert math.isnan(entry["per_kernel"][1]["lr_psnr_y"])
    assert entry["average"]["lr_psnr_y"] == 30.0
    assert math.isinf(entry["average"]["psnr_y"])
    assert "inf" in paper_table([entry], 4)


def test_paper_table_shape():
    rows = []
    for ds in ("Set5", "Set14"):
        for noise in (0.0, 10.0):
            rows.append(_row(ds, 1, "a", 30.0 - noise, noise=noise, bicubic_psnr_y=25.0, bicubic_ssim_y=0.7))
    table = paper_table(summarize(rows), 4).splitlines()
    assert table[0] == "| Dataset | Method | x4, noise 0 | x4, noise 10 |"
    assert len(table) == 2 + 2 * 2  # header, rule, (KULNet, bicubic) x 2 datasets
    assert table[2] == "| Set5 | KULNet | 30.00 / 0.3000 | 20.00 / 0.2000 |"
    assert table[3] == "| Set5 | Bicubic | 25.00 / 0.7000 | 25.00 / 0.7000 |"


# ---------------------------------------------------------------------------------- baselines
def _oracle_forward(kernel_for_blind):
    """A 'network' that returns bicubic upsampling and a fixed kernel (or the one it is given)."""
    def forward(lr, kernel=None):
        sr = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
        k = kernel_for_blind.to(lr.device) if kernel is None else kernel
        return KULNetOutput(sr, k, None, None)
    return forward


def _evaluator(forward, baselines=None, **kw):
    baselines = {"bicubic": True, "non_blind": True} if baselines is None else baselines
    return Evaluator(forward, 4, 21, 4, 0, torch.device("cpu"), baselines, log=lambda _: None, **kw)


def test_bicubic_baseline_of_a_constant_image_is_infinite_psnr():
    k = paper_kernels(4)[2]
    tk = ProtocolKernel(3, 3.5, 1.5, 30.0, k)
    hr = torch.full((1, 3, 48, 48), 128 / 255)
    m, sr, k_est = _evaluator(_oracle_forward(k[None])).evaluate_image(hr, tk, 0.0, torch.Generator())
    assert math.isinf(m["bicubic_psnr_y"]) and m["bicubic_ssim_y"] == pytest.approx(1.0)
    assert math.isinf(m["psnr_y"]) and math.isinf(m["nonblind_psnr_y"])
    assert math.isinf(m["kernel_psnr"]) and math.isinf(m["lr_psnr_y"])


def test_bicubic_baseline_matches_a_direct_computation():
    hr_np = smooth_image(64, 80, seed=4)
    hr = torch.from_numpy(hr_np.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    k = anisotropic_gaussian_kernels(4.0, 1.5, 2.0, 21, 4)
    tk = ProtocolKernel(1, 4.0, 1.5, 2.0 / 3.14 * 180, k[0])
    # a blind 'estimate' that is wrong on purpose: LR PSNR and kernel PSNR must then be finite
    wrong = anisotropic_gaussian_kernels(1.0, 1.0, 0.0, 21, 4)
    m, _, _ = _evaluator(_oracle_forward(wrong)).evaluate_image(hr, tk, 0.0, torch.Generator())
    lr = quantize(blur_subsample(hr, k, 4))
    bic = tensor2img(F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1))
    assert m["bicubic_psnr_y"] == pytest.approx(calculate_psnr(bic, hr_np, 4), abs=1e-9)
    assert m["psnr_y"] == pytest.approx(m["bicubic_psnr_y"], abs=1e-9)  # the oracle is bicubic
    lr_wrong = tensor2img(quantize(blur_subsample(hr, wrong, 4)))
    assert m["lr_psnr_y"] == pytest.approx(calculate_psnr(lr_wrong, tensor2img(lr), 0), abs=1e-9)
    rmse = float(((wrong[0] - k[0]).double() ** 2).mean().sqrt())
    assert m["kernel_psnr"] == pytest.approx(20 * math.log10(1 / rmse), abs=1e-6)
    assert 10 < m["lr_psnr_y"] < 60


# --------------------------------------------------------------------------- grid and results
def _hr_set(name, n, size=48, seed=0):
    imgs = [smooth_image(size, size + 8, seed=seed + i).astype(np.float32) / 255 for i in range(n)]
    return HRSet(name, [(f"img{i}", lambda im=im: im) for i, im in enumerate(imgs)])


def _noisy_forward(lr, kernel=None):
    k = anisotropic_gaussian_kernels(2.0, 1.0, 0.3, 21, 4) if kernel is None else kernel
    return KULNetOutput(F.interpolate(lr, scale_factor=4, mode="nearest"), k, None, None)


def test_grid_rows_results_files_schema(tmp_path):
    opt = validate_test_options({"kernels": [[2.0, 0.5, 0], [4.0, 4.0, 180]], "noise": [0, 5],
                                 "datasets": [{"name": "A", "dataroot_HR": "a"}, {"name": "B", "dataroot_HR": "b"}]})
    kernels = build_kernels(opt)
    sets = [_hr_set("A", 2), _hr_set("B", 1, seed=7)]
    ev = _evaluator(_noisy_forward, {"bicubic": True, "non_blind": False}, save_dir=str(tmp_path / "images"))
    rows = ev.run(sets, kernels, opt["noise"])
    assert len(rows) == (2 + 1) * 2 * 2  # images x kernels x noise levels
    columns = ev.columns()
    assert "bicubic_psnr_y" in columns and "nonblind_psnr_y" not in columns
    assert set(columns) <= set(COLUMNS)
    summary = summarize(rows)
    record = {"commit": "abc", "checkpoint_sha256": "0" * 64, "seed": 0, "device": "cpu",
              "torch": torch.__version__, "numpy": np.__version__}
    paths = write_results(str(tmp_path), rows, columns, summary, record, opt, 4)

    with open(paths["csv"], encoding="utf-8") as handle:
        text = handle.read()
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert any(line.startswith("# checkpoint_sha256:") for line in comments)
    table = list(csv.DictReader(io.StringIO("\n".join(l for l in text.splitlines() if not l.startswith("#")))))
    assert len(table) == 12 and list(table[0]) == columns
    assert {(r["dataset"], r["noise"], r["kernel"]) for r in table} == {
        (d, n, k) for d in "AB" for n in ("0.0", "5.0") for k in ("1", "2")}

    with open(paths["json"], encoding="utf-8") as handle:
        doc = json.load(handle)
    assert set(doc) == {"record", "options", "columns", "rows", "summary"}
    assert {"commit", "checkpoint_sha256", "seed", "device", "torch", "numpy"} <= set(doc["record"])
    assert len(doc["rows"]) == 12 and len(doc["summary"]) == 4  # 2 datasets x 2 noise levels
    assert all(len(e["per_kernel"]) == 2 for e in doc["summary"])
    assert doc["options"]["kernels"] == [[2.0, 0.5, 0.0], [4.0, 4.0, 180.0]]
    md = open(paths["md"], encoding="utf-8").read()
    assert "| A | KULNet |" in md and "| B | Bicubic |" in md and "checkpoint_sha256" in md
    # per-image outputs
    assert (tmp_path / "images" / "A" / "img0_noise5_k2_SR.png").is_file()
    assert (tmp_path / "images" / "B" / "img0_noise0_k1_kernel.png").is_file()


def test_crop_border_larger_than_the_image_is_a_one_line_error():
    opt = validate_test_options({"kernels": [[2.0, 0.5, 0]], "datasets": [{"name": "A", "dataroot_HR": "a"}]})
    ev = _evaluator(_noisy_forward, {"bicubic": False, "non_blind": False})
    ev.crop = 500
    with pytest.raises(KULNetError, match=r"A/img0: crop_border = 500 leaves nothing of its \d+x\d+ pixels"):
        ev.run([_hr_set("A", 1)], build_kernels(opt), [0])


def test_noise_is_seeded_per_cell_independently_of_the_grid():
    opt = validate_test_options({"kernels": [[2.0, 0.5, 0], [4.0, 3.0, 165]], "noise": [10]})
    kernels = build_kernels(opt)
    sets = [_hr_set("A", 2)]
    ev = _evaluator(_noisy_forward, {"bicubic": True, "non_blind": False})
    both = ev.run(sets, kernels, [10.0])
    second_only = ev.run(sets, kernels[1:], [10.0])
    keys = ("psnr_y", "bicubic_psnr_y", "lr_psnr_y")
    assert [[r[k] for k in keys] for r in both[2:]] == [[r[k] for k in keys] for r in second_only]
    again = ev.run(sets, kernels, [10.0])
    assert [r["bicubic_psnr_y"] for r in again] == [r["bicubic_psnr_y"] for r in both]


def test_paper_kernels_are_the_default():
    kernels = build_kernels(validate_test_options({}))
    assert len(kernels) == 9 and kernels[3].sig1 == 3.5 and kernels[3].theta_deg == 45.0
    assert torch.equal(kernels[8].kernel, paper_kernels(4)[8])


# -------------------------------------------------------------------------------------- options
def test_test_options_errors(tmp_path):
    with pytest.raises(KULNetError, match=r"unknown key 'nosie'; did you mean 'noise'"):
        validate_test_options({"nosie": [0]})
    with pytest.raises(KULNetError, match=r"datasets\[0\]\.dataroot_hr'; did you mean 'datasets\[0\]\.dataroot_HR'"):
        validate_test_options({"datasets": [{"name": "S", "dataroot_hr": "x"}]})
    with pytest.raises(KULNetError, match=r"baselines\.bicubc'; did you mean 'baselines\.bicubic'"):
        validate_test_options({"baselines": {"bicubc": True}})
    with pytest.raises(KULNetError, match=r"network_G\.sr_nff"):
        validate_test_options({"network_G": {"sr_nff": 8}})
    with pytest.raises(KULNetError, match=r"kernels\[0\]"):
        validate_test_options({"kernels": [[2.0, 0.5]]})
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"x")
    opt = validate_test_options({"checkpoint": str(ckpt),
                                 "datasets": [{"name": "S", "dataroot_HR": str(tmp_path / "nope")}]})
    with pytest.raises(KULNetError, match=r"nope: HR folder of dataset 'S' does not exist") as err:
        check_test_paths(opt)
    assert "\n" not in str(err.value)


def test_test_py_missing_checkpoint_is_one_line_exit_2(tmp_path):
    opt = write_yaml(tmp_path / "t.yml", {"checkpoint": str(tmp_path / "missing.pth")})
    res = run_script("test.py", "-opt", opt)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing.pth: checkpoint not found" in lines[0]


def test_test_py_default_run_without_checkpoint_explains_how_to_get_one(tmp_path):
    """``python codes/test.py`` in a checkout without pretrained/: one line says how to get the file
    (the --scale runs are checked below)."""
    res = run_script("test.py", root=checkout_without_pretrained(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: pretrained/KULNet_x4.pth: not in this checkout")
    assert "git checkout -- pretrained" in line and "codes/train.py" in line and "--checkpoint" in line


def test_apply_scale_moves_the_shipped_defaults_only():
    from options.inference_options import apply_scale

    raw = {"name": "KULNet_x4_test", "checkpoint": "pretrained/KULNet_x4.pth"}
    apply_scale(raw, 2)
    assert raw == {"name": "KULNet_x2_test", "checkpoint": os.path.join("pretrained", "KULNet_x2.pth"),
                   "scale": 2}
    raw = {}  # nothing set: the defaults (x4 file and name) follow the scale
    apply_scale(raw, 3)
    assert raw["checkpoint"] == os.path.join("pretrained", "KULNet_x3.pth") and raw["name"] == "KULNet_x3_test"
    absolute = os.path.join(REPO_ROOT, "pretrained", "KULNet_x4.pth")
    raw = {"checkpoint": absolute, "name": "mine"}
    apply_scale(raw, 2)
    assert raw["checkpoint"] == os.path.join("pretrained", "KULNet_x2.pth") and raw["name"] == "mine"
    for own in ("experiments/a/models/latest_G.pth", "pretrained/KULNet_x4_old.pth", "/x/pretrained/KULNet_x4.pth"):
        raw = {"checkpoint": own}
        apply_scale(raw, 2)
        assert raw["checkpoint"] == own  # the user's file: a wrong scale is reported when it loads


def test_scripts_scale_option_picks_the_shipped_checkpoint(tmp_path):
    """--scale S with the x4 option files asks for pretrained/KULNet_xS.pth (in a checkout without
    pretrained/, so the one line names the file it looked for)."""
    root, s = checkout_without_pretrained(tmp_path), 3
    for script, opt in (("test.py", "options/test/test.yml"), ("test_real.py", "options/test/test_real.yml")):
        res = run_script(script, "-opt", opt, "--scale", str(s), root=root)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (script, res.stderr)
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith(f"error: pretrained/KULNet_x{s}.pth"), (script, line)


def test_test_py_scale_option_on_a_checkpoint_of_that_scale(tmp_path):
    ckpt = tmp_path / "rand_x2.pth"
    write_tiny_checkpoint(ckpt, scale=2)
    hr_dir = tmp_path / "HR"
    write_image(str(hr_dir / "im.png"), smooth_image(40, 36, seed=3))
    out = tmp_path / "out"
    res = run_script("test.py", "-opt", "options/test/test.yml", "--scale", "2", "--checkpoint", ckpt,
                     "--datasets", f"Tiny={hr_dir}", "--device", "cpu", "--out", out, "--no_save_images",
                     "--precision", "bf16")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| bf16" in res.stdout.splitlines()[0]
    doc = json.load(open(out / "results.json", encoding="utf-8"))
    assert doc["options"]["scale"] == 2 and doc["options"]["crop_border"] == 2
    assert doc["options"]["precision"] == "bf16"
    assert len(doc["rows"]) == 9 and doc["rows"][0]["height"] == 40
    res = run_script("test.py", "-opt", "options/test/test.yml", "--checkpoint", ckpt,
                     "--datasets", f"Tiny={hr_dir}", "--device", "cpu", "--out", out, "--no_save_images")
    assert res.returncode == 2 and "checkpoint is x2" in res.stderr and "Traceback" not in res.stderr


def test_test_py_end_to_end_with_a_random_checkpoint(tmp_path):
    ckpt = tmp_path / "rand.pth"
    net = write_tiny_checkpoint(ckpt)
    hr_dir = tmp_path / "HR"
    for i in range(2):
        write_image(str(hr_dir / f"im{i}.png"), smooth_image(44, 52, seed=10 + i))
    opt = write_yaml(tmp_path / "t.yml", {
        "name": "e2e", "checkpoint": str(ckpt), "network_G": net, "device": "cpu",
        "datasets": [{"name": "Tiny", "dataroot_HR": str(hr_dir)}],
        "kernels": [[2.0, 0.5, 0], [4.0, 4.0, 180]], "noise": [0], "save_images": False})
    out = tmp_path / "out"
    res = run_script("test.py", "-opt", opt, "--out", out, "--x8")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert "| Tiny | KULNet |" in res.stdout and "2-kernel average" in res.stdout
    assert res.stdout.count("PSNR_Y") >= 4  # one log line per image
    doc = json.load(open(out / "results.json", encoding="utf-8"))
    assert len(doc["rows"]) == 2 * 2
    assert {r["height"] for r in doc["rows"]} == {44} and {r["width"] for r in doc["rows"]} == {52}
    assert doc["options"]["x8"] is True
    import hashlib
    assert doc["record"]["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    rows = [l for l in open(out / "results.csv", encoding="utf-8") if not l.startswith("#")]
    assert len(rows) == 1 + 4


# -------------------------------------------------------------------------------------- figures
def test_kernel_and_uncertainty_figures():
    from evaluation.figures import (
        comparison_figure,
        kernel_centre,
        kernel_centroid,
        kernel_figure,
        kernel_image,
        uncertainty_map,
    )

    k = paper_kernels(4)[0]
    img = kernel_image(k, zoom=3)
    assert img.shape == (63, 63, 3) and img.max() == 255  # normalised to its maximum
    peak = np.unravel_index(int(k.argmax()), k.shape)
    assert img[peak[0] * 3 + 1, peak[1] * 3 + 1, 0] == 255 and img[-1, -1, 0] == 0
    # large enough to read: 16 pixels a tap, two kernels side by side, the caption under them
    fig = kernel_figure(k, k, 50.0, scale=4)
    assert fig.shape[1] >= 2 * 21 * 16 + 12 and fig.shape[0] > 21 * 16 + 60 and fig.dtype == np.uint8
    assert kernel_figure(k).shape[1] >= 21 * 16  # real photos: the estimate alone
    # the authors' grid: the top-left 18x18 at x4, centred at 8.5 taps, where the true kernel's centroid is
    assert kernel_centre(21, 4) == (8.5, 8.5) and kernel_centre(21, 2) == (9.5, 9.5) and kernel_centre(21) == (10, 10)
    assert kernel_centroid(k) == pytest.approx((8.5, 8.5), abs=1e-4)
    green, red = (40, 220, 40), (255, 40, 40)
    true_panel = fig[24:24 + 21 * 16, :21 * 16]
    assert tuple(true_panel[int(9 * 16), int(9 * 16)]) == green  # the cross on the centre of tap (8.5, 8.5)
    assert (true_panel == red).all(-1).any() and not (fig[:, 21 * 16 + 12:] == red).all(-1).all()

    log_var = torch.zeros(1, 4, 6, 8)
    log_var[0, :, 2, 5] = 1.0  # one unsure LR pixel: variance exp(2) there, 1 elsewhere
    heat, (lo, hi), scale_range = uncertainty_map(log_var, (24, 32))
    assert heat.shape == (24, 32, 3)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(math.exp(2.0)) and scale_range == (0.0, hi)
    # an absolute scale: a map as unsure as the prior everywhere is flat, in the middle of the scale
    flat, (lo, hi), scale_range = uncertainty_map(torch.full((1, 4, 6, 8), 0.01), (24, 32))
    assert scale_range == (0.0, 2.0) and (flat == flat[0, 0]).all()
    assert 0.4 < flat[0, 0].astype(int).sum() / (3 * 255) < 0.8  # the middle of the colour map, not an end
    brightness = heat.astype(int).sum(2)
    y, x = np.unravel_index(int(brightness.argmax()), brightness.shape)
    assert abs(y - (2 * 4 + 1.5)) <= 2 and abs(x - (5 * 4 + 1.5)) <= 2

    lr = np.zeros((8, 8, 3), np.uint8)
    row = comparison_figure([("LR\nnoise 0", lr, k), ("SR", np.zeros((32, 32, 3), np.uint8), None)])
    assert row.shape[1] == 2 * 32 + 4 and row.shape[0] > 32


def test_figure_scripts(tmp_path):
    from scripts import draw_architecture, make_comparison_figure

    arch = tmp_path / "arch.png"
    draw_architecture.main(["--out", str(arch)])
    assert 0 < arch.stat().st_size < 300 * 1024

    ckpt = tmp_path / "rand.pth"
    net = write_tiny_checkpoint(ckpt)
    opt = write_yaml(tmp_path / "t.yml", {"checkpoint": str(ckpt), "network_G": net, "device": "cpu"})
    out = tmp_path / "cmp.png"
    make_comparison_figure.main(["-opt", opt, "--image", "chelsea", "--crop", "64", "--out", str(out)])
    import cv2
    assert cv2.imread(str(out)).shape[1] == 4 * 64 + 3 * 4


def test_bicubic_on_set5_x4_matches_the_authors_pipeline(shared_datasets):
    """Anchor from the authors' code (measured with their pipeline): bicubic upsampling of the LR made
    by their pipeline scores 21.29 dB (PSNR_Y, Set5, x4, nine kernels, noise 0). Checks the kernels,
    degradation, mod-crop, Y conversion and border crop of the protocol end to end."""
    from evaluation.protocol import build_hr_sets

    opt = validate_test_options({"datasets": [{"name": "Set5",
                                               "dataroot_HR": os.path.join(shared_datasets, "Set5", "HR")}]})
    ev = _evaluator(_noisy_forward, {"bicubic": True, "non_blind": False})
    rows = ev.run(build_hr_sets(opt["datasets"]), build_kernels(opt), [0.0])
    average = summarize(rows)[0]["average"]
    assert len(rows) == 45
    assert average["bicubic_psnr_y"] == pytest.approx(21.29, abs=0.005)


def test_make_forward_precision_bf16_close_to_fp32_and_fp16_refused_on_cpu():
    from _eval_helpers import tiny_model

    from evaluation.inference import make_forward

    net = tiny_model(scale=2, seed=4, positive_thresholds=True)
    lr = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = make_forward(net, 2)(lr)
        fast = make_forward(net, 2, precision="bf16")(lr)
    assert fast.sr.dtype == torch.float32 and fast.kernel.dtype == torch.float32
    assert not torch.equal(fast.sr, ref.sr)  # autocast really ran
    assert (fast.sr - ref.sr).abs().max() < 0.05
    torch.testing.assert_close(fast.kernel.sum(dim=(1, 2)), torch.ones(1), atol=1e-3, rtol=0)
    with pytest.raises(KULNetError, match="fp16 on the CPU: use bf16"):
        make_forward(net, 2, precision="fp16")
    with pytest.raises(KULNetError, match="choose one of fp32, bf16, fp16"):
        make_forward(net, 2, precision="int8")
