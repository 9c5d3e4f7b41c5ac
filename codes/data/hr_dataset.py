"""HR-only dataset: random augmented crops for training, mod-cropped full images for testing.

The LR images are synthesised from these HR images on the fly, on whole batches
(:class:`data.degradation.Degradation`), as in the paper (KULNET.md §5-§6).
"""
import numpy as np
import torch
from torch.utils.data import Dataset

from utils.errors import KULNetError
from utils.image_io import image_size, img2tensor, list_images, mod_crop, raw_to_float, read_image, read_image_raw


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

    Items:
        dict: ``hr`` Tensor (3, gt_size, gt_size) [train] or (3, H', W') [test], float32 in [0, 1];
        ``path`` str.
    """

    def __init__(self, folder, scale, phase="train", gt_size=None, use_flip=True, use_rot=True):
        if phase not in ("train", "test"):
            raise KULNetError(f"phase={phase!r}: unknown dataset phase; use 'train' or 'test'")
        if phase == "train" and not gt_size:
            raise KULNetError(f"{folder}: training crops need GT_size (e.g. {48 * scale} at x{scale}); set it")
        self.paths = list_images(folder)
        self.scale, self.phase, self.gt_size = int(scale), phase, gt_size
        self.use_flip, self.use_rot = use_flip, use_rot
        if phase == "train":
            self._check_sizes()

    def _check_sizes(self):
        """Report an image smaller than the crop now (from the headers), not hours into training."""
        for path in self.paths:
            hw = image_size(path)
            if hw is not None:
                self._check_crop_fits(path, *hw)

    def _check_crop_fits(self, path, h, w):
        if min(h, w) < int(self.gt_size):
            raise KULNetError(f"{path}: image is {h}x{w}, smaller than the training crop "
                              f"GT_size={int(self.gt_size)}; remove it or lower GT_size")

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        if self.phase == "test":
            img, _ = read_image(path)
            return {"hr": img2tensor(mod_crop(img, self.scale))[0], "path": path}
        img, _ = read_image_raw(path)  # the crop is converted to float, not the whole photo (same values)
        size = int(self.gt_size)
        h, w = img.shape[:2]
        self._check_crop_fits(path, h, w)  # also when the header could not be read
        rng = _item_rng()
        top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        patch = augment(img[top : top + size, left : left + size], rng, self.use_flip, self.use_rot)
        return {"hr": img2tensor(raw_to_float(patch))[0], "path": path}
