"""CPU speed settings for inference and benchmarks (process-wide; nothing here changes numerics).

On Linux/glibc every large tensor (>= 32 MiB here, e.g. a 32-channel 512x512 feature map) is a fresh
``mmap`` that is returned to the OS when freed, so each new one pays page faults again, a sizeable
share of KULNet's CPU inference. :func:`keep_freed_memory` makes glibc keep such memory in the heap
for reuse. Peak RSS stays about the same (the process needs that peak anyway).
"""
import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def keep_freed_memory(top_pad_mib=64):
    """Ask glibc malloc to serve large blocks from the heap and not to give freed memory back.

    Same effect as starting Python with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``.

    Args:
        top_pad_mib (int): extra heap growth per request, MiB (fewer ``brk`` calls).

    Returns:
        bool: True if glibc accepted the settings (False elsewhere: macOS, Windows, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_MAX, 0)
    ok &= mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)
    ok &= mallopt(_M_TOP_PAD, int(top_pad_mib) * 1024 * 1024)
    return bool(ok)
