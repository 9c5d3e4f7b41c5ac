"""The prepared-dataset layout: an LMDB of raw images, as the authors' (and MANet's) code reads it.

A prepared folder holds ``data.mdb`` (LMDB) and ``meta_info.pkl``. Each image is one LMDB value:
the bytes of its (H, W, C) array in OpenCV's channel order (BGR), row-major, keyed by the file
stem (UTF-8; ASCII in the authors' sets). ``meta_info.pkl`` is a pickled dict with

    keys        list[str], the stems, in dataset order
    resolution  list[str], ``"C_H_W"`` of each key
    name        str, a label (optional)
    dtype       list[str], ``"uint8"`` or ``"uint16"`` (little-endian) of each key (optional;
                absent in the authors' sets, whose images are all 8-bit)

This module only reads and writes that description; :mod:`data.lmdb_dataset` reads the pixels and
``codes/scripts/prepare_dataset.py`` makes the folder.
"""
import os
import pickle
from dataclasses import dataclass

import numpy as np

from utils.errors import KULNetError

DATA_FILE = "data.mdb"
META_FILE = "meta_info.pkl"
DATA_TYPES = ("img", "lmdb")
DTYPES = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2")}


@dataclass
class MetaInfo:
    """What ``meta_info.pkl`` says about the images of a prepared folder.

    Attributes:
        keys (list[str]): the images' keys (file stems), in dataset order.
        shapes (list[tuple[int, int, int]]): (H, W, C) of each image as stored.
        dtypes (list[np.dtype]): uint8 or little-endian uint16 of each image.
        name (str): the dataset's label ('' when absent).
    """

    keys: list
    shapes: list
    dtypes: list
    name: str = ""

    def nbytes(self, index):
        """Length in bytes of image ``index``'s value."""
        h, w, c = self.shapes[index]
        return h * w * c * self.dtypes[index].itemsize


def is_prepared(folder):
    """True when ``folder`` holds both ``data.mdb`` and ``meta_info.pkl``."""
    return all(os.path.isfile(os.path.join(folder, name)) for name in (DATA_FILE, META_FILE))


def detect_data_type(root, data_type=None):
    """Which reader a dataroot needs: 'lmdb' (a prepared folder) or 'img' (a folder of images).

    Args:
        root (str): the dataroot (an existing folder).
        data_type (str | None): 'img', 'lmdb', or None to decide from the folder: a prepared folder,
            or a name ending in ``lmdb`` as the authors name theirs (``DF2K_HR.lmdb``), is 'lmdb'.

    Raises:
        KULNetError: an unknown data_type, 'lmdb' for a folder that lacks ``data.mdb`` or
            ``meta_info.pkl``, or 'img' for a prepared folder.
    """
    if data_type not in (None,) + DATA_TYPES:
        raise KULNetError(f"{root}: data_type {data_type!r} is unknown; use img, lmdb, or leave it out")
    data_type_given = data_type is not None
    if data_type is None:
        named = os.path.basename(os.path.normpath(root)).lower().endswith("lmdb")
        data_type = "lmdb" if named or is_prepared(root) else "img"
    if data_type == "lmdb":
        missing = [n for n in (DATA_FILE, META_FILE) if not os.path.isfile(os.path.join(root, n))]
        if missing:
            named = "" if data_type_given else " (its name ends in lmdb)"
            raise KULNetError(f"{root}: {' and '.join(missing)} missing, so this is no prepared dataset{named}; "
                              f"for a folder of images set data_type: img, or make the dataset with "
                              f"codes/scripts/prepare_dataset.py")
    elif is_prepared(root):
        raise KULNetError(f"{root}: holds a prepared dataset (data.mdb, meta_info.pkl), not images; "
                          f"set data_type to lmdb or leave it out")
    return data_type


class _PlainUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, strings and numbers: a meta_info.pkl never needs more."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refers to {module}.{name}")


def read_meta_info(folder):
    """Read and check ``<folder>/meta_info.pkl``.

    Returns:
        MetaInfo: keys, (H, W, C) shapes and dtypes, one per key.

    Raises:
        KULNetError: one line naming the file: missing, not a pickle of plain values, or whose
            ``keys``/``resolution``/``dtype`` are missing, malformed or of different lengths.
    """
    path = os.path.join(folder, META_FILE)
    fix = "prepare the dataset again with codes/scripts/prepare_dataset.py"
    if not os.path.isfile(path):
        raise KULNetError(f"{path}: missing; {fix}")
    try:
        with open(path, "rb") as handle:
            meta = _PlainUnpickler(handle).load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a corrupt file
        raise KULNetError(f"{path}: corrupt ({type(err).__name__}: {err}); {fix}") from None
    if not isinstance(meta, dict) or "keys" not in meta or "resolution" not in meta:
        raise KULNetError(f"{path}: not a meta_info dict with 'keys' and 'resolution'; {fix}")
    keys, res = meta["keys"], meta["resolution"]
    dtypes = meta.get("dtype", ["uint8"] * len(keys) if isinstance(keys, list) else None)
    if isinstance(res, str) and isinstance(keys, list):  # the authors' one-resolution-for-all form
        res = [res] * len(keys)
    if not all(isinstance(v, list) for v in (keys, res, dtypes)) or not len(keys) == len(res) == len(dtypes):
        raise KULNetError(f"{path}: 'keys', 'resolution' (and 'dtype') must be lists of one entry per "
                          f"image; {fix}")
    if not keys:
        raise KULNetError(f"{path}: lists no image; {fix}")
    shapes = [_parse_resolution(r, path, fix) for r in res]
    for i, d in enumerate(dtypes):
        if d not in DTYPES:
            raise KULNetError(f"{path}: dtype {d!r} of key {keys[i]!r} is not uint8 or uint16; {fix}")
    if not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
        raise KULNetError(f"{path}: keys must be distinct non-empty strings; {fix}")
    return MetaInfo(keys, shapes, [DTYPES[d] for d in dtypes], str(meta.get("name", "")))


def _parse_resolution(text, path, fix):
    """``"C_H_W"`` -> (H, W, C)."""
    try:
        c, h, w = (int(v) for v in str(text).split("_"))
    except ValueError:
        raise KULNetError(f"{path}: resolution {text!r} is not 'C_H_W'; {fix}") from None
    if min(c, h, w) <= 0 or c not in (1, 2, 3, 4):
        raise KULNetError(f"{path}: resolution {text!r} is not 'C_H_W' with 1 to 4 channels; {fix}")
    return h, w, c


def check_data_size(env, folder, fix):
    """Refuse a ``data.mdb`` shorter than the pages its meta page says are in use: a file cut short (an
    interrupted copy or write) would kill the first reader of a missing page with a bus error.

    Args:
        env (lmdb.Environment): the folder's open environment (nothing read from it yet).
        folder (str): the folder. fix (str): what to do, for the message.

    Raises:
        KULNetError: one line naming the file, its size and the size it needs.
    """
    data = os.path.join(folder, DATA_FILE)
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = os.path.getsize(data)
    if size < needed:
        raise KULNetError(f"{data}: {size} bytes, but its records take {needed}: the file is truncated (an "
                          f"interrupted copy or write); {fix}")


def write_meta_info(path, name, keys, shapes, dtypes):
    """Write ``meta_info.pkl`` (protocol 4, readable by the authors' Python 3 code).

    Args:
        path (str): the file. name (str): a label.
        keys (list[str]), shapes (list[(H, W, C)]), dtypes (list[str]): one entry per image.
    """
    meta = {"name": name, "keys": list(keys),
            "resolution": [f"{c}_{h}_{w}" for h, w, c in shapes], "dtype": list(dtypes)}
    with open(path, "wb") as handle:
        pickle.dump(meta, handle, protocol=4)
        handle.flush()
        os.fsync(handle.fileno())
