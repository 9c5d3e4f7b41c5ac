"""HR / LR / paired datasets, the real-image border and the data loaders."""
import os

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from scipy import ndimage

from data import DATASETS, HRDataset, LRDataset, PairedDataset, create_dataloader, create_dataset
from data.lr_dataset import add_real_border, border_width, remove_real_border
from utils.errors import KULNetError


def _write(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def hr_folder(tmp_path):
    folder = tmp_path / "hr"
    for i, (h, w) in enumerate([(22, 25), (21, 30), (26, 23)]):
        _write(str(folder / f"img_{i}.png"), _rgb(h, w, i))
    (folder / "notes.txt").write_text("not an image")
    return str(folder)


def _dihedral(x):
    """The 8 flips/rotations of an (H, W, C) array."""
    outs = []
    for t in (x, x.transpose(1, 0, 2)):
        outs += [t, t[::-1], t[:, ::-1], t[::-1, ::-1]]
    return outs


def test_hr_train_crop_is_an_augmented_window(hr_folder):
    ds = HRDataset(hr_folder, 2, phase="train", gt_size=8)
    assert len(ds) == 3
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["hr"].shape == (3, 8, 8) and item["hr"].dtype == torch.float32
        img = cv2.imread(item["path"])[:, :, ::-1].astype(np.float32) / 255.0
        crop = item["hr"].numpy().transpose(1, 2, 0)
        h, w = img.shape[:2]
        found = any(np.array_equal(crop, t) for r in range(h - 7) for c in range(w - 7)
                    for t in _dihedral(img[r:r + 8, c:c + 8]))
        assert found


def test_hr_train_reproducible_under_seed(hr_folder):
    ds = HRDataset(hr_folder, 2, phase="train", gt_size=8)
    torch.manual_seed(3)
    first = [ds[i]["hr"] for i in range(3)]
    torch.manual_seed(3)
    again = [ds[i]["hr"] for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    torch.manual_seed(4)
    other = [ds[i]["hr"] for i in range(3)]
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_dataloader_with_workers_reproducible(hr_folder):
    opt = {"mode": "HR", "phase": "train", "dataroot_GT": hr_folder, "scale": 2, "GT_size": 8,
           "n_workers": 2, "batch_size": 2}
    ds = create_dataset(opt)

    def run():
        torch.manual_seed(7)
        return [b["hr"] for b in create_dataloader(ds, opt, "train")]

    first, again = run(), run()
    assert len(first) == 1 and first[0].shape == (2, 3, 8, 8)  # drop_last with 3 images, batch 2
    assert torch.equal(first[0], again[0])


def test_hr_errors(hr_folder, tmp_path):
    # reported when the dataset is built (image headers), not when the sampler reaches the image
    with pytest.raises(KULNetError, match="img_0.png: image is 22x25, smaller than the training crop GT_size=24"):
        HRDataset(hr_folder, 2, phase="train", gt_size=24)
    with pytest.raises(KULNetError, match="GT_size"):
        HRDataset(hr_folder, 2, phase="train")
    with pytest.raises(KULNetError, match="no such folder"):
        HRDataset(str(tmp_path / "missing"), 2, phase="test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KULNetError, match="empty: no images found"):
        HRDataset(str(tmp_path / "empty"), 2, phase="test")


def test_hr_test_mod_crop(hr_folder):
    ds = HRDataset(hr_folder, 4, phase="test")
    shapes = [tuple(ds[i]["hr"].shape) for i in range(3)]
    assert shapes == [(3, 20, 24), (3, 20, 28), (3, 24, 20)]
    img = cv2.imread(ds.paths[0])[:, :, ::-1].astype(np.float32) / 255.0
    np.testing.assert_array_equal(ds[0]["hr"].numpy().transpose(1, 2, 0), img[:20, :24])


def test_border_widths():
    assert [border_width(s) for s in (2, 3, 4)] == [11, 6, 3]
    assert border_width(5) == 3 and border_width(8) == 2  # smallest c with 2cs > 21


def _slow_border(lr, scale):
    """Reference: numpy/scipy, one image (h, w, 3) -> (h + 2c, w + 2c, 3)."""
    c = border_width(scale)
    up = np.repeat(np.repeat(lr, scale, 0), scale, 1)
    up = np.pad(up, ((c * scale,) * 2, (c * scale,) * 2, (0, 0)), mode="edge")
    size = 21 - scale + 1  # the authors' shifted grid, placed top-left in 21x21
    ax = np.arange(size) - (size / 2 - 0.5)
    g = np.zeros((21, 21))
    g[:size, :size] = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / 200.0)
    g /= g.sum()
    blurred = np.stack([ndimage.correlate(up[..., ch], g, mode="constant", cval=0.0) for ch in range(3)], -1)
    out = blurred[::scale, ::scale].copy()
    out[c:c + lr.shape[0], c:c + lr.shape[1]] = lr
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_add_real_border_matches_reference_and_is_batched(scale):
    imgs = [_rgb(7, 9, s).astype(np.float64) / 255.0 for s in (0, 1)]
    batch = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
    out, c = add_real_border(batch, scale)
    assert c == border_width(scale) and out.shape == (2, 3, 7 + 2 * c, 9 + 2 * c) and out.dtype == torch.float64
    for i, img in enumerate(imgs):
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), _slow_border(img, scale), atol=1e-12)
        single, _ = add_real_border(batch[i:i + 1], scale)
        torch.testing.assert_close(single[0], out[i], rtol=0, atol=1e-12)
    sr = torch.zeros(2, 3, out.shape[2] * scale, out.shape[3] * scale)
    assert remove_real_border(sr, c, scale).shape == (2, 3, 7 * scale, 9 * scale)


def test_lr_dataset_folder_file_and_loader(hr_folder):
    ds = LRDataset(hr_folder, 4)
    item = ds[1]
    assert item["border"] == 3 and item["lr"].shape == (3, 21 + 6, 30 + 6)
    img = cv2.imread(ds.paths[1])[:, :, ::-1].astype(np.float32) / 255.0
    np.testing.assert_array_equal(item["lr"][:, 3:-3, 3:-3].numpy().transpose(1, 2, 0), img)
    assert item["info"]["path"] == ds.paths[1] and item["info"]["was_grayscale"] is False
    plain = LRDataset(ds.paths[0], 4, add_border=False)
    assert len(plain) == 1 and plain[0]["border"] == 0 and plain[0]["lr"].shape == (3, 22, 25)
    loader = create_dataloader(create_dataset({"mode": "LR", "dataroot_LQ": hr_folder, "scale": 4}), {}, "test")
    batches = list(loader)
    assert len(batches) == 3 and batches[0]["lr"].shape == (1, 3, 28, 31)
    assert batches[0]["path"] == [ds.paths[0]]


def _paired_folders(tmp_path, scale=2, n=2, lr_sizes=None):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    for i in range(n):
        h, w = 12 + 2 * i, 14
        _write(str(hr / f"im_{i}.png"), _rgb(h, w, i))
        lh, lw = lr_sizes[i] if lr_sizes else (h // scale, w // scale)
        _write(str(lr / f"im_{i}_lr.png"), _rgb(lh, lw, 10 + i))
    return str(hr), str(lr)


def test_paired_dataset_and_kernels(tmp_path):
    hr, lr = _paired_folders(tmp_path, scale=2, n=2)
    ds = PairedDataset(hr, lr, 2)
    item = ds[1]
    assert item["hr"].shape == (3, 14, 14) and item["lr"].shape == (3, 7, 7) and "kernel" not in item
    assert item["path"].endswith("im_1_lr.png") and item["hr_path"].endswith("im_1.png")

    kernels = np.random.default_rng(0).random((2, 5, 5)).astype(np.float32)
    kdir = tmp_path / "k"
    kdir.mkdir()
    np.save(kdir / "k_0.npy", kernels[0])
    scipy.io.savemat(str(kdir / "k_1.mat"), {"name": "x", "Kernel": kernels[1].astype(np.float64)})
    (kdir / "readme.txt").write_text("ignored")
    ds = PairedDataset(hr, lr, 2, kernel_folder=str(kdir))
    np.testing.assert_array_equal(ds[0]["kernel"].numpy(), kernels[0])
    np.testing.assert_allclose(ds[1]["kernel"].numpy(), kernels[1])

    np.save(tmp_path / "stack.npy", kernels)
    ds = PairedDataset(hr, lr, 2, kernel_folder=str(tmp_path / "stack.npy"))
    np.testing.assert_array_equal(ds[1]["kernel"].numpy(), kernels[1])
    one = tmp_path / "one"
    one.mkdir()
    np.save(one / "kernel.npy", kernels[0])
    ds = PairedDataset(hr, lr, 2, kernel_folder=str(one))
    assert torch.equal(ds[0]["kernel"], ds[1]["kernel"])

    np.save(tmp_path / "three.npy", np.concatenate([kernels, kernels[:1]]))
    with pytest.raises(KULNetError, match="three.npy: holds 3 kernels but there are 2 images"):
        PairedDataset(hr, lr, 2, kernel_folder=str(tmp_path / "three.npy"))
    np.save(kdir / "k_2.npy", kernels[0])
    with pytest.raises(KULNetError, match="k: 3 kernel files but 2 images"):
        PairedDataset(hr, lr, 2, kernel_folder=str(kdir))
    (tmp_path / "bad.mat").write_bytes(b"not a mat file")
    with pytest.raises(KULNetError, match="bad.mat: cannot read the kernel"):
        PairedDataset(hr, lr, 2, kernel_folder=str(tmp_path / "bad.mat"))


def test_paired_count_and_size_mismatch(tmp_path):
    hr, lr = _paired_folders(tmp_path / "a", scale=2, n=2)
    os.remove(os.path.join(lr, "im_1_lr.png"))
    with pytest.raises(KULNetError, match="LR: 1 LR images but .*HR has 2 HR images"):
        PairedDataset(hr, lr, 2)
    hr, lr = _paired_folders(tmp_path / "b", scale=2, n=2, lr_sizes=[(6, 7), (6, 7)])
    with pytest.raises(KULNetError, match="im_1_lr.png: LR is 6x7 but HR im_1.png is 14x14, which needs 7x7 at x2"):
        PairedDataset(hr, lr, 2)
    hr, lr = _paired_folders(tmp_path / "c", scale=2, n=1)
    with pytest.raises(KULNetError, match="im_0_lr.png: LR is 6x7 but HR im_0.png is 12x14, which needs 4x4 at x3"):
        PairedDataset(hr, lr, 3)


def test_create_dataset_modes_and_errors(hr_folder):
    assert set(DATASETS) == {"HR", "LR", "paired"}
    ds = create_dataset({"mode": "HR", "phase": "val", "dataroot_GT": hr_folder, "scale": 2})
    assert isinstance(ds, HRDataset) and ds.phase == "test"
    loader = create_dataloader(ds, {"batch_size": 16, "n_workers": 4}, "val")
    assert loader.batch_size == 1 and loader.num_workers == 0
    with pytest.raises(KULNetError, match="mode='SR': unknown dataset mode"):
        create_dataset({"mode": "SR", "name": "train"})
    with pytest.raises(KULNetError, match="datasets.val.dataroot_GT: missing"):
        create_dataset({"mode": "HR", "phase": "val", "scale": 2})
    opt = {"mode": "HR", "phase": "train", "dataroot_GT": hr_folder, "scale": 2, "GT_size": 8, "batch_size": 3,
           "n_workers": 0}
    loader = create_dataloader(create_dataset(opt), opt, "train")
    assert loader.drop_last and loader.batch_size == 3
    assert next(iter(loader))["hr"].shape == (3, 3, 8, 8)


def test_shared_set5_test_phase(shared_datasets):
    ds = HRDataset(os.path.join(shared_datasets, "Set5", "HR"), 4, phase="test")
    assert len(ds) == 5
    for i in range(len(ds)):
        _, h, w = ds[i]["hr"].shape
        assert h % 4 == 0 and w % 4 == 0 and h >= 200


def test_hr_train_crop_converts_only_the_crop_with_the_same_values(tmp_path):
    """The training crop is taken from the file's integers and then converted to float: it must be
    bit-identical to cropping the whole image converted first (8/16-bit, gray, RGBA)."""
    from data.hr_dataset import _item_rng, augment
    from utils.image_io import read_image

    rng = np.random.default_rng(5)
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_rgb8.png"), rng.integers(0, 256, (40, 37, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "b_rgb16.png"), rng.integers(0, 65536, (33, 45, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "c_gray.png"), rng.integers(0, 256, (36, 36), dtype=np.uint8))
    cv2.imwrite(str(folder / "d_rgba.png"), rng.integers(0, 256, (35, 41, 4), dtype=np.uint8))
    ds = HRDataset(str(folder), 2, phase="train", gt_size=16)
    for i in range(len(ds)):
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            item = ds[i]["hr"]
            torch.manual_seed(seed)  # the old route: the whole image in float, then the crop
            img, _ = read_image(ds.paths[i])
            r = _item_rng()
            top, left = r.integers(0, img.shape[0] - 15), r.integers(0, img.shape[1] - 15)
            patch = augment(img[top:top + 16, left:left + 16], r)
            ref = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))
            assert item.dtype == torch.float32 and torch.equal(item, ref), ds.paths[i]
