"""HR-only dataset: random augmented crops for training, mod-cropped full images for testing.

The LR images are synthesised from these HR images on the fly, on whole batches
(:class:`data.degradation.Degradation`), as in the paper.
"""
import numpy as np
import torch
from torch.utils.data import Dataset

from utils.errors import KULNetError
from utils.image_io import image_size, img2tensor, list_images, mod_crop, raw_to_float, read_image_raw


def _item_rng():
    """A numpy generator seeded from torch's RNG.

    Torch's RNG is seeded per DataLoader worker from the main process's seed (and is the main
    process's RNG when there are no workers), so ``torch.manual_seed`` makes the crops and flips
    of a run reproducible whatever the number of workers.
    """
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def augment(img, rng, use_flip=True, use_rot=True):
    """Random horizontal flip, vertical flip and transpose (with the flips: all 8 rotations/flips).

    Args:
        img (np.ndarray): (H, W, C).
        rng (np.random.Generator): the source of the three coin flips.

    Returns:
        np.ndarray: (H, W, C), or (W, H, C) when transposed; a view.
    """
    hflip, vflip, rot = rng.random(3) < 0.5
    if use_flip and hflip:
        img = img[:, ::-1]
    if use_flip and vflip:
        img = img[::-1]
    if use_rot and rot:
        img = img.transpose(1, 0, 2)
    return img


class HRDataset(Dataset):
    """HR images of a folder, read lazily per item.

    Args:
        folder (str): folder of HR images (sorted; other files ignored).
        scale (int): SR scale (test phase: images are mod-cropped to it).
        phase (str): 'train' (random crop + augmentation) or 'test' (full image, mod-cropped).
        gt_size (int): training crop size (the paper: 48 * scale); required for 'train'.
        use_flip (bool): random horizontal and vertical flips in training.
        use_rot (bool): random 90-degree rotation (transpose) in training.
        uint8_crops (bool): training crops of 8-bit images stay uint8 (4x fewer bytes through the
            data loader); :func:`data.loader.hr_to_device` turns them into the same floats.

    Attribute ``texture_tries`` (default 1, the paper): > 1 draws that many windows per item and keeps
    the one with the most texture (:func:`texture_score`), since a flat crop holds no information
    about its blur.

    Items:
        dict: ``hr`` Tensor (3, gt_size, gt_size) [train] or (3, H', W') [test], float32 in [0, 1]
        (uint8 in [0, 255] for an 8-bit training crop with ``uint8_crops``); ``path`` str.
    """

    def __init__(self, folder, scale, phase="train", gt_size=None, use_flip=True, use_rot=True,
                 uint8_crops=False):
        self._setup(folder, scale, phase, gt_size, use_flip, use_rot, uint8_crops)
        self.paths = list_images(folder)
        if phase == "train":
            self._check_sizes()

    def _setup(self, root, scale, phase, gt_size, use_flip, use_rot, uint8_crops):
        if phase not in ("train", "test"):
            raise KULNetError(f"phase={phase!r}: unknown dataset phase; use 'train' or 'test'")
        if phase == "train" and not gt_size:
            raise KULNetError(f"{root}: training crops need GT_size (e.g. {48 * scale} at x{scale}); set it")
        self.root = root
        self.texture_tries = 1
        self.scale, self.phase, self.gt_size = int(scale), phase, gt_size
        self.use_flip, self.use_rot, self.uint8_crops = use_flip, use_rot, uint8_crops

    def _check_sizes(self):
        """Report an image smaller than the crop now (from the headers), not hours into training."""
        for path in self.paths:
            hw = image_size(path)
            if hw is not None:
                self._check_crop_fits(path, *hw)

    def _check_crop_fits(self, name, h, w):
        message = crop_too_small(name, h, w, self.gt_size)
        if message:
            raise KULNetError(message)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        img, _ = read_image_raw(path)  # the crop is converted to float, not the whole photo (same values)
        if self.phase == "test":
            return {"hr": img2tensor(raw_to_float(mod_crop(img, self.scale)))[0], "path": path}
        return self._train_item(path, img.shape[0], img.shape[1], lambda top, left, size:
                                img[top : top + size, left : left + size])

    def _train_item(self, name, h, w, window):
        """The training item of an (h, w) image: a random window, augmented, as a tensor.

        Every source (image file, prepared LMDB) goes through here, so the same seed draws the same
        window and flips from each.

        Args:
            name (str): the image, for messages and the item's ``path``.
            window (callable): ``(top, left, size) -> (size, size, 3)`` RGB integer array (a view).
        """
        self._check_crop_fits(name, h, w)  # also when the header could not be read
        size = int(self.gt_size)
        rng = _item_rng()
        top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        if self.texture_tries > 1:
            tops = [top, *rng.integers(0, h - size + 1, self.texture_tries - 1)]
            lefts = [left, *rng.integers(0, w - size + 1, self.texture_tries - 1)]
            best = int(np.argmax([texture_score(window(t, x, size)) for t, x in zip(tops, lefts)]))
            top, left = tops[best], lefts[best]
        patch = augment(window(top, left, size), rng, self.use_flip, self.use_rot).transpose(2, 0, 1)
        if self.uint8_crops and patch.dtype == np.uint8:
            return {"hr": torch.from_numpy(np.ascontiguousarray(patch)), "path": name}
        return {"hr": torch.from_numpy(raw_to_float(patch)), "path": name}  # one copy, already (3, G, G)


def texture_score(img):
    """How much texture a window has: the mean absolute difference between neighbouring pixels of
    its channel mean, horizontally and vertically, relative to the image's value range.

    Args:
        img (np.ndarray): (H, W, C) integer image.

    Returns:
        float: >= 0; 0 for a flat window.
    """
    y = img.astype(np.float32).mean(axis=2)
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    return float((np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean()) / peak)


def crop_too_small(name, h, w, gt_size):
    """The message for an (h, w) image smaller than the training crop, or None when it fits."""
    if min(h, w) >= int(gt_size):
        return None
    return (f"{name}: image is {h}x{w}, smaller than the training crop GT_size={int(gt_size)}; "
            f"remove it or lower GT_size")
