"""The output folder of a script, made before any work so a bad ``--out`` costs nothing."""
import os

from utils.errors import KULNetError


def prepare_output_dir(path, flag="--out"):
    """Create ``path`` (and its parents) if needed and check it can be written.

    Args:
        path (str): the folder. flag (str): how the user gave it, for the message.

    Returns:
        str: ``path``.

    Raises:
        KULNetError: one line when ``path`` is a file, cannot be created, or is not writable.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise KULNetError(f"{flag} {path}: is a file, not a folder; give a folder for the results")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise KULNetError(f"{flag} {path}: cannot create the folder ({err.strerror or err}); "
                          f"give a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise KULNetError(f"{flag} {path}: the folder is not writable; give a writable folder")
    return path
