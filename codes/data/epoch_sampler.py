"""A resumable, distributed training sampler whose every draw is a function of (seed, epoch, position).

Why: a run resumed in the middle of an epoch must see the same batches, crops and flips as an
uninterrupted one, whatever the number of data-loader workers. The epoch's order is a permutation
seeded by ``(seed, epoch)``; consumed batches are skipped with ``start_batch``; and every item comes with
its own seed, from which :class:`SeededDataset` seeds the random crop and augmentation.

With ``world_size`` ranks (DDP) the permutation is shared and rank ``r`` takes positions
``r, r + world_size, ...`` (as ``DistributedSampler``), so global batch ``i`` of a run on N ranks
holds the same images, cropped the same way, as batch ``i`` of a single-process run with the same
global batch size.
"""
import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info


def _seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint32)[0])


class EpochSampler(Sampler):
    """Yields ``(index, item_seed)`` pairs for one epoch of one rank.

    Args:
        n (int): dataset length.
        batch_size (int): per-rank batch size (only used to skip whole batches).
        seed (int): base seed (``train.manual_seed``).
        shuffle (bool): permute every epoch; False keeps 0..n-1.
        rank (int), world_size (int): DDP placement.
    """

    def __init__(self, n, batch_size, seed=0, shuffle=True, rank=0, world_size=1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.rank, self.world_size = shuffle, rank, world_size
        self.per_rank = -(-n // world_size)  # padded by repeating the start, as DistributedSampler
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch, start_batch=0):
        """Select the epoch and skip its first ``start_batch`` batches (resume)."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def batches_per_epoch(self):
        """Full per-rank batches in an epoch (the last incomplete batch is dropped)."""
        return self.per_rank // self.batch_size

    def _order(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(_seed(self.seed, self.epoch, 7))
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        total = self.per_rank * self.world_size
        if total > self.n:
            order = torch.cat([order, order[: total - self.n]])
        return order

    def __iter__(self):
        order = self._order()
        positions = torch.arange(self.rank, order.numel(), self.world_size)
        positions = positions[self.start_batch * self.batch_size:]
        base = _seed(self.seed, self.epoch, 11)
        for pos in positions.tolist():
            yield int(order[pos]), _seed(base, pos)

    def __len__(self):
        return max(0, self.per_rank - self.start_batch * self.batch_size)


class ContinuousEpochSampler(EpochSampler):
    """:class:`EpochSampler` whose iterator runs on from epoch to epoch, without end.

    Each epoch yields its full batches only (what ``drop_last`` keeps of it), so batch ``i`` of the
    stream is batch ``i mod batches_per_epoch`` of epoch ``i div batches_per_epoch``: the same
    batches as iterating epoch by epoch. Why: a data loader restarted every epoch waits for its
    first batch to be read from scratch (with 257 training photos, every 16 iterations); one that
    never restarts keeps reading ahead across the boundary. Start with :meth:`set_epoch`.
    """

    def __iter__(self):
        epoch, start_batch = self.epoch, self.start_batch
        keep = self.batches_per_epoch() * self.batch_size
        while True:
            self.epoch, self.start_batch = epoch, start_batch
            order = self._order()
            positions = torch.arange(self.rank, order.numel(), self.world_size)[:keep]
            base = _seed(self.seed, epoch, 11)
            for pos in positions[start_batch * self.batch_size:].tolist():
                yield int(order[pos]), _seed(base, pos)
            epoch, start_batch = epoch + 1, 0

    def __len__(self):
        raise TypeError("ContinuousEpochSampler has no length: it runs until the caller stops")


def _seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    # CPU generator only: torch.manual_seed would also reset the CUDA generators, which
    # fork_rng(devices=[]) does not restore (the main process's stream when n_workers=0)
    torch.random.default_generator.manual_seed(seed)


class SeededDataset(Dataset):
    """Wraps a dataset so that item ``(index, seed)`` is drawn with python/numpy/torch seeded by
    ``seed``; the caller's random states are restored afterwards (no effect on the training RNG)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        if get_worker_info() is not None:
            # in a data-loader worker the generators serve only the items, each seeded here:
            # nothing to restore (saving numpy's state costs more than reading a prepared crop)
            _seed_all(seed)
            return self.dataset[index]
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                _seed_all(seed)
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
