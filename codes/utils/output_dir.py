"""The outputs of a script, checked before any work so a bad ``--out`` costs nothing: a folder that can be
written, or a file that replaces nothing the user did not ask to replace and never the script's input."""
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
    if not os.access(path, os.W_OK | os.X_OK) or os.statvfs(path).f_flag & os.ST_RDONLY:
        raise KULNetError(f"{flag} {path}: the folder is not writable; give a writable folder")
    return path


def check_new_file(path, flag, overwrite=False, inputs=None):
    """Check that the file ``path`` may be written: not a folder, not one of ``inputs``, and new unless
    ``overwrite``; its folder is made (see :func:`prepare_output_dir`).

    Args:
        path (str): the file. flag (str): how the user gave it. overwrite (bool): the user's --overwrite.
        inputs (dict): {what: file} the script reads (never written over, even with --overwrite).

    Raises:
        KULNetError: one line naming the file and what to do.
    """
    if os.path.isdir(path):
        raise KULNetError(f"{flag} {path}: is a folder; give a file name")
    for what, source in (inputs or {}).items():
        if os.path.exists(path) and os.path.exists(source) and os.path.samefile(path, source):
            raise KULNetError(f"{flag} {path}: is the {what} read ({source}); give another name for the output")
    if os.path.exists(path) and not overwrite:
        raise KULNetError(f"{flag} {path}: exists; give another name, or pass --overwrite to replace it")
    prepare_output_dir(os.path.dirname(os.path.abspath(path)), flag)
    return path
