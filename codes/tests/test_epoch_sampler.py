"""data.epoch_sampler: the continuous sampler gives the batches of the epoch-by-epoch one."""
import itertools

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from data.epoch_sampler import ContinuousEpochSampler, EpochSampler, SeededDataset


def _per_epoch(n, batch, seed, rank, world, epoch, start_batch, epochs):
    """The old way: one sampler pass per epoch, the incomplete last batch dropped."""
    out = []
    sampler = EpochSampler(n, batch, seed, True, rank, world)
    for e in range(epoch, epoch + epochs):
        sampler.set_epoch(e, start_batch if e == epoch else 0)
        items = list(sampler)
        out += items[: len(items) // batch * batch]
    return out


@pytest.mark.parametrize("n, batch, world", [(10, 3, 1), (11, 2, 2), (6, 6, 1)])
def test_continuous_stream_equals_the_epochs_one_after_another(n, batch, world):
    for rank in range(world):
        expected = _per_epoch(n, batch, 7, rank, world, epoch=2, start_batch=1, epochs=4)
        sampler = ContinuousEpochSampler(n, batch, 7, True, rank, world)
        sampler.set_epoch(2, 1)
        got = list(itertools.islice(iter(sampler), len(expected)))
        assert got == expected
        assert len(got) % batch == 0 and sampler.batches_per_epoch() == -(-n // world) // batch
    with pytest.raises(TypeError, match="no length"):
        len(sampler)


class _Draw(Dataset):
    def __len__(self):
        return 9

    def __getitem__(self, index):
        return torch.tensor([float(index), torch.rand(()).item()])  # seeded per item by SeededDataset


def test_batches_through_workers_match_the_epoch_by_epoch_loader():
    ds = SeededDataset(_Draw())
    old_sampler = EpochSampler(9, 2, seed=3)
    old = DataLoader(ds, batch_size=2, sampler=old_sampler, drop_last=True, num_workers=0)
    expected = []
    for epoch in range(3):
        old_sampler.set_epoch(epoch)
        expected += list(old)
    sampler = ContinuousEpochSampler(9, 2, seed=3)
    sampler.set_epoch(0)
    loader = DataLoader(ds, batch_size=2, sampler=sampler, drop_last=True, num_workers=2,
                        persistent_workers=True, generator=torch.Generator())
    got = list(itertools.islice(iter(loader), len(expected)))
    assert len(got) == 12 and all(torch.equal(a, b) for a, b in zip(got, expected))
