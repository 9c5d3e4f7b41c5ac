"""Writing a prepared LMDB folder in steps that survive an interruption (see :mod:`utils.lmdb_layout`).

``codes/scripts/prepare_dataset.py`` writes into ``OUT.partial`` through :class:`PartialOutput` and
renames the folder once :meth:`PartialOutput.finish` has written ``meta_info.pkl``.
"""
import json
import os

import lmdb
import numpy as np

from utils.errors import KULNetError
from utils.lmdb_layout import META_FILE, check_data_size, write_meta_info

PROGRESS_FILE = "written.jsonl"  # in the partial folder: one line per committed image, with its source
COMMIT_BYTES = 64 * 2**20  # a commit (and its fsync) every this many bytes of images


class PartialOutput:
    """An unfinished prepared folder: the LMDB being written and the list of images committed to it.

    :meth:`load` keeps the images whose source is unchanged (same fingerprint: name, size,
    modification time) and deletes the others, so that a re-run continues where an interrupted
    one stopped.

    Args:
        folder (str): the partial folder (created if needed).
        map_size (int): LMDB map size in bytes (virtual; doubled when it fills up).

    Raises:
        KULNetError: a partial folder whose LMDB cannot be opened or is cut short (delete it, the line says).
    """

    def __init__(self, folder, map_size):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        fix = f"the unfinished output is damaged: delete {folder} and run the command again to start clean"
        try:
            self.env = lmdb.open(folder, map_size=map_size, readahead=False, meminit=False)
        except lmdb.Error as err:
            raise KULNetError(f"{folder}: cannot be opened as LMDB ({err}); {fix}") from None
        try:
            check_data_size(self.env, folder, fix)
        except KULNetError:
            self.close()
            raise
        self.done = {}  # key -> the progress line: source fingerprint, shape, dtype
        self.pending = []

    def load(self, fingerprints):
        """Keep what was committed from the same sources; returns how many images that is.

        Args:
            fingerprints (dict): key -> the fingerprint of its source file now.
        """
        entries = {}
        path = os.path.join(self.folder, PROGRESS_FILE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                        entries[entry["key"]] = entry
                    except (ValueError, KeyError, TypeError):
                        break  # a line cut by the interruption: the lines before it stand
        with self.env.begin(write=True, buffers=True) as txn:
            for key, value_len in [(k.decode("utf-8"), n) for k, n in self._stored(txn)]:
                entry = entries.get(key)
                h, w, c = entry["shape"] if entry else (0, 0, 0)
                if (entry and entry["source"] == fingerprints.get(key)
                        and value_len == h * w * c * np.dtype(entry["dtype"]).itemsize):
                    self.done[key] = entry
                else:
                    txn.delete(key.encode("utf-8"))
        self._rewrite_progress()
        return len(self.done)

    @staticmethod
    def _stored(txn):
        with txn.cursor() as cursor:
            return [(bytes(k), len(v)) for k, v in cursor.iternext(keys=True, values=True)]

    def _rewrite_progress(self):
        with open(os.path.join(self.folder, PROGRESS_FILE), "w", encoding="utf-8") as handle:
            for entry in self.done.values():
                handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def add(self, key, source, shape, dtype, value):
        """Queue one image (committed with the next :data:`COMMIT_BYTES`).

        Args:
            key (str): its key. source (list): its file's fingerprint. shape ((H, W, C)), dtype
            (str): as stored. value (bytes): the (H, W, C) array's bytes.
        """
        self.pending.append(({"key": key, "source": source, "shape": list(shape), "dtype": dtype}, value))
        if sum(len(v) for _, v in self.pending) >= COMMIT_BYTES:
            self.commit()

    def commit(self):
        """Write the pending images in one transaction, then record them (a crash in between
        only means they are written again)."""
        if not self.pending:
            return
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for entry, value in self.pending:
                        txn.put(entry["key"].encode("utf-8"), value)
                break
            except lmdb.MapFullError:  # the estimate was short (e.g. 16-bit files it could not see)
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
            except lmdb.Error as err:
                self.pending = []
                raise KULNetError(f"{self.folder}: writing failed ({err}); free disk space if it is full, "
                                  f"then run the same command again to continue") from None
        with open(os.path.join(self.folder, PROGRESS_FILE), "a", encoding="utf-8") as handle:
            for entry, _ in self.pending:
                handle.write(json.dumps(entry) + "\n")
                self.done[entry["key"]] = entry
            handle.flush()
            os.fsync(handle.fileno())
        self.pending = []

    def close(self):
        if self.env is not None:
            self.env.close()
            self.env = None

    def finish(self, keys, name):
        """Write meta_info.pkl for ``keys`` (in this order) and leave only the layout's files."""
        self.commit()
        self.env.sync(True)
        self.close()
        entries = [self.done[k] for k in keys]
        write_meta_info(os.path.join(self.folder, META_FILE), name, keys,
                        [tuple(e["shape"]) for e in entries], [e["dtype"] for e in entries])
        for extra in (PROGRESS_FILE, "lock.mdb"):
            if os.path.exists(os.path.join(self.folder, extra)):
                os.remove(os.path.join(self.folder, extra))
