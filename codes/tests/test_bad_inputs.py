"""Bad input found by the audit of 2026-11-25 (second pass): each gives one line, before any work."""
import importlib.util
import os

import cv2
import numpy as np
import pytest
from _eval_helpers import CODES_DIR, smooth_image, write_tiny_checkpoint, write_yaml

from evaluation.protocol import build_hr_sets, check_hr_sets, load_hr
from options.inference_options import MIN_TILE, validate_real_options, validate_test_options
from options.options import read_yaml
from scripts.make_testset import main as make_testset_main
from utils.errors import KULNetError


def _script(name):
    """codes/<name>.py as a module (test.py cannot be imported as ``test``: the stdlib owns it)."""
    spec = importlib.util.spec_from_file_location(f"kulnet_script_{name}", os.path.join(CODES_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def setup(tmp_path):
    ckpt = tmp_path / "w.pth"
    net = write_tiny_checkpoint(ckpt)
    hr = tmp_path / "hr"
    hr.mkdir()
    cv2.imwrite(str(hr / "a.png"), smooth_image(32, 36, seed=1))
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("not a folder")
    common = {"checkpoint": str(ckpt), "network_G": net, "device": "cpu"}
    opt = write_yaml(tmp_path / "t.yml", {**common, "kernels": [[2.0, 0.5, 0]],
                                          "datasets": [{"name": "A", "dataroot_HR": str(hr)}]})
    real_opt = write_yaml(tmp_path / "r.yml", common)
    return tmp_path, (opt, real_opt), str(hr), str(blocker)


def _one_line(err, *parts):
    text = str(err.value)
    assert "\n" not in text and all(p in text for p in parts), text


def test_an_output_path_that_is_a_file_fails_at_the_start(setup, monkeypatch):
    tmp_path, (opt, real_opt), hr, blocker = setup
    test_script, real_script = _script("test"), _script("test_real")
    for module in (test_script, real_script):  # the model is never loaded
        monkeypatch.setattr(module, "load_model", lambda *a: pytest.fail("work started before --out was checked"))
    with pytest.raises(KULNetError) as err:
        test_script.main(["-opt", opt, "--out", blocker])
    _one_line(err, f"--out {blocker}: is a file, not a folder")
    with pytest.raises(KULNetError) as err:
        real_script.main(["-opt", real_opt, "--input", os.path.join(hr, "a.png"), "--out", blocker])
    _one_line(err, "is a file, not a folder")
    with pytest.raises(KULNetError) as err:
        real_script.main(["-opt", real_opt, "--input", hr, "--out", os.path.join(blocker, "sub")])
    _one_line(err, "cannot create the folder")
    with pytest.raises(KULNetError) as err:
        make_testset_main(["--hr", hr, "--scale", "4", "--out", blocker, "--sig1", "2"])
    _one_line(err, "is a file, not a folder")


def test_make_testset_refuses_nan_kernels_and_noise(setup):
    tmp_path, _, hr, _ = setup
    kernels = np.full((1, 5, 5), 0.04, dtype=np.float32)
    kernels[0, 2, 2] = np.nan
    np.save(tmp_path / "k.npy", kernels)
    with pytest.raises(KULNetError) as err:
        make_testset_main(["--hr", hr, "--scale", "4", "--out", str(tmp_path / "o"),
                           "--kernels", str(tmp_path / "k.npy")])
    _one_line(err, "kernel 0 has NaN/inf")
    for noise in ("nan", "inf", "-1"):
        with pytest.raises(KULNetError) as err:
            make_testset_main(["--hr", hr, "--scale", "4", "--out", str(tmp_path / "o"), "--noise", noise])
        _one_line(err, f"--noise {float(noise)}: must be a number >= 0")
    assert not (tmp_path / "o").exists()


def test_non_finite_option_values_and_non_utf8_option_files(tmp_path):
    with pytest.raises(KULNetError) as err:
        validate_test_options({"noise": [0, float("nan")]})
    _one_line(err, "noise", "is not a finite number")
    with pytest.raises(KULNetError) as err:
        validate_test_options({"tile_overlap": float("inf")})
    _one_line(err, "tile_overlap = inf", "not an integer")
    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes("# caf\u00e9\nnoise: [0]\n".encode("latin-1"))
    with pytest.raises(KULNetError) as err:
        read_yaml(str(latin1))
    _one_line(err, "not a UTF-8 text file (byte 0xe9 at offset 5)")


def test_tiles_below_the_minimum_are_refused():
    for validate in (validate_test_options, validate_real_options):
        with pytest.raises(KULNetError) as err:
            validate({"tile": MIN_TILE - 1})
        _one_line(err, f"tile = {MIN_TILE - 1} LR pixels is too small", f"tile >= {MIN_TILE}")
        assert validate({"tile": MIN_TILE})["tile"] == MIN_TILE and validate({"tile": 0})["tile"] == 0


def test_every_hr_image_is_read_before_the_grid(tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), smooth_image(32, 32))
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    sets = build_hr_sets([{"name": "S", "dataroot_HR": str(folder), "max_images": None}])
    with pytest.raises(KULNetError) as err:
        check_hr_sets(sets, 4, 4)
    _one_line(err, "b.png")
    (folder / "b.png").unlink()
    cv2.imwrite(str(folder / "c.png"), smooth_image(3, 40))  # 3 rows: nothing left at x4
    sets = build_hr_sets([{"name": "S", "dataroot_HR": str(folder), "max_images": None}])
    with pytest.raises(KULNetError) as err:
        check_hr_sets(sets, 4, 4)
    _one_line(err, "S/c: smaller than the scale 4", "leave this image out")
    check_hr_sets(sets[:0], 4, 4)  # nothing to check


def test_a_16_bit_hr_is_degraded_from_its_8_bit_rounding():
    """The protocol scores 8-bit images; the HR that is degraded is the one scored (make_testset too)."""
    img16 = np.linspace(0, 1, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)  # off the 8-bit grid
    hr = load_hr(lambda: img16, 4)
    np.testing.assert_array_equal(hr, np.round(img16 * 255).astype(np.float32) / 255)
    img8 = (np.arange(8 * 8 * 3) % 256).astype(np.float32).reshape(8, 8, 3) / 255
    assert np.array_equal(load_hr(lambda: img8, 4), img8)  # 8-bit images: unchanged, bit for bit
    # the evaluator keeps each HR as uint8 levels between the cells of the grid: exact both ways
    levels = np.round(hr * np.float32(255)).astype(np.uint8)
    assert np.array_equal(levels.astype(np.float32) / np.float32(255), hr)
