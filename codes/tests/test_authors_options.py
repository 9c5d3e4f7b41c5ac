"""Option files in the authors' layout: their three files as they ship, translated key by key; the hints
for unknown keys in files of either layout; the checkpoint of the file's scale; --print_options."""
import os
import re

import pytest
import torch
import yaml

from data.kernels import isotropic_gaussian_kernels, paper_kernels
from evaluation.protocol import build_kernels
from options.authors_layout import _leaves, our_layout_yaml, translate
from options.authors_table import FILES, TABLE, key_table
from options.inference_options import REAL_SCHEMA, TEST_SCHEMA, validate_real_options, validate_test_options
from options.options import REPO_ROOT, locate_option_file, parse, read_options, read_yaml, to_plain
from options.schema import TRAIN_SCHEMA
from utils.errors import KULNetError

AUTHORS_FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "authors_files")
KINDS = {"test": ("test.yml", TEST_SCHEMA), "real": ("test_real.yml", REAL_SCHEMA),
         "train": ("train.yml", TRAIN_SCHEMA)}


def _file(kind):
    return os.path.join(AUTHORS_FILES, KINDS[kind][0])


def _translate(kind, change=None, check_paths=False):
    """The authors' file of ``kind`` with ``change`` (dotted key: value; None removes) translated."""
    raw = read_yaml(_file(kind))
    for key, value in (change or {}).items():
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return translate(raw, kind, KINDS[kind][0], KINDS[kind][1], check_paths)


def _documented(reference):
    """Every key and value of the authors' three files as AUTHORS_OPTIONS.md lists them."""
    text = open(os.path.join(reference, "AUTHORS_OPTIONS.md"), encoding="utf-8").read()
    sections = dict(re.findall(r"^## (test\.yml|test_real\.yml|train\.yml)[^\n]*\n(.*?)(?=^## )", text, re.S | re.M))
    files = {}
    for name, body in sections.items():
        keys = {}
        for key_cell, value_cell in re.findall(r"^\| (`[^|]*) \| (`[^|]*) \|", body, re.M):
            names, values = re.findall(r"`([^`]*)`", key_cell), re.findall(r"`([^`]*)`", value_cell)
            assert len(names) == len(values), key_cell
            parent = names[0].rsplit(".", 1)[0] + "." if "." in names[0] else ""
            for i, (key, value) in enumerate(zip(names, values)):
                keys[key if i == 0 else parent + key] = yaml.safe_load(value)
        files[name] = keys
    top = list(files["test.yml"])
    shared = {k: files["test.yml"][k] for k in top[:top.index("sv_mode") + 1]}
    files["test_real.yml"] = {**shared, "name": "test_real_x4", "scale": 4, **files["test_real.yml"]}
    return files


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_our_copies_are_their_files_as_shipped(shared_reference, kind):
    documented = _documented(shared_reference)[KINDS[kind][0]]
    assert dict(_leaves(read_yaml(_file(kind)))) == documented


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_key_is_translated_or_reported(kind):
    out = _translate(kind)
    keys = [k for k, _ in _leaves(read_yaml(_file(kind)))]
    said = [k for k, _ in out.translated] + [k for k, _, _ in out.ignored] + out.empty
    assert sorted(said) == sorted(keys)
    lines = out.lines()
    assert all(len(line) <= 100 and "\n" not in line for line in lines)  # wrapped, even the long first note
    notes = " \n".join(lines).replace(" \n  ", " ").split(" \n")  # continuation lines joined back
    assert notes[0].startswith(f"{KINDS[kind][0]}: the authors' layout (their {KINDS[kind][0]}); translated ")
    assert "relative paths taken from codes/" in notes[0]
    assert len(notes) == 1 + len(out.ignored)
    for key, value, reason in out.ignored:
        assert f"{KINDS[kind][0]}: ignored {key} = {value!r}: {reason}" in notes


def test_their_test_yml_keeps_its_meaning():
    raw = _translate("test").raw
    opt = validate_test_options(raw)
    assert opt["name"] == "KULNet_test_x2" and opt["scale"] == 2 and opt["crop_border"] == 2  # ~: the scale
    assert opt["noise"] == [0.0] and opt["device"] == "auto" and opt["sv_mode"] == 0
    assert opt["network_G"]["which_model_G"] == "KULNet"
    assert opt["datasets"] == [{"name": "Set5", "dataroot_HR": os.path.join(REPO_ROOT, "datasets", "Set5", "HR"),
                                "skimage": None, "center_crop": None, "max_images": None}]
    assert opt["checkpoint"] == os.path.join(REPO_ROOT, "experiments", "pretrained_models", "x2", "latest_G.pth")
    assert opt["out"] == os.path.join(REPO_ROOT, "results", "KULNet_test_x2")
    kernels = build_kernels(opt)  # theta in degrees, turned into radians as theta/180*3.14
    assert torch.equal(torch.stack([k.kernel for k in kernels]), paper_kernels(2))
    assert validate_test_options(_translate("test", {"test_noise": False, "noise": 5}).raw)["noise"] == [0.0]
    assert validate_test_options(_translate("test", {"noise": 5}).raw)["noise"] == [5.0]


def test_their_test_real_yml_keeps_its_meaning():
    opt = validate_real_options(_translate("real").raw)
    assert opt["input"] == os.path.join(REPO_ROOT, "datasets", "historical") and opt["scale"] == 4
    assert opt["out"] == os.path.join(REPO_ROOT, "results", "test_real_x4") and opt["border"] is True
    assert opt["checkpoint"] == os.path.join(REPO_ROOT, "experiments", "pretrained_models", "x4", "latest_G.pth")


def test_their_train_yml_is_our_train_yml():
    """Translated, their train.yml is our options/train/train.yml (the authors' setting) but for the name and
    path.strict_load (theirs false)."""
    theirs = to_plain(parse(_file("train"), check_paths=False))
    ours = to_plain(parse(os.path.join(REPO_ROOT, "options", "train", "train.yml"), check_paths=False))
    for opt in (theirs, ours):
        del opt["opt_path"], opt["layout_notes"]
    assert theirs.pop("name") == "KULNet_train_x2" and ours.pop("name") == "KULNet_x2_DF2K"
    assert theirs["path"].pop("strict_load") is False and ours["path"].pop("strict_load") is True
    assert theirs == ours
    assert theirs["train"]["warmup_iter"] == 0 and theirs["train"]["val_freq"] == 1000  # -1 and !!float 1e3
    assert theirs["degradation"]["sig_min"] == 0.2 and theirs["train"]["kernel_loss"] == "authors"


@pytest.mark.parametrize("kind, change, key, value", [
    ("test", {"rate_iso": 1, "sig": 1.5}, "kernels", [[2.25, 2.25, 0.0]]),
    ("test", {"sv_mode": 3}, "sv_mode", 3),
    ("train", {"train_jpeg": True}, "degradation.jpeg_low", 70),
    ("train", {"train_noise": False}, "degradation.random_noise", False),
    ("train", {"rate_iso": 1}, "datasets.val.sig1", 1.6 ** 2),
    ("train", {"rate_iso": 1}, "degradation.rate_iso", 1.0),
    ("train", {"name": "debug_x2"}, "train.val_freq", 8),
    ("train", {"name": "debug_x2"}, "logger.use_tb_logger", False),
    ("train", {"gpu_ids": [1]}, "device", "cuda:1"),
    ("train", {"gpu_ids": []}, "device", "cpu"),
    ("train", {"train.lr_scheme": "CosineAnnealingLR_Restart", "train.T_period": [100, 100],
               "train.restarts": [100], "train.restart_weights": [0.5]}, "train.restart_weights", [1.0, 0.5]),
    ("train", {"train.lr_scheme": "CosineAnnealingLR_Restart", "train.T_period": [100, 100],
               "train.restarts": [100]}, "train.lr_scheme", "CosineAnnealingRestartLR"),
    ("test", {"device": "cpu"}, "device", "cpu"),  # a key of ours in their file is kept
])
def test_values_we_support_work(kind, change, key, value):
    node = _translate(kind, change).raw
    for part in key.split("."):
        node = node[part]
    assert node == pytest.approx(value) if isinstance(value, float) else node == value


def test_isotropic_test_kernel_is_their_isotropic_kernel():
    opt = validate_test_options(_translate("test", {"rate_iso": 1, "sig": 1.5}).raw)
    (kernel,) = build_kernels(opt)
    assert torch.allclose(kernel.kernel, isotropic_gaussian_kernels(1.5, 21, 2)[0], atol=1e-7)


def test_sv_mode_replaces_their_kernels_and_our_kernels_then_are_an_error():
    out = _translate("test", {"sv_mode": 5})
    assert {k for k, _, _ in out.ignored} >= {"sig1", "sig2", "theta"} and "kernels" not in out.raw
    assert len(build_kernels(validate_test_options(out.raw))) == 1
    with pytest.raises(KULNetError, match=r"sv_mode = 2 takes each block's kernel from the pattern"):
        validate_test_options({"sv_mode": 2, "kernels": [[2.0, 1.0, 0]]})


@pytest.mark.parametrize("kind, change, message", [
    ("test", {"sv_mode": 7}, None),  # our schema's check: "options: sv_mode = 7 is not one of [0, ..., 6]"
    ("test", {"rate_iso": 0.5}, r"rate_iso = 0\.5: a test has one kind of kernel"),
    ("test", {"rate_iso": 1}, r"rate_iso = 1: rate_iso 1 needs 'sig'"),
    ("test", {"test_jpeg": True}, r"test_jpeg = True: JPEG in the test and validation LR is not supported"),
    ("train", {"test_jpeg": True}, r"test_jpeg = True: JPEG"),
    ("train", {"train.lr_scheme": "ReduceLROnPlateau"}, r"train\.lr_scheme = 'ReduceLROnPlateau': the schedules"),
    ("train", {"train.restarts": [1000]}, r"train\.restarts = \[1000\]: restarts of MultiStepLR"),
    ("train", {"train.pixel_criterion": "l2"}, r"train\.pixel_criterion = 'l2': the SR loss here is l1"),
    ("train", {"train.kernel_criterion": "l2"}, r"train\.kernel_criterion = 'l2'"),
    ("train", {"gpu_ids": [0, 1]}, r"gpu_ids = \[0, 1\]: one process uses one GPU here; .*torchrun --nproc_per_node 2"),
    ("train", {"datasets.train.LR_size": 40}, r"datasets\.train\.LR_size = 40: the LR crop is always GT_size / scale"),
    ("train", {"datasets.train.color": "gray"}, r"datasets\.train\.color = 'gray': only 'RGB'"),
    ("train", {"datasets.train.mode": "LQGT"}, r"datasets\.train\.mode = 'LQGT'"),
    ("train", {"model": "sr"}, r"model = 'sr': only 'blind' is supported here"),
    ("test", {"network_G.which_model_G": "MANet"}, r"which_model_G = 'MANet': their BlindNet \(KULNet\) is the"),
    ("test", {"datasets.test.mode": "LQ"}, r"datasets\.test\.mode = 'LQ': test\.py makes the LR from HR images"),
    ("test", {"datasets.test.dataroot_GT": "../datasets/Set5/HR.lmdb"}, r"dataroot_GT = .*HR\.lmdb'.*image folder"),
    ("test", {"kernel_criterion": "l1"}, r"unknown key 'kernel_criterion' in a file of the authors' layout"),
    ("train", {"train.lr_gama": 0.5}, r"unknown key 'train\.lr_gama' .*did you mean 'train\.lr_gamma'\?"),
])
def test_values_we_do_not_support_are_one_line_errors(kind, change, message):
    with pytest.raises(KULNetError) as err:
        raw = _translate(kind, change).raw
        (validate_test_options if kind == "test" else parse)(raw)
    text = str(err.value)
    assert "\n" not in text
    if message:
        assert re.search(message, text), text
        assert text.startswith(KINDS[kind][0])


def test_missing_path_names_what_was_tried():
    with pytest.raises(KULNetError) as err:
        _translate("test", check_paths=True)
    text = str(err.value)
    folder = os.path.normpath(os.path.join(REPO_ROOT, "datasets", "Set5", "HR"))
    assert f"datasets.test.dataroot_GT = '../datasets/Set5/HR': folder {folder} does not exist" in text
    assert "taken from codes/" in text and "\n" not in text
    # a path that the command line replaces (--datasets, --checkpoint, --set ...) is not looked for
    raw = read_yaml(_file("test"))
    translate(raw, "test", "test.yml", TEST_SCHEMA, check_paths=True, overridden=("datasets", "checkpoint"))
    with pytest.raises(KULNetError, match=r"path\.pretrain_model_G = .*latest_G\.pth': file .* does not exist"):
        translate(raw, "test", "test.yml", TEST_SCHEMA, check_paths=True, overridden=("datasets",))
    raw = read_yaml(_file("train"))
    translate(raw, "train", "train.yml", TRAIN_SCHEMA, overridden=("datasets.train.dataroot_GT", "datasets.val"))


def test_option_file_found_from_codes_as_from_the_root(monkeypatch):
    monkeypatch.chdir(os.path.join(REPO_ROOT, "codes"))
    assert locate_option_file("options/test/test.yml") == os.path.join(REPO_ROOT, "options", "test", "test.yml")
    with pytest.raises(KULNetError, match=r"options/test/nope\.yml: option file not found \(tried .*codes/options/"
                                          r"test/nope\.yml and .*/options/test/nope\.yml\)"):
        locate_option_file("options/test/nope.yml")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_printed_options_read_as_ours_give_the_same_run(kind, tmp_path):
    raw, notes = read_options(_file(kind), kind, KINDS[kind][1], check_paths=False)
    text = our_layout_yaml(raw, KINDS[kind][1], notes, KINDS[kind][0])
    assert text.startswith(f"# {KINDS[kind][0]} in our layout") and "# " + notes[0] in text
    path = tmp_path / "ours.yml"
    path.write_text(text)
    again, again_notes = read_options(str(path), kind, KINDS[kind][1], check_paths=False)
    assert again_notes == [] and again == raw
    if kind == "train":
        first, second = (to_plain(parse(p, check_paths=False)) for p in (_file(kind), str(path)))
        assert {k: v for k, v in first.items() if k not in ("opt_path", "layout_notes")} == \
            {k: v for k, v in second.items() if k not in ("opt_path", "layout_notes")}


# ------------------------------------------------------------------------------------------- hints
def _ours(tmp_path, kind, text):
    path = tmp_path / f"{kind}.yml"
    path.write_text(text)
    raw = read_yaml(str(path))
    return {"test": validate_test_options, "real": validate_real_options}.get(kind, lambda r: parse(str(path)))(raw)


@pytest.mark.parametrize("kind, text, right, wrong", [
    ("test", "rate_iso: 0\n", r"'rate_iso' is 'kernels' here", "precision"),
    ("train", "train: {kernel_criterion: l1}\n", r"'train\.kernel_criterion' is 'train\.kernel_loss' here",
     "pixel_criterion"),
    ("train", "datasets: {train: {dataroot_LQ: x}}\n",
     r"'datasets\.train\.dataroot_LQ' has no counterpart here: mode GT", "dataroot_GT'"),
    ("test", "datasets: [{name: S, dataroot_HR: x, dataroot_LQ: y}]\n",
     r"'datasets\[0\]\.dataroot_LQ' has no counterpart here", "dataroot_HR'"),
    ("test", "pretrain_model_K: x.pth\n", r"'pretrain_model_K' has no counterpart here: the test scripts load one "
     r"whole-network checkpoint", "pretrain_model_G"),
    ("train", "datasets: {train: {LR_size: 48}}\n", r"'datasets\.train\.LR_size' has no counterpart here: always "
     r"GT_size / scale", "did you mean"),
    ("train", "train: {restarts: [10]}\n", r"'train\.restarts' is 'train\.T_period' here", "restart_weights"),
    ("real", "crop_border: 4\n", r"'crop_border' has no counterpart here: test_real\.py restores real photos",
     "'border'"),
    ("train", "sig_min: 0.2\n", r"unknown key 'sig_min'; 'sig_min' is 'degradation\.sig_min' here", "valid keys"),
    ("test", "path: {pretrain_model_G: x.pth}\n", r"'path' is a section of their test\.yml: .*pretrain_model_G is "
     r"'checkpoint' here", "did you mean"),
    ("test", "checkpiont: x.pth\n", r"did you mean 'checkpoint'\?", "valid keys"),  # close: a guess
    ("test", "quality: 3\n", r"valid keys here: ", "did you mean"),  # far: no guess
])
def test_hints_for_unknown_keys(tmp_path, kind, text, right, wrong):
    if kind == "train":
        (tmp_path / "hr").mkdir()
        text = f"name: t\nscale: 2\n{text}"
        if "datasets" not in text:
            text += f"datasets: {{train: {{dataroot_GT: {tmp_path / 'hr'}}}}}\n"
    with pytest.raises(KULNetError) as err:
        _ours(tmp_path, kind, text)
    assert re.search(right, str(err.value)), str(err.value)
    assert wrong not in str(err.value)


def test_key_table_lists_every_entry():
    table = key_table()
    rows = table.splitlines()[2:]
    for entry in TABLE:
        (row,) = [r for r in rows if f"`{entry.key}`" in r.split(" | ")[0] and
                  ", ".join(FILES[f] for f in entry.files) == r.split(" | ")[1]]
        here = "(dropped)" if not entry.here else "the same key" if entry.here == entry.key else f"`{entry.here}`"
        assert row.endswith(f" | {here} | {entry.how} |")
    assert "| `sig1`, `sig2`, `theta`, `sig`, `rate_iso`, `test_noise`, `noise`, `sv_mode` | test_real.yml | " \
           "(dropped) |" in table


# ------------------------------------------------------------------------------------- scale
def test_a_file_without_checkpoint_takes_the_shipped_model_of_its_scale():
    for validate in (validate_test_options, validate_real_options):
        assert validate({"scale": 2})["checkpoint"] == os.path.join(REPO_ROOT, "pretrained", "KULNet_x2.pth")
        assert validate({})["checkpoint"] == os.path.join(REPO_ROOT, "pretrained", "KULNet_x4.pth")
    opt = validate_test_options(_translate("test", {"path.pretrain_model_G": None}).raw)
    assert opt["checkpoint"] == os.path.join(REPO_ROOT, "pretrained", "KULNet_x2.pth")


def test_a_checkpoint_naming_no_scale_warns_once_and_2x_names_one(tmp_path, caplog):
    from _eval_helpers import TINY_NET, tiny_model

    from models.networks import define_G, load_network

    bare = tiny_model(scale=4).state_dict()  # the authors' layout: a bare state_dict, no metadata
    for folder in ("models", "models_2x"):
        os.makedirs(tmp_path / folder)
        torch.save(bare, tmp_path / folder / "latest_G.pth")
    net = define_G({"scale": 4, "network_G": dict(TINY_NET)})
    with caplog.at_level("WARNING"):
        meta = load_network(net, str(tmp_path / "models" / "latest_G.pth"), expected_scale=4)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "latest_G.pth: its file, folders and contents name no scale: its scale could not be checked" in warning
    assert meta["scale"] == 4
    with pytest.raises(KULNetError, match=r"checkpoint is x2 \(its file name\) but x4 was expected"):
        load_network(net, str(tmp_path / "models_2x" / "latest_G.pth"), expected_scale=4)
