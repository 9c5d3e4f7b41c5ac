"""Nothing lost: no tool writes over a file it did not make unless asked, never over its own input, never
moves another run's work, and run names stay inside their folder."""
import importlib.util
import os
import socket

import cv2
import pytest
from _eval_helpers import CODES_DIR, run_script, smooth_image, write_tiny_checkpoint
from _lmdb_helpers import write_photos

from options.inference_options import validate_real_options, validate_test_options
from options.options import parse
from scripts import export_authors, kernel_response, prepare_dataset
from utils.errors import KULNetError
from utils.output_lock import claim_output


def _one_line(err, *parts):
    text = str(err.value)
    assert "\n" not in text and all(p in text for p in parts), text


@pytest.fixture
def shipped_like(tmp_path):
    """One of our checkpoints at x4 (metadata and all), as a user keeps a shipped model."""
    path = tmp_path / "x4" / "KULNet_x4.pth"
    path.parent.mkdir()
    net = write_tiny_checkpoint(path)
    return path, net


def test_export_authors_never_writes_over_its_input_or_an_existing_file(shipped_like, tmp_path):
    path, _ = shipped_like
    before = path.read_bytes()
    res = run_script("scripts/export_authors.py", path, path, "--overwrite")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "is the checkpoint read" in res.stderr and path.read_bytes() == before
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG a photo")
    with pytest.raises(KULNetError) as err:
        export_authors.main([str(path), str(photo)])
    _one_line(err, f"{photo}: exists", "--overwrite")
    assert photo.read_bytes() == b"\x89PNG a photo"
    with pytest.raises(KULNetError) as err:
        export_authors.main([str(path), str(tmp_path)])  # a folder
    _one_line(err, "is a folder")


def test_kernel_response_json_is_checked_before_the_work(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_response, "load_model", lambda *a: pytest.fail("work started before --json was checked"))
    existing = tmp_path / "figures.json"
    existing.write_text("{}")
    for target, part in ((tmp_path, "is a folder"), (existing, "exists")):
        with pytest.raises(KULNetError) as err:
            kernel_response.main(["--checkpoint", "x.pth", "--scale", "4", "--datasets", f"S={tmp_path}",
                                  "--json", str(target)])
        _one_line(err, f"--json {target}", part)
    assert existing.read_text() == "{}"


def test_a_second_preparation_of_the_same_output_is_refused(tmp_path):
    out = str(tmp_path / "HR.lmdb")
    with claim_output(out, "--out"):  # a first run holds the output
        with pytest.raises(KULNetError) as err:
            prepare_dataset.prepare(prepare_dataset.parse_args(["--hr", write_photos(tmp_path / "hr", 2, 32),
                                                                "--out", out, "--workers", "1"]))
        _one_line(err, f"--out {out}: another run (pid {os.getpid()} on {socket.gethostname()}", "is writing it")
        assert not os.path.exists(out) and not os.path.exists(out + ".partial")
    assert not os.path.exists(out + ".lock")  # released
    (tmp_path / "HR.lmdb.lock").write_text(f"999999999 {socket.gethostname()} 0\n")  # its holder died
    prepare_dataset.prepare(prepare_dataset.parse_args(["--hr", str(tmp_path / "hr"), "--out", out, "--workers", "1"]))
    assert os.path.isdir(out) and not os.path.exists(out + ".lock")


def test_a_finished_output_that_appears_meanwhile_is_not_moved(tmp_path):
    out = str(tmp_path / "o")
    os.makedirs(out + ".partial")
    os.makedirs(out)
    (tmp_path / "o" / "data.mdb").write_text("the first run's work")
    with pytest.raises(KULNetError) as err:
        prepare_dataset._publish(out + ".partial", out, overwrite=False)
    _one_line(err, f"{out}: made by another run meanwhile")
    assert (tmp_path / "o" / "data.mdb").read_text() == "the first run's work"


def test_an_unwritable_out_of_prepare_dataset_is_one_line(tmp_path):
    hr = write_photos(tmp_path / "hr", 2, 32)
    res = run_script("scripts/prepare_dataset.py", "--hr", hr, "--out", "/proc/self/HR.lmdb", "--workers", "1")
    assert res.returncode == 2 and res.stderr.startswith("error: --out /proc/self") and \
        res.stderr.count("\n") == 1, res.stderr


@pytest.mark.parametrize("name", ["../outside", "/abs/run", "a/b", "..", "a\\b", ""])
def test_run_names_stay_inside_their_folder(tmp_path, name):
    (tmp_path / "hr").mkdir()
    opt = tmp_path / "o.yml"
    opt.write_text(f"name: 'x'\nscale: 4\ndatasets:\n  train: {{dataroot_GT: {tmp_path / 'hr'}}}\n")
    with pytest.raises(KULNetError) as err:
        parse(str(opt), [f"name='{name}'"], check_paths=False)
    _one_line(err, "name", "a folder name")
    for validate in (validate_test_options, validate_real_options):
        with pytest.raises(KULNetError) as err:
            validate({"name": name})
        _one_line(err, "name", "a folder name")


def test_test_py_name_with_a_slash_is_one_line(tmp_path):
    opt = tmp_path / "t.yml"
    opt.write_text("name: a/b\ndatasets: [{name: S, skimage: [camera]}]\n")
    res = run_script("test.py", "-opt", opt, "--out", tmp_path / "o")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "name = 'a/b'" in res.stderr, res.stderr


def test_test_real_never_writes_over_an_input(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), smooth_image(24, 24))
    cv2.imwrite(str(folder / "a_SR.png"), smooth_image(24, 24, seed=3))
    before = (folder / "a_SR.png").read_bytes()
    ckpt = tmp_path / "w.pth"
    net = write_tiny_checkpoint(ckpt)
    spec = importlib.util.spec_from_file_location("kulnet_test_real", os.path.join(CODES_DIR, "test_real.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    opt = tmp_path / "r.yml"
    opt.write_text(f"network_G: {net}\n".replace("'", ""))
    with pytest.raises(KULNetError) as err:
        module.main(["-opt", str(opt), "--input", str(folder), "--out", str(folder), "--checkpoint", str(ckpt),
                     "--device", "cpu"])
    _one_line(err, "a_SR.png", "is an input")
    assert (folder / "a_SR.png").read_bytes() == before
