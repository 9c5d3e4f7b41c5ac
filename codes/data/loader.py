"""The training data loader, built one way for ``train.py`` and ``benchmarks/bench_loader.py``.

Batches hold the HR crops only (the LR is synthesised on the device). For a CUDA device, 8-bit crops
travel as uint8 (4x fewer bytes through the workers' shared memory, pinning and the host-to-device
copy) and become float on the device in :func:`hr_to_device`, with the values of the float path.
"""
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils.collate import default_collate

from utils.device import usable_cores
from utils.errors import KULNetError
from utils.stop_request import ignore_stop_signals, stop_workers_at_exit

from . import create_dataset
from .epoch_sampler import ContinuousEpochSampler, SeededDataset

# batches each worker reads ahead of uint8 crops: evens out slow reads (cold pages, a busy disk);
# 4x smaller than float batches, so this takes half the shared memory of the default 2 float batches
# (a container's /dev/shm is often small)
PREFETCH_UINT8 = 4


class RepeatedDataset(Dataset):
    """Each item of ``dataset`` ``times`` times in a row of indices: a few images fill whole batches."""

    def __init__(self, dataset, times):
        self.dataset, self.times = dataset, int(times)

    def __len__(self):
        return len(self.dataset) * self.times

    def __getitem__(self, index):
        return self.dataset[index % len(self.dataset)]


def loader_workers(requested, world=1, cores=None):
    """The loader workers of each process: ``datasets.train.n_workers`` split over the ``world``
    processes, and never more than the CPU cores each process has (more workers than cores only
    take turns with the training step on the same cores).

    Args:
        requested (int): ``datasets.train.n_workers`` (in total).
        world (int): processes (DDP ranks).
        cores (int | None): usable CPU cores (None: :func:`utils.device.usable_cores`).

    Returns:
        tuple: (workers per process, a line saying why they were cut, or None when they were not).
    """
    per_rank = requested // world if world > 1 else requested
    cores = usable_cores() if cores is None else cores
    limit = max(1, cores // world)
    if per_rank <= limit:
        return per_rank, None
    each = "" if world == 1 else f" for each of the {world} processes"
    return limit, (f"datasets.train.n_workers = {requested}: more loader workers than the {cores} CPU core(s) "
                   f"this process may use; {limit} worker(s){each}")


def build_train_loader(opt, rank, world, device, uint8_crops=None, repeat=1):
    """The training DataLoader and its sampler, from the parsed training options.

    Args:
        opt (dict): training options (``datasets.train``, ``scale``, ``train.manual_seed``).
        rank (int), world (int): DDP placement; each rank gets ``batch_size / world`` items and
            :func:`loader_workers` workers.
        device (torch.device): the training device (pinned memory on CUDA).
        uint8_crops (bool | None): 8-bit crops as uint8 tensors (see :func:`hr_to_device`); None: on
            CUDA only. On the CPU the float conversion would run in the training process, on the
            cores the step needs, instead of in the workers (codes/benchmarks/README.md).
        repeat (int): each image this many times per epoch (1 in training; benchmarks on fewer
            images than a batch).

    Returns:
        tuple: ``(loader, sampler)``; the loader yields ``{'hr': (B, 3, G, G), 'path': [B str]}``
        without end (:class:`ContinuousEpochSampler`; call ``sampler.set_epoch`` first).

    Raises:
        KULNetError: a batch not divisible by the ranks, fewer images than one batch, or what
            :func:`data.create_dataset` reports.
    """
    train_opt = opt["datasets"]["train"]
    batch = train_opt["batch_size"]
    if batch % world:
        raise KULNetError(f"datasets.train.batch_size = {batch} is not divisible by the {world} "
                          f"processes; use a multiple of {world}")
    if uint8_crops is None:
        uint8_crops = device.type == "cuda"
    dataset = create_dataset({**train_opt, "phase": "train", "scale": opt["scale"], "uint8_crops": uint8_crops})
    if repeat > 1:
        dataset = RepeatedDataset(dataset, repeat)
    per_rank = batch // world
    sampler = ContinuousEpochSampler(len(dataset), per_rank, opt["train"]["manual_seed"],
                                     train_opt["use_shuffle"], rank, world)
    if sampler.batches_per_epoch() == 0:
        raise KULNetError(f"datasets.train.dataroot_GT: {len(dataset)} images are fewer than one "
                          f"batch of {batch}; add images or lower datasets.train.batch_size")
    workers, _ = loader_workers(train_opt["n_workers"], world)
    if workers > 0:
        stop_workers_at_exit()  # they ignore SIGTERM: without this an error could leave the process hanging
    loader = DataLoader(
        SeededDataset(dataset), batch_size=per_rank, sampler=sampler, drop_last=True, collate_fn=collate_hr,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=(PREFETCH_UINT8 if uint8_crops else 2) if workers > 0 else None,
        worker_init_fn=ignore_stop_signals if workers > 0 else None,
        # its own generator: creating an iterator must not consume the training RNG (exact resume)
        generator=torch.Generator())
    return loader, sampler


def collate_hr(items):
    """Stack training items; a batch mixing uint8 crops with float ones (16-bit files) is all float."""
    crops = [item["hr"] for item in items]
    if len({crop.dtype for crop in crops}) > 1:
        crops = [crop.float().div_(255.0) if crop.dtype == torch.uint8 else crop for crop in crops]
    return {"hr": default_collate(crops), "path": [item["path"] for item in items]}


def hr_to_device(hr, device):
    """An HR batch on ``device`` as float32 in [0, 1].

    Args:
        hr (Tensor): (B, 3, H, W) float32 in [0, 1], or uint8 in [0, 255] (copied as uint8, then
            converted on the device: the copy is 4x smaller).
        device (torch.device): where it goes.

    Returns:
        Tensor: (B, 3, H, W) float32 in [0, 1], bit-identical to converting the 8-bit values with
        :func:`utils.image_io.raw_to_float`.
    """
    hr = hr.to(device, non_blocking=True)
    if hr.dtype != torch.uint8:
        return hr
    # a divisor tensor on the device, not a Python number: CUDA turns division by a host scalar into
    # multiplication by its reciprocal, which differs from x / 255 in the last bit for some levels
    return hr.float().div_(torch.full((), 255.0, device=device))
