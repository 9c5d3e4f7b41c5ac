"""Messages that send the user the right way: each case is one line naming the right fix, and the
scripts accept what their help says."""
import importlib.util
import os

import cv2
import numpy as np
import pytest
import torch
from _eval_helpers import CODES_DIR, smooth_image, tiny_train_options

from models import create_model
from models.networks import save_network
from options.inference_options import checkpoint_hint, validate_test_options
from options.options import read_yaml
from scripts import export_authors, prepare_dataset
from scripts.make_testset import main as make_testset_main
from utils.errors import KULNetError, one_line
from utils.lmdb_layout import detect_data_type


def _one_line(err, *parts):
    text = str(err.value)
    assert "\n" not in text and all(p in text for p in parts), text
    return text


def _test_script():
    spec = importlib.util.spec_from_file_location("kulnet_test_script", os.path.join(CODES_DIR, "test.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scales_given_on_the_command_line_are_blamed_on_the_flag_and_advised_rightly():
    hint = checkpoint_hint(os.path.join("pretrained", "KULNet_x5.pth"))
    assert "--set scale=5" not in hint and "train.py trains x2, x3 and x4" in hint and "--checkpoint" in hint
    script = _test_script()
    with pytest.raises(KULNetError) as err:
        script.main(["--scale", "0"])
    text = _one_line(err, "--scale 0")
    assert "test_demo.yml" not in text


def test_a_folder_of_images_named_like_an_lmdb_is_told_about_data_type_img(tmp_path):
    folder = tmp_path / "photos.lmdb"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), smooth_image(16, 16))
    with pytest.raises(KULNetError) as err:
        detect_data_type(str(folder))
    _one_line(err, "data_type: img")


def test_make_testset_accepts_what_its_help_says(tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    cv2.imwrite(str(hr / "a.png"), smooth_image(24, 24))
    for scale in ("1", "5", "8"):
        with pytest.raises(KULNetError) as err:
            make_testset_main(["--hr", str(hr), "--scale", scale, "--out", str(tmp_path / "o")])
        _one_line(err, f"--scale {scale}: give 2, 3 or 4")
    meta = make_testset_main(["--hr", str(hr), "--scale", "2", "--out", str(tmp_path / "o"), "--sv_mode", "0",
                              "--sig1", "1.5"])
    assert meta["spatially_variant"] is None and len(meta["kernels"]) == 1


def test_export_authors_reads_the_scale_from_the_path_as_the_loader_does(tmp_path):
    from models.networks import define_G

    (tmp_path / "x4").mkdir()
    theirs = tmp_path / "x4" / "latest_G.pth"
    torch.save(define_G({"scale": 4}).state_dict(), theirs)  # the authors' bare state_dict
    params = export_authors.export_authors(str(theirs), str(tmp_path / "out" / "latest_G.pth"))
    assert len(params) == len(define_G({"scale": 4}).state_dict())


def test_the_size_estimate_counts_16_bit_files_of_every_format(tmp_path):
    img = np.zeros((40, 50, 3), np.uint16)
    for ext in ("png", "tif", "ppm"):
        cv2.imwrite(str(tmp_path / f"a.{ext}"), img)
        assert prepare_dataset._bytes_per_sample(str(tmp_path / f"a.{ext}")) == 2, ext
    cv2.imwrite(str(tmp_path / "b.tif"), img.astype(np.uint8))
    assert prepare_dataset._bytes_per_sample(str(tmp_path / "b.tif")) == 1


def test_resuming_after_changing_train_mode_is_one_line(tmp_path):
    torch.manual_seed(0)
    model = create_model(tiny_train_options(tmp_path, "train: {mode: estimator}\n"), device="cpu")
    model.feed_data({"hr": torch.rand(2, 3, 32, 32)})
    model.optimize_parameters(1)
    state = model.training_state(1, 0)
    weights = str(tmp_path / "1_G.pth")
    save_network(model.net, weights, {"iteration": 1})
    joint = create_model(tiny_train_options(tmp_path, "train: {mode: joint}\n"), device="cpu")
    with pytest.raises(KULNetError) as err:
        joint.resume_training(state, weights)
    _one_line(err, "train.mode estimator", "train.mode joint", "pretrain_model_G")
    del state["mode"]  # a state saved before the mode was recorded: the optimiser's groups tell
    with pytest.raises(KULNetError) as err:
        joint.resume_training(state, weights)
    _one_line(err, "train.mode")


def test_an_enormous_alias_expansion_is_refused_and_messages_never_print_a_whole_value(tmp_path):
    bomb = tmp_path / "bomb.yml"
    lines = ["a0: &a0 [xxxxxxxxxx, xxxxxxxxxx, xxxxxxxxxx, xxxxxxxxxx, xxxxxxxxxx]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\nnoise: *a8\n")
    with pytest.raises(KULNetError) as err:
        read_yaml(str(bomb))
    text = _one_line(err, "aliases")
    assert len(text) < 400
    with pytest.raises(KULNetError) as err:
        validate_test_options({"noise": ["x" * 10**6]})
    assert len(_one_line(err, "noise")) < 400
    assert len(one_line(KULNetError("y" * 10**6))) < 2000


def test_a_resumed_log_does_not_say_the_network_starts_from_its_initialisation(tmp_path):
    import train

    model = create_model(tiny_train_options(tmp_path), device="cpu")
    assert train.weights_lines(model, resuming=False) == ["no pretrained weights: the network starts from its "
                                                          "initialisation"]
    assert train.weights_lines(model, resuming=True) == []
