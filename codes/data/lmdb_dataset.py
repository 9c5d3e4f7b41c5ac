"""HR images of a prepared LMDB (``data.mdb`` + ``meta_info.pkl``, see :mod:`utils.lmdb_layout`).

Why: an image file is decoded whole to cut one training crop; from the memory-mapped raw array only
the crop's rows are touched and only the crop is copied (figures: codes/benchmarks/README.md). The
crops, flips and values equal those of :class:`data.hr_dataset.HRDataset` on the source folder under
the same seed (the same code draws them).
"""
import os

import lmdb
import numpy as np

from utils.errors import KULNetError
from utils.image_io import img2tensor, mod_crop, raw_to_float
from utils.lmdb_layout import DATA_FILE, check_data_size, read_meta_info

from .hr_dataset import HRDataset


def stored_to_rgb(img):
    """(H, W, C) stored channels (BGR, gray, gray+alpha or BGRA, as OpenCV reads files) -> (H, W, 3)
    RGB, as :func:`utils.image_io.read_image_raw` converts them; a view except for gray (a copy)."""
    channels = img.shape[2]
    if channels in (1, 2):
        return np.repeat(img[:, :, :1], 3, axis=2)
    if channels == 4:
        return img[:, :, 2::-1]
    return img[:, :, ::-1]


_ENVS = {}  # folder -> (pid, inode of data.mdb, environment): one per folder and process


def open_readonly(root):
    """The read-only, lock-free LMDB environment of a prepared folder, opened once per process.

    A process forked from one that had it open (a data-loader worker) closes its inherited copy and
    opens its own: LMDB handles must not be used across a fork, and LMDB refuses a second handle on
    the same folder in one process.

    Raises:
        KULNetError: data.mdb cannot be opened, or is shorter than its records (one line naming it).
    """
    key = os.path.realpath(root)
    data = os.path.join(key, DATA_FILE)
    inode = os.stat(data).st_ino if os.path.exists(data) else None
    pid, known_inode, env = _ENVS.get(key, (None, None, None))
    if env is not None and pid == os.getpid() and known_inode == inode:
        return env
    if env is not None:  # inherited through a fork, or the folder was made again
        env.close()
        del _ENVS[key]
    try:
        env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as err:
        raise KULNetError(f"{data}: cannot be opened as LMDB ({err}); prepare the dataset again "
                          f"with codes/scripts/prepare_dataset.py") from None
    try:
        check_data_size(env, key, "copy it again or prepare the dataset again with codes/scripts/prepare_dataset.py")
    except KULNetError:
        env.close()
        raise
    _ENVS[key] = (os.getpid(), inode, env)
    return env


class LMDBHRDataset(HRDataset):
    """:class:`HRDataset` reading a prepared LMDB folder instead of image files.

    The LMDB environment is opened read-only and without locks once per process (a data-loader
    worker opens its own after the fork, :func:`open_readonly`). Every key's presence and value
    length is checked when the dataset is built, so a damaged folder fails before training starts.

    Args:
        root (str): the prepared folder. Other arguments as :class:`HRDataset`.

    Items:
        as :class:`HRDataset`; ``path`` is ``<root>/<key>``.
    """

    def __init__(self, root, scale, phase="train", gt_size=None, use_flip=True, use_rot=True,
                 uint8_crops=False):
        self._setup(root, scale, phase, gt_size, use_flip, use_rot, uint8_crops)
        self.meta = read_meta_info(root)
        self.paths = [os.path.join(root, key) for key in self.meta.keys]
        self._env, self._env_pid = None, None
        self._check_values()
        if phase == "train":
            for index, path in enumerate(self.paths):
                self._check_crop_fits(path, *self.meta.shapes[index][:2])

    def __getstate__(self):  # a spawned worker opens its own environment
        return {**self.__dict__, "_env": None, "_env_pid": None}

    def _open(self):
        if self._env_pid != os.getpid():  # the first read in this process: skip the lookup after it
            self._env, self._env_pid = open_readonly(self.root), os.getpid()
        return self._env

    def _check_values(self):
        """Every key of meta_info.pkl is in data.mdb with the length its resolution says.

        Only the B-tree is read (a value's length is in its node), so this is quick even for DF2K.
        """
        with self._open().begin(buffers=True) as txn:
            for index in range(len(self)):
                self._value(txn, index)

    def _value(self, txn, index):
        """Image ``index`` as stored: (H, W, C) read-only array viewing the map (valid in ``txn``)."""
        key = self.meta.keys[index]
        buf = txn.get(key.encode("utf-8"))
        fix = "prepare the dataset again with codes/scripts/prepare_dataset.py"
        if buf is None:
            raise KULNetError(f"{os.path.join(self.root, DATA_FILE)}: key {key!r} listed in meta_info.pkl "
                              f"is missing; {fix}")
        if len(buf) != self.meta.nbytes(index):
            h, w, c = self.meta.shapes[index]
            raise KULNetError(f"{os.path.join(self.root, DATA_FILE)}: key {key!r} holds {len(buf)} bytes, "
                              f"not the {self.meta.nbytes(index)} of its resolution {c}_{h}_{w} "
                              f"({self.meta.dtypes[index].name}) in meta_info.pkl; {fix}")
        return np.frombuffer(buf, dtype=self.meta.dtypes[index]).reshape(self.meta.shapes[index])

    def __getitem__(self, index):
        h, w, _ = self.meta.shapes[index]
        # the item is built (its pixels copied) inside the transaction: the view is only valid there
        with self._open().begin(buffers=True) as txn:
            stored = self._value(txn, index)
            if self.phase == "test":
                img = stored_to_rgb(mod_crop(stored, self.scale))
                return {"hr": img2tensor(raw_to_float(img))[0], "path": self.paths[index]}
            return self._train_item(self.paths[index], h, w, lambda top, left, size:
                                    stored_to_rgb(stored[top : top + size, left : left + size]))
