"""Crash-safe writing of checkpoints: a crash during a save never leaves a broken file."""
import os
import tempfile

import torch


def atomic_torch_save(obj, path):
    """``torch.save(obj)`` to a temporary file in the same folder, fsync, then ``os.replace``.

    The folder is created if needed. On any failure the temporary file is removed and the previous
    file at ``path`` (if any) is left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1] or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
