"""Nothing silently wrong: a replaced test set holds only the new set, every checkpoint part is checked for
its scale, and an option file that sets a key twice is an error."""
import json
import os

import pytest
import torch
from _eval_helpers import smooth_image, tiny_train_options

from models import create_model
from models.networks import define_G, save_network
from options.options import parse, read_yaml
from scripts.make_testset import main as make_testset_main
from utils.errors import KULNetError

TINY = {"est_nf": 8, "sr_nf": 8, "n_stages": 2}


def _one_line(err, *parts):
    text = str(err.value)
    assert "\n" not in text and all(p in text for p in parts), text


def test_make_testset_overwrite_replaces_the_whole_set(tmp_path):
    import cv2

    hr = tmp_path / "hr"
    hr.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(hr / f"{name}.png"), smooth_image(24, 24, seed=len(name)))
    out = tmp_path / "set"
    make_testset_main(["--hr", str(hr), "--scale", "4", "--out", str(out), "--sv_mode", "3"])
    (hr / "b.png").unlink()
    make_testset_main(["--hr", str(hr), "--scale", "2", "--out", str(out), "--sig1", "1.5", "--overwrite"])
    assert sorted(os.listdir(out)) == ["HR", "README.txt", "kernel_01", "meta.json"]
    assert os.listdir(out / "HR") == ["a.png"] and json.loads((out / "meta.json").read_text())["scale"] == 2
    assert [n for n in os.listdir(tmp_path) if n not in ("hr", "set")] == []  # no temporary folder left
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(KULNetError) as err:
        make_testset_main(["--hr", str(hr), "--scale", "2", "--out", str(tmp_path / "other"), "--overwrite"])
    _one_line(err, "other: holds files and no test set")
    assert os.listdir(tmp_path / "other") == ["notes.txt"]


def test_every_part_of_a_checkpoint_is_checked_for_its_scale(tmp_path):
    other = define_G({"scale": 2, "kernel_size": 11, "network_G": dict(TINY)})
    save_network(other, str(tmp_path / "x2_model.pth"))  # our format: the scale is in its metadata
    (tmp_path / "models_x2").mkdir()
    torch.save(other.kernel_extra.state_dict(), tmp_path / "models_x2" / "estimator.pth")  # in its folder's name
    for key in ("pretrain_model_G", "pretrain_model_K"):
        for path in (tmp_path / "x2_model.pth", tmp_path / "models_x2" / "estimator.pth"):
            if key == "pretrain_model_G" and path.name == "estimator.pth":
                continue
            with pytest.raises(KULNetError) as err:
                create_model(tiny_train_options(tmp_path, f"path: {{{key}: {path}}}\n"), device="cpu")
            _one_line(err, str(path), "is x2", "x4")
    from evaluation.inference import load_model

    with pytest.raises(KULNetError) as err:  # --checkpoint of the test scripts
        load_model({"scale": 4, "kernel_size": 11, "checkpoint": str(tmp_path / "x2_model.pth"),
                    "network_G": dict(TINY)}, torch.device("cpu"))
    _one_line(err, "is x2", "x4")
    save_network(define_G({"scale": 4, "kernel_size": 11, "network_G": dict(TINY)}), str(tmp_path / "x4_model.pth"))
    right = tmp_path / "x4_model.pth"
    create_model(tiny_train_options(tmp_path, f"path: {{pretrain_model_K: {right}}}\n"), device="cpu")


def test_a_key_set_twice_in_an_option_file_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "o.yml"
    path.write_text("name: a\ntrain:\n  niter: 480000\n  lr_G: 0.0001\n  niter: 3\n")
    with pytest.raises(KULNetError) as err:
        read_yaml(str(path))
    _one_line(err, "'train.niter' is set twice", "line 3", "line 5")
    path.write_text("base: &b {niter: 1}\ntrain:\n  <<: *b\n  niter: 2\n")  # a merge key overrides: allowed
    assert read_yaml(str(path))["train"]["niter"] == 2
    with pytest.raises(KULNetError) as err:  # --set values are YAML too
        parse(str(path), ["degradation={sig_min: 1, sig_min: 2}"], check_paths=False)
    _one_line(err, "'sig_min' is set twice")
