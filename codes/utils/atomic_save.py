"""Crash-safe writing of checkpoints: a crash during a save never leaves a broken file."""
import io
import os
import tempfile

import torch


def atomic_torch_save(obj, path):
    """``torch.save(obj)`` to a temporary file in the same folder, fsync, then ``os.replace``.

    The folder is created if needed. On any failure the temporary file is removed and the previous
    file at ``path`` (if any) is left untouched. The object is serialised in memory first: written
    straight to the file, a full disk surfaces from torch.save as an obscure RuntimeError ("unexpected
    pos"); written as bytes it is the OSError (ENOSPC, EFBIG) that callers report.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` as :func:`atomic_torch_save` writes a checkpoint."""
    _atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _atomic_write(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1] or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp makes the file private (0600): keep the mode of the file replaced, else 0644
            os.fchmod(handle.fileno(), os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
