"""Helpers shared by the prepared-dataset tests: tiny image files of every kind, an authors'-style LMDB."""
import os
import pickle

import cv2
import lmdb
import numpy as np


def write_kinds(folder, seed=0, sixteen_bit=False):
    """Tiny files of every kind the folder reader converts: 8-bit RGB, gray, BGRA (and 16-bit RGB)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(os.path.join(folder, "a_rgb.png"), rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    cv2.imwrite(os.path.join(folder, "b_gray.png"), rng.integers(0, 256, (66, 64), dtype=np.uint8))
    cv2.imwrite(os.path.join(folder, "c_rgba.png"), rng.integers(0, 256, (64, 70, 4), dtype=np.uint8))
    if sixteen_bit:
        cv2.imwrite(os.path.join(folder, "d_rgb16.png"), rng.integers(0, 65536, (70, 64, 3), dtype=np.uint16))
    return str(folder)


def write_photos(folder, n, size, seed=0):
    """``n`` smooth 8-bit RGB images of size x size, named 00.png, 01.png, ..."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.random((size // 8, size // 8, 3))
        img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
        cv2.imwrite(os.path.join(folder, f"{i:02d}.png"), (img * 255).round().astype(np.uint8))
    return str(folder)


def authors_lmdb(folder, out, meta_extra=None):
    """An LMDB made as MANet's/BasicSR's create_lmdb makes one: the files as OpenCV reads them
    (unchanged: gray stays one channel, BGRA four), key = stem (ASCII), value = tobytes()."""
    names = sorted(os.listdir(folder))
    env = lmdb.open(str(out), map_size=2**26)
    keys, res = [], []
    with env.begin(write=True) as txn:
        for name in names:
            img = cv2.imread(os.path.join(folder, name), cv2.IMREAD_UNCHANGED)
            h, w = img.shape[:2]
            c = 1 if img.ndim == 2 else img.shape[2]
            key = os.path.splitext(name)[0]
            txn.put(key.encode("ascii"), img.tobytes())
            keys.append(key)
            res.append(f"{c}_{h}_{w}")
    env.close()
    meta = {"name": "made_by_hand", "keys": keys, "resolution": res, **(meta_extra or {})}
    with open(os.path.join(out, "meta_info.pkl"), "wb") as handle:
        pickle.dump(meta, handle)
    return str(out)
