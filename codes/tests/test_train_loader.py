"""The training data loader (data.loader): folder and LMDB give the same batches; uint8 transfer; train.py on LMDB."""
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from _lmdb_helpers import authors_lmdb, write_kinds, write_photos

from data.loader import build_train_loader, collate_hr, hr_to_device, loader_workers
from options.options import REPO_ROOT
from utils.image_io import raw_to_float

CPU = torch.device("cpu")


def _opt(root, workers, batch=2, gt=32):
    train = {"mode": "HR", "dataroot_GT": root, "data_type": None, "GT_size": gt, "batch_size": batch,
             "n_workers": workers, "use_shuffle": True, "use_flip": True, "use_rot": True}
    return {"scale": 4, "datasets": {"train": train}, "train": {"manual_seed": 5}}


def _batches(root, workers, n, uint8_crops=None, start_epoch=0, repeat=1):
    loader, sampler = build_train_loader(_opt(root, workers), 0, 1, CPU, uint8_crops=uint8_crops, repeat=repeat)
    sampler.set_epoch(start_epoch)
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            return loader, out


def _stems(batches):
    return [os.path.splitext(os.path.basename(p))[0] for batch in batches for p in batch["path"]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    folder = write_kinds(root / "hr")
    return folder, authors_lmdb(folder, root / "hr.lmdb")


def test_folder_and_lmdb_give_the_same_batches_through_the_training_loader(pair):
    """Same seed, same sampler: identical crops from the image files and from the LMDB, with the
    worker opening its own environment after the fork, and across epochs (3 images, batch 2)."""
    folder, prepared = pair
    _, ref = _batches(folder, 0, 3)
    for root, workers in ((prepared, 0), (prepared, 1), (folder, 1)):
        loader, got = _batches(root, workers, 3)
        assert loader.persistent_workers == (workers > 0) and not loader.pin_memory
        assert all(torch.equal(a["hr"], b["hr"]) for a, b in zip(ref, got)), (root, workers)
        assert _stems(got) == _stems(ref)
    assert ref[0]["hr"].dtype == torch.float32 and ref[0]["hr"].shape == (2, 3, 32, 32)


def test_uint8_batches_become_the_same_floats_on_the_device(pair):
    folder, prepared = pair
    _, ref = _batches(prepared, 0, 2, uint8_crops=False)
    loader, got = _batches(prepared, 1, 2, uint8_crops=True)
    assert loader.prefetch_factor > 2
    for a, b in zip(ref, got):
        assert b["hr"].dtype == torch.uint8
        assert torch.equal(hr_to_device(b["hr"], CPU), a["hr"])
        assert hr_to_device(a["hr"], CPU) is a["hr"]  # float batches pass through


def test_uint8_to_float_is_bit_identical_for_every_level():
    levels = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16).repeat(3, axis=1)
    got = hr_to_device(torch.from_numpy(levels), CPU)
    assert torch.equal(got, torch.from_numpy(raw_to_float(levels)))


def test_a_batch_mixing_8_and_16_bit_crops_is_float():
    u8 = torch.arange(12, dtype=torch.uint8).reshape(3, 2, 2)
    f = torch.rand(3, 2, 2)
    batch = collate_hr([{"hr": u8, "path": "a"}, {"hr": f, "path": "b"}])
    assert batch["hr"].dtype == torch.float32 and batch["path"] == ["a", "b"]
    assert torch.equal(batch["hr"][0], torch.from_numpy(raw_to_float(u8.numpy())))
    assert torch.equal(batch["hr"][1], f)


def test_repeat_fills_batches_from_fewer_images(pair):
    _, prepared = pair
    loader, got = _batches(prepared, 0, 2, repeat=2)
    assert len(loader.dataset) == 6 and len(got) == 2


def _run_train(opt_text, tmp_path, name):
    path = tmp_path / f"{name}.yml"
    path.write_text(opt_text)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "codes/train.py", "-opt", str(path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = open(glob.glob(str(tmp_path / "exp" / name / "train_*.log"))[0]).read()
    return re.findall(r"iter:\s*\d+, .*?(l_pix.*)$", log, re.M), log


def test_train_py_on_a_prepared_dataset_trains_as_on_the_folder(tmp_path):
    """Two iterations from the LMDB (one worker; validation on the same LMDB, opened in the main
    process before the worker forks) give the losses of the same two iterations from the folder."""
    folder = write_photos(str(tmp_path / "hr"), 4, 64)
    prepared = authors_lmdb(folder, tmp_path / "hr.lmdb")
    losses = {}
    for name, root in (("folder", folder), ("lmdb", prepared)):
        text = (f"name: {name}\nscale: 4\nkernel_size: 11\ndevice: cpu\n"
                f"datasets:\n  train: {{dataroot_GT: {root}, GT_size: 32, batch_size: 2, n_workers: 1}}\n"
                f"  val: {{dataroot_GT: {root}, max_images: 1}}\n"
                "network_G: {est_nf: 8, sr_nf: 8, n_stages: 2}\n"
                "train: {niter: 2, val_freq: 2}\n"
                "logger: {print_freq: 1, save_checkpoint_freq: 2, progress_bar: false, use_tb_logger: false}\n"
                f"path: {{experiments_root: {tmp_path / 'exp'}}}\n")
        losses[name], log = _run_train(text, tmp_path, name)
        assert "validation at iteration 2" in log and "1 loader worker(s)" in log
    assert len(losses["lmdb"]) == 2 and losses["lmdb"] == losses["folder"]


@pytest.mark.parametrize("requested, world, cores, expected", [
    (8, 1, 2, 2), (1, 1, 2, 1), (0, 1, 2, 0), (8, 2, 2, 1), (8, 2, 16, 4), (3, 1, 16, 3)])
def test_loader_workers_never_exceed_the_cores(requested, world, cores, expected):
    workers, note = loader_workers(requested, world, cores)
    assert workers == expected
    if requested // world > expected:
        assert note.startswith(f"datasets.train.n_workers = {requested}: more loader workers than the {cores} CPU")
        assert f"; {expected} worker(s)" in note
    else:
        assert note is None


def test_the_loader_uses_the_clipped_workers(tmp_path):
    from utils.device import usable_cores

    folder = write_photos(str(tmp_path / "hr"), 2, 48)
    loader, _ = build_train_loader(_opt(folder, usable_cores() + 3), 0, 1, CPU)
    assert loader.num_workers == usable_cores()
