"""Paired HR/LR dataset, with optional ground-truth kernels (generated test sets, DIV2KRK-style sets).

HR and LR files are paired by their position in the sorted lists (the names may differ, e.g.
``img_1_gt.png`` / ``im_1.png``). Kernels come from ``.npy`` or ``.mat`` files: one per image in a
folder, one file for all images (a folder holding a single kernel file, as written by
``codes/scripts/make_testset.py``, or the path of that file), or one file holding a (N, l, l) stack.
"""
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.errors import KULNetError
from utils.image_io import image_size, img2tensor, list_images, mod_crop, read_image

KERNEL_EXTENSIONS = (".npy", ".mat")


def load_kernel_file(path):
    """Load a kernel array from ``.npy`` or ``.mat`` (the first 2-D or 3-D numeric array in it).

    Returns:
        np.ndarray float32, (l, l) or (N, l, l), as stored (not normalised).
    """
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif ext == ".mat":
            from scipy.io import loadmat

            data = loadmat(path)
            arrays = [v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray)
                      and v.dtype.kind in "fiu"]
            arr = next((a for a in arrays if a.ndim == 2), None)
            if arr is None:
                arr = next((a for a in arrays if a.ndim == 3), None)
            if arr is None:
                raise KULNetError(f"{path}: no 2-D numeric array (kernel) in this .mat file; "
                                  f"save the kernel as a matrix")
        else:
            raise KULNetError(f"{path}: kernels must be .npy or .mat files")
    except KULNetError:
        raise
    except Exception as err:  # noqa: BLE001 - any parse failure is the file's fault
        raise KULNetError(f"{path}: cannot read the kernel ({type(err).__name__}); "
                          f"re-save it as .npy or .mat") from None
    if arr.ndim not in (2, 3) or arr.shape[-1] != arr.shape[-2]:
        raise KULNetError(f"{path}: kernel of shape {arr.shape} is not square (l, l) or (N, l, l)")
    return np.asarray(arr, dtype=np.float32)


def _kernel_source(kernel_path, count):
    """Return a function index -> kernel (l, l) float32 for ``count`` images."""
    if os.path.isfile(kernel_path):
        files = [kernel_path]
    elif os.path.isdir(kernel_path):
        files = sorted(os.path.join(kernel_path, n) for n in os.listdir(kernel_path)
                       if os.path.splitext(n)[1].lower() in KERNEL_EXTENSIONS)
        if not files:
            raise KULNetError(f"{kernel_path}: no kernel files (.npy, .mat) found; fix the kernel folder path")
    else:
        raise KULNetError(f"{kernel_path}: no such kernel folder or file; check the path")
    if len(files) == 1:
        arr = load_kernel_file(files[0])
        if arr.ndim == 2:
            return lambda i: arr
        if arr.shape[0] != count:
            raise KULNetError(f"{files[0]}: holds {arr.shape[0]} kernels but there are {count} images; "
                              f"give one kernel per image")
        return lambda i: arr[i]
    if len(files) != count:
        raise KULNetError(f"{kernel_path}: {len(files)} kernel files but {count} images; give one kernel per image")

    def per_image(i):
        arr = load_kernel_file(files[i])
        if arr.ndim != 2:
            raise KULNetError(f"{files[i]}: expected one (l, l) kernel, found shape {arr.shape}")
        return arr

    return per_image


class PairedDataset(Dataset):
    """HR/LR image pairs (read lazily), optionally with their kernels.

    Args:
        hr_folder (str): HR images; mod-cropped to ``scale`` when read.
        lr_folder (str): LR images, same count; each must be exactly (H/s, W/s) of its mod-cropped HR.
        scale (int): SR scale.
        kernel_folder (str | None): kernels, see the module docstring.

    Items:
        dict: ``hr`` Tensor (3, H, W), ``lr`` Tensor (3, H/s, W/s), both float32 in [0, 1];
        ``kernel`` Tensor (l, l) float32 (only with kernels); ``path`` str (the LR file);
        ``hr_path`` str.

    Raises:
        KULNetError: missing/empty folders, different counts, sizes that do not match the scale.
    """

    def __init__(self, hr_folder, lr_folder, scale, kernel_folder=None):
        self.hr_paths, self.lr_paths = list_images(hr_folder), list_images(lr_folder)
        self.scale = int(scale)
        if len(self.hr_paths) != len(self.lr_paths):
            raise KULNetError(f"{lr_folder}: {len(self.lr_paths)} LR images but {hr_folder} has "
                              f"{len(self.hr_paths)} HR images; the folders must pair up one to one")
        self.kernel = _kernel_source(kernel_folder, len(self.hr_paths)) if kernel_folder else None
        for hr_path, lr_path in zip(self.hr_paths, self.lr_paths):  # header-only check, fails early
            hr_size, lr_size = image_size(hr_path), image_size(lr_path)
            if hr_size is not None and lr_size is not None:
                self._check_sizes(hr_path, lr_path, hr_size, lr_size)

    def _check_sizes(self, hr_path, lr_path, hr_size, lr_size):
        s = self.scale
        want = (hr_size[0] // s, hr_size[1] // s)
        if tuple(lr_size) != want:
            raise KULNetError(f"{lr_path}: LR is {lr_size[0]}x{lr_size[1]} but HR {os.path.basename(hr_path)} is "
                              f"{hr_size[0]}x{hr_size[1]}, which needs {want[0]}x{want[1]} at x{s}; "
                              f"check the scale and the pairing")

    def __len__(self):
        return len(self.hr_paths)

    def __getitem__(self, index):
        hr_path, lr_path = self.hr_paths[index], self.lr_paths[index]
        hr, _ = read_image(hr_path)
        lr, _ = read_image(lr_path)
        self._check_sizes(hr_path, lr_path, hr.shape[:2], lr.shape[:2])
        item = {"hr": img2tensor(mod_crop(hr, self.scale))[0], "lr": img2tensor(lr)[0],
                "path": lr_path, "hr_path": hr_path}
        if self.kernel is not None:
            item["kernel"] = torch.from_numpy(np.ascontiguousarray(self.kernel(index)))
        return item
