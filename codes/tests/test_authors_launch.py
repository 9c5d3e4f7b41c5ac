"""The authors' launch: their three option files, unedited but for the training length, run by our scripts
from codes/ (``cd codes && python test.py --opt options/test/test.yml``) and from the root, in a checkout
with their data and checkpoints where their paths point (tiny images, tiny networks)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from _eval_helpers import checkout_without_pretrained, smooth_image, write_tiny_checkpoint

from utils.image_io import write_image

AUTHORS_FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "authors_files")
TINY = ["--set", "network_G.est_nf=8", "--set", "network_G.sr_nf=8", "--set", "network_G.n_stages=2",
        "--set", "datasets.train.batch_size=2"]  # our keys over their file: a CPU-sized run


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A checkout whose codes/options/ hold the authors' files, with their data and checkpoints in place."""
    root = checkout_without_pretrained(tmp_path_factory.mktemp("authors"))
    for name, folder in (("test.yml", "test"), ("test_real.yml", "test"), ("train.yml", "train")):
        os.makedirs(os.path.join(root, "codes", "options", folder), exist_ok=True)
        shutil.copy(os.path.join(AUTHORS_FILES, name), os.path.join(root, "codes", "options", folder, name))
    train = os.path.join(root, "codes", "options", "train", "train.yml")
    text = open(train).read()
    for old, new in (("niter: 480000", "niter: 2"), ("val_freq: !!float 1e3", "val_freq: 2"),
                     ("n_workers: 8", "n_workers: 0")):
        text = text.replace(old, new)  # only these are shortened
    open(train, "w").write(text)
    for scale in (2, 4):
        write_tiny_checkpoint(os.path.join(root, "experiments", "pretrained_models", f"x{scale}", "latest_G.pth"),
                              scale=scale)
    images = {"Set5/HR": (2, 24, 28), "historical": (2, 16, 20), "Set14/HR": (2, 24, 24), "DF2K/HR": (4, 100, 100)}
    for folder, (n, h, w) in images.items():
        for i in range(n):
            write_image(os.path.join(root, "datasets", folder, f"im{i}.png"), smooth_image(h, w, seed=10 * n + i))
    return root


def _run(checkout, where, script, *args, env=None):
    """Run ``script`` from ``codes/`` (``where='codes'``) or from the root (``codes/<script>``)."""
    cwd = os.path.join(checkout, "codes") if where == "codes" else checkout
    path = script if where == "codes" else os.path.join("codes", script)
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    res = subprocess.run([sys.executable, path, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                         env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_their_test_yml_from_codes(checkout):
    res = _run(checkout, "codes", "test.py", "--opt", "options/test/test.yml")
    first = res.stdout.splitlines()[0]
    assert first.startswith("options/test/test.yml: the authors' layout (their test.yml); translated name, ")
    out = os.path.join(checkout, "results", "KULNet_test_x2")  # their name decides the folder
    rows = json.load(open(os.path.join(out, "results.json")))["rows"]
    assert len(rows) == 9 * 2 and {r["dataset"] for r in rows} == {"Set5"}
    (log,) = glob.glob(os.path.join(out, "test_KULNet_test_x2_*.log"))
    text = open(log).read()
    assert text.splitlines()[0] == first and "Set5 noise 0 k9 im1: PSNR_Y" in text
    assert "9-kernel average" in text and "| Set5 | KULNet |" in text and "results: " in text
    assert text.count("PSNR_Y ") >= 18


def test_their_test_yml_from_the_root_with_a_spatially_variant_pattern(checkout):
    res = _run(checkout, "root", "test.py", "--opt", "codes/options/test/test.yml", "--sv_mode", "2",
               "--save_kernel")
    assert "x sv_mode 2" in res.stdout
    out = os.path.join(checkout, "results", "KULNet_test_x2")
    rows = json.load(open(os.path.join(out, "results.json")))["rows"]
    assert len(rows) == 2 and all(r["kernel_psnr"] > 0 for r in rows)
    blocks = json.load(open(os.path.join(out, "sv_blocks.json")))
    assert blocks["sv_mode"] == 2 and len(blocks["images"]) == 2
    assert blocks["images"][0]["blocks"] == [[pytest.approx([0.35, 0.35, 0.0])]]  # one block: b = 0.175 s


@pytest.mark.parametrize("where, opt", [("codes", "options/test/test_real.yml"),
                                        ("root", "codes/options/test/test_real.yml")])
def test_their_test_real_yml(checkout, where, opt):
    res = _run(checkout, where, "test_real.py", "--opt", opt, "--save_kernel")
    lines = res.stdout.splitlines()
    assert len(lines[0]) <= 100 and lines[1].startswith("  ")  # the translation's report is wrapped
    assert "as their scripts take them" in " ".join(res.stdout.split())
    assert "ignored sv_mode = 0: test_real.py restores real photos" in res.stdout
    out = os.path.join(checkout, "results", "test_real_x4")
    assert sorted(f for f in os.listdir(out) if f.endswith("_SR.png")) == ["im0_SR.png", "im1_SR.png"]
    assert "2 of 2 image(s) restored" in res.stdout


@pytest.mark.parametrize("where, opt, launch, env", [
    ("codes", "options/train/train.yml", ["--launcher", "pytorch", "--local_rank", "0"],
     {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}),
    ("root", "codes/options/train/train.yml", [], None),
])
def test_their_train_yml(checkout, where, opt, launch, env):
    _run(checkout, where, "train.py", "--opt", opt, *TINY, *launch, env=env)
    exp = os.path.join(checkout, "experiments", "KULNet_train_x2")
    assert os.path.isfile(os.path.join(exp, "models", "latest_G.pth"))
    (log,) = glob.glob(os.path.join(exp, "train_*.log"))
    # the report's notes are wrapped: their continuation lines (indented) joined back, the log's prefix dropped
    text = re.sub(r"\n\S+ \S+ INFO:   ", " ", open(log).read())
    assert "the authors' layout (their train.yml); translated name" in text
    assert "ignored cal_lr_psnr = False: validation always reports the LR PSNR here" in text
    assert "validation at iteration 2" in text and "done: 2 iterations" in text
    if launch:
        assert "--launcher pytorch --local_rank 0: torchrun's environment is used (WORLD_SIZE 1, RANK 0, " \
               "LOCAL_RANK 0)" in text


def test_print_options_writes_the_same_run_in_our_layout(checkout):
    res = _run(checkout, "codes", "train.py", "--opt", "options/train/train.yml", "--print_options")
    assert yaml.safe_load(res.stdout)["datasets"]["train"]["dataroot_GT"] == "datasets/DF2K/HR"
    ours = os.path.join(checkout, "ours.yml")  # in the checkout: its paths are taken from that root
    with open(ours, "w") as handle:
        handle.write(res.stdout)
    their = os.path.join(checkout, "codes", "options", "train", "train.yml")
    code = ("import sys, json; from options.options import parse, to_plain; "
            "print(json.dumps([to_plain(parse(p, check_paths=False)) for p in sys.argv[1:]]))")
    res = subprocess.run([sys.executable, "-c", code, their, ours],
                         cwd=os.path.join(checkout, "codes"), capture_output=True, text=True, timeout=120)
    first, second = json.loads(res.stdout)
    for opt in (first, second):
        del opt["opt_path"], opt["layout_notes"]
    assert first == second
    res = _run(checkout, "root", "test.py", "--help-options")
    ours, theirs = res.stdout.split("# The authors' keys and their places here")
    assert ours.startswith("# The keys of test.py's option files") and "| `sv_mode` | int (0 / 1 / 2" in ours
    assert "| their key | in their | here | how |" in theirs and "`sig_min`" in theirs


def test_export_for_their_load_state_dict(shared_reference, tmp_path, repo_root):
    out = tmp_path / "x4" / "latest_G.pth"
    res = subprocess.run([sys.executable, os.path.join(repo_root, "codes", "scripts", "export_authors.py"),
                          os.path.join(repo_root, "pretrained", "KULNet_x4.pth"), str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"wrote {out}: a bare state_dict of 126 float32 tensors, for the authors' " \
                                 f"load_state_dict"
    bare = torch.load(out, map_location="cpu", weights_only=True)
    assert type(bare) is dict and all(v.dtype == torch.float32 for v in bare.values())
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(shared_reference,
                                                                         "reference_checkpoint_keys.tsv"))
            if not line.startswith("#")]
    assert [(k, tuple(v.shape)) for k, v in bare.items()] == [(k, eval(s)) for k, s in rows]
    from models.networks import define_G, read_checkpoint

    net = define_G({"scale": 4})
    assert net.load_state_dict(bare, strict=True).missing_keys == []  # as their code loads it
    ours = read_checkpoint(os.path.join(repo_root, "pretrained", "KULNet_x4.pth"))[1]
    assert all(torch.equal(bare[k], ours[k].float()) for k in ours)


def test_export_refuses_other_widths(tmp_path):
    from scripts.export_authors import export_authors
    from utils.errors import KULNetError

    write_tiny_checkpoint(tmp_path / "tiny.pth", scale=2)
    with pytest.raises(KULNetError, match=r"tiny\.pth: weights of other widths than the authors' network"):
        export_authors(str(tmp_path / "tiny.pth"), str(tmp_path / "out.pth"))
    assert not os.path.exists(tmp_path / "out.pth")



def test_export_refuses_a_contrast_input_estimator(tmp_path):
    """The authors' estimator takes the image itself: a checkpoint trained on the local contrast would load
    there and estimate nonsense, so it is refused in a line and nothing is written."""
    from models.networks import define_G, save_network
    from scripts.export_authors import export_authors
    from utils.errors import KULNetError

    save_network(define_G({"scale": 4, "network_G": {"estimator_input": "contrast"}}), str(tmp_path / "x4.pth"))
    with pytest.raises(KULNetError, match="estimator_input = contrast") as err:
        export_authors(str(tmp_path / "x4.pth"), str(tmp_path / "out.pth"))
    assert "\n" not in str(err.value) and not os.path.exists(tmp_path / "out.pth")
