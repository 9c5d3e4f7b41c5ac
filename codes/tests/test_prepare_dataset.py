"""scripts/prepare_dataset.py: folder -> prepared LMDB, equal values, safe and resumable writing."""
import os
import pickle
import shutil
from collections import namedtuple

import cv2
import numpy as np
import pytest
import torch
from _eval_helpers import run_script
from _lmdb_helpers import write_kinds

from data import HRDataset, LMDBHRDataset
from scripts import prepare_dataset
from utils.errors import KULNetError
from utils.lmdb_layout import is_prepared, read_meta_info


def _prepare(hr, out, *extra):
    return prepare_dataset.prepare(prepare_dataset.parse_args(["--hr", str(hr), "--out", str(out), "--workers", "1",
                                                               *map(str, extra)]))


@pytest.fixture
def kinds(tmp_path):
    return write_kinds(tmp_path / "hr", sixteen_bit=True)


def test_prepared_values_equal_the_folder_reader_for_every_kind_of_file(kinds, tmp_path, capsys):
    """8-bit RGB, gray, RGBA and 16-bit files: the LMDB holds what the folder reader returns (in
    BGR), so full images and seeded training crops are identical; meta_info says what is stored."""
    out = tmp_path / "hr.lmdb"
    summary = _prepare(kinds, out)
    printed = capsys.readouterr().out
    assert "4 images in" in printed and "expected size of the prepared data" in printed
    assert "starting clean" in printed and "rule --on_error stop: no file failed" in printed
    assert sorted(os.listdir(out)) == ["data.mdb", "meta_info.pkl"] and not os.path.exists(f"{out}.partial")
    meta = pickle.load(open(out / "meta_info.pkl", "rb"))
    assert meta["keys"] == ["a_rgb", "b_gray", "c_rgba", "d_rgb16"] and meta["name"] == "hr.lmdb"
    assert meta["resolution"] == ["3_64_80", "3_66_64", "3_64_70", "3_70_64"]
    assert meta["dtype"] == ["uint8", "uint8", "uint8", "uint16"]
    assert summary["images"] == 4 and summary["lmdb_bytes"] <= summary["expected_bytes"]
    for phase, gt in (("test", None), ("train", 32)):
        folder, prepared = HRDataset(kinds, 4, phase, gt), LMDBHRDataset(str(out), 4, phase, gt)
        for i in range(4):
            for seed in range(3):
                torch.manual_seed(seed)
                a = folder[i]["hr"]
                torch.manual_seed(seed)
                assert torch.equal(a, prepared[i]["hr"]), (phase, i, seed)


def test_the_command_line_with_parallel_decoding(kinds, tmp_path):
    out = tmp_path / "par.lmdb"
    proc = run_script("scripts/prepare_dataset.py", "--hr", kinds, "--out", out, "--workers", 2, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4/4" in proc.stderr and "prepared 4 images" in proc.stdout  # the progress bar and the summary
    ref = tmp_path / "one.lmdb"
    _prepare(kinds, ref)
    par_meta, one_meta = read_meta_info(str(out)), read_meta_info(str(ref))
    assert (par_meta.keys, par_meta.shapes, par_meta.dtypes) == (one_meta.keys, one_meta.shapes, one_meta.dtypes)
    par, one = LMDBHRDataset(str(out), 4, "test"), LMDBHRDataset(str(ref), 4, "test")
    assert all(torch.equal(par[i]["hr"], one[i]["hr"]) for i in range(4))
    again = run_script("scripts/prepare_dataset.py", "--hr", kinds, "--out", out)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1].startswith(
        f"error: {out}: already prepared; use it, or pass --overwrite")


def test_overwrite_replaces_a_finished_output_only_when_asked(kinds, tmp_path):
    out = tmp_path / "hr.lmdb"
    _prepare(kinds, out)
    with pytest.raises(KULNetError, match="already prepared"):
        _prepare(kinds, out)
    os.remove(os.path.join(kinds, "d_rgb16.png"))
    _prepare(kinds, out, "--overwrite")
    assert read_meta_info(str(out)).keys == ["a_rgb", "b_gray", "c_rgba"]
    other = tmp_path / "not_prepared"
    other.mkdir()
    with pytest.raises(KULNetError, match="exists and is not a prepared dataset"):
        _prepare(kinds, other, "--overwrite")


def test_an_unreadable_file_stops_then_the_run_continues_once_it_is_fixed(kinds, tmp_path, capsys):
    bad = os.path.join(kinds, "e_bad.png")
    open(bad, "wb").write(b"not a png at all")
    out = tmp_path / "hr.lmdb"
    with pytest.raises(KULNetError, match=r"e_bad.png: .*stopped by --on_error stop.*run the same command again"):
        _prepare(kinds, out)
    assert not os.path.exists(out) and not is_prepared(f"{out}.partial")  # nothing looks finished
    os.remove(bad)
    capsys.readouterr()
    summary = _prepare(kinds, out)
    assert "continuing 4 of 4" in capsys.readouterr().out and summary["continued"] == 4
    assert is_prepared(str(out)) and len(read_meta_info(str(out)).keys) == 4


def test_skip_rule_lists_the_files_left_out(kinds, tmp_path, capsys):
    open(os.path.join(kinds, "e_bad.png"), "wb").write(b"")
    summary = _prepare(kinds, tmp_path / "hr.lmdb", "--on_error", "skip")
    printed = capsys.readouterr()
    assert "rule --on_error skip: 1 file(s) left out" in printed.out and "e_bad.png: empty file" in printed.out
    assert "skipped: " in printed.err and summary["images"] == 4
    assert read_meta_info(str(tmp_path / "hr.lmdb")).keys == ["a_rgb", "b_gray", "c_rgba", "d_rgb16"]


def test_a_partial_output_of_changed_files_is_redone(kinds, tmp_path, capsys):
    """Kept: the images whose file is unchanged; written again: the others; nothing usable: clean."""
    out = tmp_path / "hr.lmdb"
    open(os.path.join(kinds, "e_bad.png"), "wb").write(b"x")
    with pytest.raises(KULNetError):
        _prepare(kinds, out)
    os.remove(os.path.join(kinds, "e_bad.png"))
    changed = np.full((64, 80, 3), 7, np.uint8)
    cv2.imwrite(os.path.join(kinds, "a_rgb.png"), changed)
    capsys.readouterr()
    _prepare(kinds, out)
    assert "continuing 3 of 4" in capsys.readouterr().out
    assert torch.equal(LMDBHRDataset(str(out), 4, "test")[0]["hr"], torch.full((3, 64, 80), 7 / 255))

    fresh = tmp_path / "other.lmdb"
    shutil.copytree(out, f"{fresh}.partial")  # a partial whose keys have no record of their sources
    os.remove(f"{fresh}.partial/meta_info.pkl")
    capsys.readouterr()
    _prepare(kinds, fresh)
    assert "starting clean (nothing usable in the unfinished one)" in capsys.readouterr().out


def test_too_little_disk_space_is_refused_before_writing(kinds, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "hr.lmdb"
    with pytest.raises(KULNetError, match=r"0.0 MB free on this disk, the prepared data needs about \d\.\d MB; "
                                          r"free some space or choose --out on another disk"):
        _prepare(kinds, out)
    assert not os.path.exists(out) and not os.path.exists(f"{out}.partial")


def test_images_smaller_than_the_crop_are_reported_as_training_reports_them(kinds, tmp_path, capsys):
    cv2.imwrite(os.path.join(kinds, "f_big.png"), np.zeros((72, 72, 3), np.uint8))
    message = r"a_rgb.png: image is 64x80, smaller than the training crop GT_size=66; remove it or lower GT_size"
    with pytest.raises(KULNetError, match=message):
        _prepare(kinds, tmp_path / "a.lmdb", "--gt_size", 66)
    with pytest.raises(KULNetError, match=message):
        HRDataset(kinds, 4, "train", 66)  # the same words from training
    summary = _prepare(kinds, tmp_path / "b.lmdb", "--gt_size", 66, "--on_error", "skip")
    assert summary["images"] == 1 and "b_gray.png: image is 66x64" in capsys.readouterr().out
    assert read_meta_info(str(tmp_path / "b.lmdb")).keys == ["f_big"]


def test_stems_must_be_distinct(kinds, tmp_path):
    shutil.copy(os.path.join(kinds, "a_rgb.png"), os.path.join(kinds, "a_rgb.bmp"))
    with pytest.raises(KULNetError, match="same name as .*a_rgb.* without the extension"):
        _prepare(kinds, tmp_path / "hr.lmdb")


def test_an_interrupted_run_keeps_what_it_wrote_and_the_next_run_continues(kinds, tmp_path, monkeypatch, capsys):
    real, calls = prepare_dataset.decode, []

    def interrupted_third(path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(prepare_dataset, "decode", interrupted_third)
    out = tmp_path / "hr.lmdb"
    argv = ["--hr", kinds, "--out", str(out), "--workers", "1"]
    assert prepare_dataset.main(argv) == 130
    assert "interrupted: run the same command again to continue" in capsys.readouterr().err
    assert not os.path.exists(out) and not is_prepared(f"{out}.partial")
    monkeypatch.setattr(prepare_dataset, "decode", real)
    assert prepare_dataset.main(argv) == 0
    assert "continuing 2 of 4" in capsys.readouterr().out and len(read_meta_info(str(out)).keys) == 4
