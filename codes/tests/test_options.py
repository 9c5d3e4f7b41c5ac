"""Option parsing: the authors' settings, defaults, overrides and one-line errors."""
import os
import subprocess
import sys

import pytest

from options.options import REPO_ROOT, OptionDict, parse
from utils.errors import KULNetError

TRAIN_DIR = os.path.join(REPO_ROOT, "options", "train")


def _write(tmp_path, text, name="opt.yml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def minimal(tmp_path):
    (tmp_path / "hr").mkdir()
    base = f"name: t\nscale: 4\ndatasets:\n  train:\n    dataroot_GT: {tmp_path / 'hr'}\n"
    return lambda extra="": _write(tmp_path, base + extra)


def test_authors_setting():
    opt = parse(os.path.join(TRAIN_DIR, "train.yml"), check_paths=False)
    tr, t = opt["datasets"]["train"], opt["train"]
    assert opt["scale"] == 2 and opt["kernel_size"] == 21
    assert tr["dataroot_GT"] == os.path.join(REPO_ROOT, "datasets", "DF2K", "HR")
    assert (tr["batch_size"], tr["GT_size"], tr["n_workers"], tr["use_flip"], tr["use_rot"]) == (16, 96, 8, True, True)
    assert t["niter"] == 480000 and t["lr_steps"] == [120000, 240000, 360000, 480000]
    assert t["lr_gamma"] == 0.5 and t["lr_G"] == 2e-4 and (t["beta1"], t["beta2"]) == (0.9, 0.999)
    assert (t["pixel_weight"], t["kernel_weight"], t["kl_weight"]) == (1.0, 1.0, 1e-3)
    assert t["manual_seed"] == 0 and t["val_freq"] == 1000 and t["precision"] == "auto"
    assert t["lr_consistency_weight"] == 0 and t["grad_clip"] is None
    v = opt["datasets"]["val"]
    assert (v["sig1"], v["sig2"], v["theta"], v["noise"]) == (3.5, 1.5, 0.5233, 10.0)
    assert v["dataroot_GT"] == os.path.join(REPO_ROOT, "datasets", "Set14", "HR")
    d = opt["degradation"]
    assert (d["sig_min"], d["sig_max"], d["rate_iso"], d["noise_high"]) == (0.2, 4.0, 0.0, 25.0)
    assert opt["logger"]["save_checkpoint_freq"] == 5000
    for s in (3, 4):
        o = parse(os.path.join(TRAIN_DIR, f"train_x{s}.yml"), check_paths=False)
        assert o["scale"] == s and o["datasets"]["train"]["GT_size"] == 48 * s
        assert o["train"] == t  # same training setting at every scale


@pytest.mark.photo_sets("train/HR", "Set14/HR")
def test_short_recipe_is_a_cosine_to_its_last_iteration(shared_datasets):
    """The recipe of the shipped models: warm-up, one cosine cycle that ends at train.niter; its data
    folders given on the command line, as its header says."""
    data = [f"datasets.train.dataroot_GT={os.path.join(shared_datasets, 'train', 'HR')}",
            f"datasets.val.dataroot_GT={os.path.join(shared_datasets, 'Set14', 'HR')}"]
    opt = parse(os.path.join(TRAIN_DIR, "train_short.yml"), data)
    t = opt["train"]
    assert t["lr_scheme"] == "CosineAnnealingRestartLR" and t["T_period"] == [t["niter"]] and t["warmup_iter"] == 200
    assert opt["scale"] == 4 and opt["datasets"]["train"]["GT_size"] == 192
    assert (t["compile"], t["blur_impl"]) == ("auto", "auto")


def test_defaults_and_gt_size_derived(minimal):
    opt = parse(minimal())
    assert opt["datasets"]["train"]["GT_size"] == 192  # 48 * scale when not given
    assert opt["datasets"]["val"] is None and opt["train"]["niter"] == 480000
    assert opt["network_G"]["which_model_G"] == "KULNet" and opt["network_G"]["est_nf"] == 64
    assert opt["path"]["experiments_root"] == os.path.join(REPO_ROOT, "experiments")
    assert isinstance(opt["train"], OptionDict)
    with pytest.raises(KULNetError, match=r"'train\.no_such_key'"):
        opt["train"]["no_such_key"]


def test_yaml11_floats_and_integral_floats(minimal):
    opt = parse(minimal("train:\n  lr_G: 2e-4\n  val_freq: 5e3\n"))
    assert opt["train"]["lr_G"] == 2e-4 and opt["train"]["val_freq"] == 5000
    assert isinstance(opt["train"]["val_freq"], int)


@pytest.mark.parametrize("extra, pattern", [
    ("train:\n  lr_g: 1e-4\n", r"unknown key 'train\.lr_g'; did you mean 'train\.lr_G'\?"),
    ("trian:\n  niter: 5\n", r"unknown key 'trian'; did you mean 'train'\?"),
    ("network_G:\n  est_nff: 8\n", r"'network_G\.est_nff'; did you mean 'network_G\.est_nf'\?"),
    ("network_G:\n  which_model_G: KULNett\n", r"which_model_G = 'KULNett' is not one of \['KULNet'\]"),
    ("train:\n  niter: many\n", r"train\.niter = 'many' \(str\) is not an integer"),
    ("train:\n  niter: 10.5\n", r"train\.niter = 10\.5 .* not an integer"),
    ("logger:\n  use_tb_logger: 1\n", r"logger\.use_tb_logger = 1 .* not true or false"),
    ("train:\n  precision: fp8\n", r"train\.precision = 'fp8' is not one of"),
    ("train:\n  compile: off\n", r"train\.compile = False \(bool\) is not one of \['auto', 'eager'.*YAML reads off"),
    ("train:\n  lr_steps: 100\n", r"train\.lr_steps = 100 .* not a list"),
    ("train:\n  lr_scheme: CosineAnnealingRestartLR\n", r"train\.T_period is needed"),
    ("device: tpu\n", r"device = 'tpu'"),
    ("train:\n  niter: 0\n", r"train\.niter = 0 must be >= 1"),
    ("train:\n  manual_seed: -1\n", r"train\.manual_seed = -1 must be >= 0"),
    ("train:\n  lr_G: .nan\n", r"train\.lr_G = nan \(float\) is not a finite number"),
])
def test_option_errors(minimal, extra, pattern):
    with pytest.raises(KULNetError, match=pattern) as err:
        parse(minimal(extra))
    assert "\n" not in str(err.value)


def test_scale_gt_size_and_folders(tmp_path):
    (tmp_path / "hr").mkdir()
    hr = tmp_path / "hr"
    cases = [
        (f"name: t\nscale: 5\ndatasets:\n  train: {{dataroot_GT: {hr}}}\n", r"scale = 5 is not one of \[2, 3, 4\]"),
        (f"name: t\nscale: 4\ndatasets:\n  train: {{dataroot_GT: {hr}, GT_size: 90}}\n",
         r"GT_size = 90 is not divisible by scale 4"),
        (f"name: t\ndatasets:\n  train: {{dataroot_GT: {hr}}}\n", r"required key 'scale' is missing"),
        ("name: t\nscale: 2\ndatasets:\n  train: {GT_size: 96}\n", r"required key 'datasets\.train\.dataroot_GT'"),
        ("name: t\nscale: 2\n", r"section 'datasets' is missing"),
        (f"name: t\nscale: 2\ndatasets:\n  train: {{dataroot_GT: {tmp_path}/nope}}\n",
         r"datasets\.train\.dataroot_GT: folder .*nope does not exist"),
        (f"name: t\nscale: 2\ndatasets:\n  train: {{dataroot_GT: {hr}}}\n  val: {{dataroot_GT: {tmp_path}/v}}\n",
         r"datasets\.val\.dataroot_GT: folder .*v does not exist"),
        (f"name: t\nscale: 2\ndatasets:\n  train: {{dataroot_GT: {hr}}}\npath: {{resume_state: {tmp_path}/x.state}}\n",
         r"path\.resume_state: file .*x\.state does not exist"),
        ("name: [t\n", r"not valid YAML \(line"),
    ]
    for text, pattern in cases:
        with pytest.raises(KULNetError, match=pattern):
            parse(_write(tmp_path, text))


def test_overrides(minimal):
    path = minimal()
    opt = parse(path, ["train.niter=1000", "train.lr_steps=[10, 20]", "scale=2", "network_G.est_nf=8",
                       "datasets.train.use_flip=false", "path.experiments_root=runs"])
    assert opt["train"]["niter"] == 1000 and opt["train"]["lr_steps"] == [10, 20]
    assert opt["scale"] == 2 and opt["datasets"]["train"]["GT_size"] == 96
    assert opt["network_G"]["est_nf"] == 8 and opt["datasets"]["train"]["use_flip"] is False
    assert opt["path"]["experiments_root"] == os.path.join(REPO_ROOT, "runs")
    with pytest.raises(KULNetError,
                       match=r"--set train\.nitre: unknown key 'train\.nitre'; did you mean 'train\.niter'"):
        parse(path, ["train.nitre=5"])
    with pytest.raises(KULNetError, match=r"expected key\.path=value"):
        parse(path, ["train.niter"])
    with pytest.raises(KULNetError, match=r"train\.niter = 'x'"):
        parse(path, ["train.niter=x"])


def test_cli_missing_df2k_is_one_line_error():
    if os.path.isdir(os.path.join(REPO_ROOT, "datasets", "DF2K", "HR")):
        pytest.skip("DF2K is present: train.yml would start training")
    proc = subprocess.run([sys.executable, "codes/train.py", "-opt", "options/train/train.yml"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "datasets.train.dataroot_GT" in lines[0]
    assert "DF2K" in lines[0] and not os.path.exists(os.path.join(REPO_ROOT, "experiments", "KULNet_x2_DF2K"))
