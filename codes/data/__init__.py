"""Datasets and data loaders.

``create_dataset(dataset_opt)`` picks the dataset class from ``dataset_opt['mode']`` through the plain
dict :data:`DATASETS`; ``create_dataloader`` wraps it for training or testing.

Keys of ``dataset_opt`` (YAML ``datasets: <phase>:`` block; paths relative to the repository root):
    mode: 'HR' | 'LR' | 'paired'
    phase: 'train' (HR: random crops) or anything else ('val', 'test', ...: full images)
    scale: int (copied in by the option parser)
    dataroot_GT: HR folder (modes HR, paired): image files, or a prepared LMDB folder (mode HR)
    data_type: mode HR: 'img' | 'lmdb' | None (None: 'lmdb' for a prepared folder, see
        utils.lmdb_layout.detect_data_type)
    dataroot_LQ: LR folder or file (modes LR, paired)
    dataroot_kernel: optional kernels for 'paired' (.npy/.mat folder or file)
    GT_size, use_flip, use_rot: training crops and augmentation (mode HR)
    uint8_crops: mode HR, training: 8-bit crops as uint8 tensors (see HRDataset)
    add_border: mode LR, default True (the authors' blurred border of real photos)
    n_workers, batch_size, drop_last (default True), pin_memory (default: when CUDA is available)
"""
import os

import torch
from torch.utils.data import DataLoader

from utils.errors import KULNetError
from utils.image_io import list_images
from utils.lmdb_layout import detect_data_type

from .hr_dataset import HRDataset
from .lmdb_dataset import LMDBHRDataset
from .lr_dataset import LRDataset, add_real_border
from .paired_dataset import PairedDataset


def _require(opt, key):
    if opt.get(key) in (None, ""):
        name = opt.get("name", opt.get("phase", "dataset"))
        raise KULNetError(f"datasets.{name}.{key}: missing; set it in the options file")
    return opt[key]


def _hr(opt):
    phase = "train" if opt.get("phase") == "train" else "test"
    root = _require(opt, "dataroot_GT")
    if not os.path.isdir(root):  # the folder reader's message
        list_images(root)
    cls = LMDBHRDataset if detect_data_type(root, opt.get("data_type")) == "lmdb" else HRDataset
    dataset = cls(root, _require(opt, "scale"), phase=phase, gt_size=opt.get("GT_size"),
                  use_flip=opt.get("use_flip", True), use_rot=opt.get("use_rot", True),
                  uint8_crops=opt.get("uint8_crops", False))
    dataset.texture_tries = opt.get("texture_tries", 1)
    return dataset


def _lr(opt):
    return LRDataset(_require(opt, "dataroot_LQ"), _require(opt, "scale"), add_border=opt.get("add_border", True))


def _paired(opt):
    return PairedDataset(_require(opt, "dataroot_GT"), _require(opt, "dataroot_LQ"), _require(opt, "scale"),
                         kernel_folder=opt.get("dataroot_kernel"))


DATASETS = {"HR": _hr, "LR": _lr, "paired": _paired}


def create_dataset(dataset_opt):
    """Build the dataset named by ``dataset_opt['mode']`` (see the module docstring for the keys)."""
    mode = dataset_opt.get("mode")
    if mode not in DATASETS:
        name = dataset_opt.get("name", dataset_opt.get("phase", "dataset"))
        raise KULNetError(f"datasets.{name}.mode={mode!r}: unknown dataset mode; use one of {', '.join(DATASETS)}")
    return DATASETS[mode](dataset_opt)


def create_dataloader(dataset, dataset_opt, phase, sampler=None):
    """Wrap a dataset in a DataLoader.

    Args:
        dataset (Dataset): from :func:`create_dataset`.
        dataset_opt (dict): uses n_workers, batch_size, drop_last, pin_memory (train only).
        phase (str): 'train' (shuffled unless ``sampler``, batches, workers) or other (batch 1, in order).
        sampler (Sampler | None): e.g. a DistributedSampler; disables shuffling.
    """
    pin = dataset_opt.get("pin_memory", torch.cuda.is_available())
    if phase == "train":
        workers = int(dataset_opt.get("n_workers", 0))
        return DataLoader(dataset, batch_size=int(_require(dataset_opt, "batch_size")), shuffle=sampler is None,
                          sampler=sampler, num_workers=workers, drop_last=dataset_opt.get("drop_last", True),
                          pin_memory=pin, persistent_workers=workers > 0)
    return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0, pin_memory=pin)


__all__ = ["DATASETS", "HRDataset", "LMDBHRDataset", "LRDataset", "PairedDataset", "add_real_border",
           "create_dataloader", "create_dataset"]
