"""Choosing the device: CUDA when present, overridable, checked with a one-line error; the CPU cores
this process may use."""
import contextlib
import os

import torch

from utils.errors import KULNetError


def resolve_device(name="auto", local_rank=0):
    """The ``torch.device`` for a device option.

    Args:
        name (str): ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        local_rank (int): the GPU used for ``auto``/``cuda`` (the process's rank under torchrun).

    Raises:
        KULNetError: CUDA asked for but absent, or a GPU index the machine does not have.
    """
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise KULNetError(f"device = {name!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise KULNetError(f"device = {name!r}: CUDA is not available here; use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise KULNetError(f"device = {name!r}: this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})")
    elif device.type != "cpu":
        raise KULNetError(f"device = {name!r}: use auto, cpu, cuda or cuda:N")
    return device


def usable_cores():
    """The CPU cores this process may run on: its affinity where the system says it (a container or
    ``taskset`` may allow fewer than the machine has), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def cudnn_autotuning(enabled):
    """Set ``torch.backends.cudnn.benchmark`` for a block and restore it after. Inference on images of
    many sizes wants it off (one autotuning per new size), as test.py and test_real.py run."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
