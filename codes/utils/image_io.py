"""Image files in and out: listing, reading any common format as RGB float, writing, tensor conversion.

Reading goes through OpenCV (``IMREAD_UNCHANGED``, so 16-bit depth and alpha survive until we decide
what to do with them); Pillow only reads headers for what OpenCV cannot tell us (palette mode, EXIF
orientation) and, as a second opinion, checks files whose end looks truncated. Every problem with a
file becomes a one-line :class:`~utils.errors.KULNetError` naming the file.
"""
import logging
import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from utils.errors import KULNetError

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
_PNG_END = b"IEND\xaeB`\x82"
_logger = logging.getLogger("kulnet")
_told_alpha = False


@dataclass
class ImageInfo:
    """What :func:`read_image` found out about a file and converted.

    Attributes:
        path (str): the file.
        was_grayscale (bool): one channel in the file, expanded to three equal channels.
        had_alpha (bool): an alpha channel in the file, dropped.
        bit_depth (int): 8 or 16 bits per channel in the file.
        was_palette (bool): a palette (indexed colour) image, expanded to RGB.
        orientation (int): EXIF orientation tag (1 = as stored), already applied to the pixels.
    """

    path: str
    was_grayscale: bool = False
    had_alpha: bool = False
    bit_depth: int = 8
    was_palette: bool = False
    orientation: int = 1


def is_image_file(path):
    """True when ``path`` has one of :data:`IMG_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(path)[1].lower() in IMG_EXTENSIONS


def list_image_inputs(path):
    """The images to process for ``path``: the file itself, or the images of the folder (sorted).

    Raises:
        KULNetError: a file without an image extension, or what :func:`list_images` reports.
    """
    if os.path.isfile(path):
        if not is_image_file(path):
            raise KULNetError(f"{path}: not an image file (by its extension); give an image or a folder of images")
        return [path]
    return list_images(path)


def list_images(folder, recursive=False):
    """Sorted paths of the image files in ``folder``; other files are ignored.

    Args:
        folder (str): a folder of images.
        recursive (bool): also look into sub-folders.

    Returns:
        list[str]: full paths, sorted by their path relative to ``folder``.

    Raises:
        KULNetError: the folder is missing, is not a folder, or holds no image.
    """
    if not os.path.exists(folder):
        raise KULNetError(f"{folder}: no such folder; check the path (relative paths start at the repository root)")
    if not os.path.isdir(folder):
        raise KULNetError(f"{folder}: not a folder; give the folder that holds the images")
    if recursive:
        paths = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]
    else:
        paths = [os.path.join(folder, name) for name in os.listdir(folder)]
    paths = sorted(p for p in paths if is_image_file(p) and os.path.isfile(p))
    if not paths:
        raise KULNetError(
            f"{folder}: no images found (looked for {', '.join(IMG_EXTENSIONS)}); put the images there or fix the path"
        )
    return paths


def _pil_header(path):
    """(mode, EXIF orientation, (H, W) as stored) from Pillow's header parse, or None if Pillow can't."""
    try:
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                orientation = 1
                if os.path.splitext(path)[1].lower() in _JPEG_EXTENSIONS + (".tif", ".tiff", ".webp"):
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                return im.mode, orientation, (im.height, im.width)
    except Exception:  # noqa: BLE001 - OpenCV gets the final say on whether the file is readable
        return None


def _looks_truncated(path):
    """Cheap end-of-file check: PNG must end with its IEND chunk, JPEG with the EOI marker."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in _JPEG_EXTENSIONS + (".png",):
        return False
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read()
    if ext == ".png":
        return not tail.endswith(_PNG_END)
    return not tail.rstrip(b"\x00").endswith(b"\xff\xd9")


def _pil_full_decode_ok(path):
    """Decode with Pillow (truncated files not tolerated); used only when the file end looks wrong."""
    try:
        from PIL import Image, ImageFile

        if ImageFile.LOAD_TRUNCATED_IMAGES:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
        return True
    except Exception:  # noqa: BLE001
        return False


def _apply_orientation(img, orientation):
    """Turn stored pixels (H, W, C) into display orientation, as EXIF tag 0x0112 says."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(img, k=-1)
    if orientation == 7:
        return img[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(img, k=1)
    return img


def image_size(path):
    """(H, W) of an image as :func:`read_image` would return it, from the header only when possible.

    Returns None when the header cannot be parsed (the full read will then report the problem).
    """
    header = _pil_header(path)
    if header is None:
        return None
    _, orientation, (h, w) = header
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def read_image(path):
    """Read an image file as RGB float32 in [0, 1].

    Handles 8- and 16-bit files, grayscale (expanded to 3 equal channels), RGBA/BGRA (alpha dropped,
    logged once per process), palette images (expanded) and EXIF orientation (applied, as viewers do).

    Args:
        path (str): image file.

    Returns:
        tuple: ``img`` (np.ndarray float32 (H, W, 3), RGB, in [0, 1], C-contiguous) and :class:`ImageInfo`.

    Raises:
        KULNetError: missing, empty, unreadable, corrupt or truncated file, or an unsupported pixel type.
    """
    img, info = read_image_raw(path)
    return raw_to_float(img), info


def read_image_raw(path):
    """:func:`read_image` without the conversion to float: the file's integers, RGB, oriented.

    Cropping this and converting the crop with :func:`raw_to_float` gives exactly the crop of
    :func:`read_image` (the conversion is per pixel) at a fraction of the cost for a training crop.

    Returns:
        tuple: ``img`` (np.ndarray uint8 or uint16 (H, W, 3), RGB; a view, maybe not contiguous) and
        :class:`ImageInfo` (``bit_depth`` says which).
    """
    global _told_alpha
    if not os.path.exists(path):
        raise KULNetError(f"{path}: no such file; check the path")
    if not os.path.isfile(path):
        raise KULNetError(f"{path}: not a file; give an image file")
    if os.path.getsize(path) == 0:
        raise KULNetError(f"{path}: empty file (0 bytes); replace it with a valid image")
    if _looks_truncated(path) and not _pil_full_decode_ok(path):
        raise KULNetError(f"{path}: truncated or corrupt image (the file ends early); re-download or re-export it")
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.size == 0:
        raise KULNetError(f"{path}: cannot decode this file as an image (corrupt or unsupported format); "
                          f"convert it to PNG")
    info = ImageInfo(path=path)
    header = _pil_header(path)
    if header is not None:
        mode, info.orientation, _ = header
        info.was_palette = mode in ("P", "PA")

    if raw.dtype == np.uint8:
        info.bit_depth = 8
    elif raw.dtype == np.uint16:
        info.bit_depth = 16
    else:
        raise KULNetError(f"{path}: unsupported pixel type {raw.dtype} (only 8- and 16-bit images); convert it to PNG")
    img = raw

    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        info.was_grayscale = True
        img = np.repeat(img, 3, axis=2)
    elif channels == 2:  # gray + alpha
        info.was_grayscale = info.had_alpha = True
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif channels == 4:
        info.had_alpha = True
        img = img[:, :, 2::-1]  # BGRA -> RGB
    elif channels == 3:
        img = img[:, :, ::-1]  # BGR -> RGB
    else:
        raise KULNetError(f"{path}: {channels} channels are not supported; save it as an RGB image")
    if info.had_alpha and not _told_alpha:
        _told_alpha = True
        _logger.warning("%s: has an alpha channel; it is dropped (this is said once per run)", path)
    return _apply_orientation(img, info.orientation), info


def raw_to_float(img):
    """uint8/uint16 image from :func:`read_image_raw` (or a crop of it) -> float32 in [0, 1], contiguous."""
    scale = np.float32(255.0 if img.dtype == np.uint8 else 65535.0)
    return np.ascontiguousarray(img, dtype=np.float32) / scale


def write_image(path, img, grayscale=False):
    """Write an image file (format from the extension), making the parent folders.

    Args:
        path (str): output file, e.g. ``results/x.png``.
        img (np.ndarray): (H, W, 3) RGB or (H, W) gray, float in [0, 1] (clipped, rounded to 8 bits),
            uint8, or uint16.
        grayscale (bool): write one channel; an RGB input is reduced to its BT.601 luma
            (0.299 R + 0.587 G + 0.114 B), which leaves an expanded gray image unchanged.

    Raises:
        KULNetError: unsupported extension, bad array shape, or OpenCV failing to write.
    """
    if not is_image_file(path):
        raise KULNetError(f"{path}: unsupported image extension; use one of {', '.join(IMG_EXTENSIONS)}")
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise KULNetError(f"{path}: cannot write an array of shape {img.shape}; expected (H, W, 3) or (H, W)")
    if img.dtype not in (np.uint8, np.uint16):
        img = np.round(np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    if grayscale and img.ndim == 3:
        luma = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        img = np.round(luma).astype(img.dtype)
    elif img.ndim == 3:
        img = img[:, :, ::-1]  # RGB -> BGR for OpenCV
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise KULNetError(f"{path}: cannot create its folder ({err.strerror or err}); check the output path") from None
    if not cv2.imwrite(path, np.ascontiguousarray(img)):
        raise KULNetError(f"{path}: could not write the image; check the folder is writable and the disk has space")


def img2tensor(img):
    """(H, W, 3) float32 numpy image in [0, 1] -> Tensor (1, 3, H, W) float32 (a copy)."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).unsqueeze(0)


def tensor2img(t):
    """Tensor (3, H, W) or (1, 3, H, W) in [0, 1] -> uint8 numpy (H, W, 3) RGB (clamped, rounded)."""
    t = t.detach()
    if t.dim() == 4:
        if t.size(0) != 1:
            raise ValueError(f"tensor2img takes one image, got a batch of {t.size(0)}")
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"tensor2img expects (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}")
    arr = t.float().clamp(0, 1).mul(255.0).round().to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def mod_crop(img, scale):
    """Crop an image so that its height and width are multiples of ``scale`` (top-left corner kept).

    Args:
        img (np.ndarray | Tensor): numpy (H, W) or (H, W, C); or a tensor (..., H, W).
        scale (int): the SR scale.

    Returns:
        Same type, (H - H % scale, W - W % scale) spatially.
    """
    if torch.is_tensor(img):
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]
