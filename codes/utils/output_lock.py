"""One run at a time on an output: a lock file beside it, ``<out>.lock``, naming the run that holds it.

A second run on the same output is refused with a line naming the holder (process id, host, start
time), instead of writing into the first one's work or moving it. A lock left by a run that died on
this host (its process is gone) is taken over; one of another host is left to the user to delete.
"""
import contextlib
import os
import socket
import time

from utils.errors import KULNetError


def _holder(lock):
    """(pid, host, started) written in ``lock``; (None, '?', '?') when unreadable."""
    try:
        with open(lock, encoding="utf-8") as handle:
            pid, host, started = (handle.read().split() + ["?", "?", "?"])[:3]
        return int(pid), host, started
    except (OSError, ValueError):
        return None, "?", "?"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _create(lock):
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")


@contextlib.contextmanager
def claim_output(path, flag="--out"):
    """Hold ``<path>.lock`` for the block; released (deleted) at its end, also after an error.

    Raises:
        KULNetError: another living run holds it, or the lock cannot be written (one line).
    """
    lock = os.path.abspath(path) + ".lock"
    for attempt in (1, 2):
        try:
            _create(lock)
            break
        except FileExistsError:
            pid, host, started = _holder(lock)
            dead = pid is not None and host == socket.gethostname() and not _alive(pid)
            if dead and attempt == 1:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(lock)  # its run died: take the output over
                continue
            raise KULNetError(f"{flag} {path}: another run (pid {pid} on {host}, since {started}) is writing it; "
                              f"wait for it to end or choose another {flag} (if no such run is alive, delete "
                              f"{lock})") from None
        except OSError as err:
            raise KULNetError(f"{flag} {path}: cannot write there ({err.strerror or err}); give a writable "
                              f"place") from None
    try:
        yield lock
    finally:
        if _holder(lock)[0] == os.getpid():
            with contextlib.suppress(OSError):
                os.remove(lock)
