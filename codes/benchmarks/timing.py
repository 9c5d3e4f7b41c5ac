"""Wall-clock timing shared by the benchmark scripts (prints figures; nothing here asserts)."""
import statistics
import time

import torch


def time_call(fn, device, repeats, warmup, after_warmup=None):
    """Run ``fn`` ``warmup`` + ``repeats`` times and time the repeats.

    On CUDA the device is synchronised around each call, so the figure is the GPU time too.

    Args:
        fn (callable): the work, no arguments. device (torch.device): where it runs.
        repeats (int): timed calls. warmup (int): untimed calls first.
        after_warmup (callable | None): called once between the warm-up and the timed calls (after
            the device is synchronised), e.g. to reset peak-memory statistics.

    Returns:
        dict: ``ms`` (median wall ms per call), ``min_ms``, ``repeats``, ``warmup``, ``warmup_s``
        (wall seconds of the warm-up: the compilation with torch.compile), and on the CPU
        ``cpu_ms`` (median process CPU ms per call, which stays meaningful on a busy machine).
    """
    cuda = device.type == "cuda"
    t_warm = time.perf_counter()
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    warmup_s = time.perf_counter() - t_warm
    if after_warmup is not None:
        after_warmup()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    out = {"ms": round(statistics.median(wall), 3), "min_ms": round(min(wall), 3),
           "repeats": repeats, "warmup": warmup, "warmup_s": round(warmup_s, 2)}
    if not cuda:
        out["cpu_ms"] = round(statistics.median(cpu), 3)
    return out
