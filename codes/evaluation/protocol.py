"""The paper's synthetic test protocol: its kernels and HR test sets.

Kernels: the nine anisotropic kernels of the paper tables (sig1, sig2 variances, theta in degrees
turned into radians as the authors do), a list of triples, or a file of kernels. HR sets: folders of
HR images or the photographs shipped with scikit-image, mod-cropped to the scale and scored on their
8-bit levels.

Public API:
    SKIMAGE_PHOTOS, ProtocolKernel, HRSet, build_kernels, build_hr_sets, check_hr_sets, check_hr_size,
    skimage_loader, load_hr_levels, load_hr
"""
import os
from dataclasses import dataclass

import numpy as np
import torch

from data.kernels import PAPER_KERNELS, anisotropic_gaussian_kernels, degrees_to_radians_authors, paper_kernels
from utils.errors import KULNetError
from utils.image_io import list_images, mod_crop, raw_to_float, read_image

# The RGB photographs shipped inside scikit-image (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina", "colorwheel")


@dataclass
class ProtocolKernel:
    """One test kernel: ``index`` (1-based label), parameters (NaN for kernels from a file), (l, l).

    ``sv_mode`` 1-6: the authors' spatially variant pattern instead (:mod:`data.spatially_variant`); then the
    parameters are NaN and ``kernel`` is None (each image's kernels follow from its size).
    """

    index: int
    sig1: float
    sig2: float
    theta_deg: float
    kernel: torch.Tensor
    sv_mode: int = 0


def build_kernels(opt):
    """The kernels of the protocol from the options ('paper', a list of triples, or ``kernel_file``).

    Returns:
        list[ProtocolKernel]: kernels float32 (l, l) on the CPU, each summing to 1; with ``sv_mode`` 1-6,
        one entry for the spatially variant pattern.
    """
    scale, ks = opt["scale"], opt["kernel_size"]
    if opt.get("sv_mode"):
        nan = float("nan")
        return [ProtocolKernel(1, nan, nan, nan, None, sv_mode=opt["sv_mode"])]
    if opt.get("kernel_file"):
        path = opt["kernel_file"]
        try:
            arr = np.load(path)
        except (OSError, ValueError) as err:
            raise KULNetError(f"{path}: cannot read the kernel file ({err}); give a .npy array (N, l, l)")
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != (ks, ks) or not np.all(np.isfinite(arr)) or arr.min() < 0:
            raise KULNetError(f"{path}: kernels of shape {arr.shape}; expected (N, {ks}, {ks}) finite, >= 0")
        sums = arr.sum(axis=(1, 2))
        if np.any(np.abs(sums - 1) > 1e-3):
            raise KULNetError(f"{path}: kernel sums {np.round(sums, 4).tolist()}; every kernel must sum to 1")
        nan = float("nan")
        return [ProtocolKernel(i + 1, nan, nan, nan, torch.from_numpy(k).float()) for i, k in enumerate(arr)]
    if opt["kernels"] == "paper":
        params = PAPER_KERNELS
        kernels = paper_kernels(scale, ks)
    else:
        params = opt["kernels"]
        s1, s2, deg = (torch.tensor([p[i] for p in params], dtype=torch.float64) for i in range(3))
        kernels = anisotropic_gaussian_kernels(s1, s2, degrees_to_radians_authors(deg), ks, scale)
    return [ProtocolKernel(i + 1, float(p[0]), float(p[1]), float(p[2]), k) for i, (p, k) in
            enumerate(zip(params, kernels))]


@dataclass
class HRSet:
    """A test set: ``items`` are (image name, loader returning float32 (H, W, 3) RGB in [0, 1])."""

    name: str
    items: list
    center_crop: int = None


def skimage_loader(name):
    """Loader of a photograph shipped with scikit-image (read from the installed package).

    Returns:
        callable: ``() -> np.ndarray float32 (H, W, 3) RGB in [0, 1]``.
    """
    import skimage.data

    if name not in SKIMAGE_PHOTOS:
        raise KULNetError(f"skimage: '{name}' is not one of the RGB photographs shipped with "
                          f"scikit-image; choose from {', '.join(SKIMAGE_PHOTOS)}")
    img = getattr(skimage.data, name)()
    return lambda: img.astype(np.float32) / 255.0


def build_hr_sets(datasets):
    """Resolve the ``datasets`` options into :class:`HRSet` objects (lists files, checks names).

    Raises:
        KULNetError: empty or missing folder, unknown scikit-image photograph.
    """
    sets = []
    for ds in datasets:
        if ds["dataroot_HR"] is not None:
            paths = list_images(ds["dataroot_HR"])
            items = [(os.path.splitext(os.path.basename(p))[0], lambda p=p: read_image(p)[0]) for p in paths]
        else:
            items = [(name, skimage_loader(name)) for name in ds["skimage"]]
        if ds.get("max_images"):
            items = items[: ds["max_images"]]
        sets.append(HRSet(ds["name"], items, ds.get("center_crop")))
    return sets


def load_hr_levels(loader, scale, center_crop=None):
    """Load one HR image as its 8-bit levels, centre-cropped to at most ``center_crop`` pixels a side
    and mod-cropped.

    The image is rounded to 8-bit levels (exact for 8-bit files): the protocol scores on 8-bit
    images, so a 16-bit HR is degraded from the same 8-bit image it is scored against, as
    ``make_testset.py`` (which writes 8-bit HR files) does.

    Returns:
        np.ndarray: uint8 (H, W, 3), H and W multiples of ``scale``.
    """
    img = np.round(np.asarray(loader(), dtype=np.float32) * np.float32(255)).astype(np.uint8)
    if center_crop:
        h, w = img.shape[:2]
        ch, cw = min(h, center_crop), min(w, center_crop)
        y, x = (h - ch) // 2, (w - cw) // 2
        img = img[y:y + ch, x:x + cw]
    return np.ascontiguousarray(mod_crop(img, scale))


def load_hr(loader, scale, center_crop=None):
    """:func:`load_hr_levels` as float32 (H, W, 3) in [0, 1] (on the 8-bit grid)."""
    return raw_to_float(load_hr_levels(loader, scale, center_crop))


def check_hr_sets(hr_sets, scale, crop_border):
    """Read every HR image once before any work, so an unreadable file or an image too small for the
    scale or the border crop stops the run at the start, not in the middle of the grid.

    Raises:
        KULNetError: one line naming the image.
    """
    for hs in hr_sets:
        for name, loader in hs.items:
            check_hr_size(f"{hs.name}/{name}", load_hr_levels(loader, scale, hs.center_crop), scale, crop_border)


def check_hr_size(label, hr_np, scale, crop_border):
    """One HR image (H, W, 3) must keep pixels after the mod-crop and the border crop.

    Raises:
        KULNetError: one line naming ``label``.
    """
    h, w = hr_np.shape[:2]
    if min(h, w) == 0:
        raise KULNetError(f"{label}: smaller than the scale {scale} (nothing is left after cropping to a "
                          f"multiple of {scale}); leave this image out")
    if 2 * crop_border >= min(h, w):
        raise KULNetError(f"{label}: crop_border = {crop_border} leaves nothing of its {h}x{w} pixels; "
                          f"lower crop_border or leave this image out")
