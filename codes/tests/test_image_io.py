"""Image reading/writing: formats, conversions and one-line errors naming the file."""
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from utils.errors import KULNetError
from utils.image_io import ImageInfo, image_size, img2tensor, list_images, mod_crop, read_image, tensor2img, write_image


def _rgb(h=12, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_list_images_sorted_and_ignores_other_files(tmp_path):
    for name in ["b.png", "a.JPG", "c.txt", "notes.md", "d.bmp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    names = [os.path.basename(p) for p in list_images(str(tmp_path))]
    assert names == ["a.JPG", "b.png", "d.bmp"]
    assert [os.path.basename(p) for p in list_images(str(tmp_path), recursive=True)][-1] == "e.png"


def test_list_images_missing_and_empty_folder(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(KULNetError, match="nope: no such folder"):
        list_images(missing)
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(KULNetError, match=f"{tmp_path}: no images found"):
        list_images(str(tmp_path))
    with pytest.raises(KULNetError, match="readme.txt: not a folder"):
        list_images(str(tmp_path / "readme.txt"))


def test_read_rgb_png_roundtrip(tmp_path):
    rgb = _rgb()
    path = str(tmp_path / "x.png")
    cv2.imwrite(path, rgb[:, :, ::-1])  # OpenCV writes BGR
    img, info = read_image(path)
    assert img.dtype == np.float32 and img.shape == (12, 10, 3) and img.flags.c_contiguous
    np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), rgb)
    assert info == ImageInfo(path=path)
    out = str(tmp_path / "deep" / "dir" / "y.png")
    write_image(out, img)
    np.testing.assert_array_equal(read_image(out)[0], img)
    write_image(out, rgb)  # uint8 input too
    np.testing.assert_array_equal(read_image(out)[0], img)


def test_read_grayscale(tmp_path):
    gray = _rgb()[:, :, 0]
    path = str(tmp_path / "g.png")
    cv2.imwrite(path, gray)
    img, info = read_image(path)
    assert info.was_grayscale and img.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_allclose(img[:, :, c], gray / 255.0, atol=1e-7)


def test_write_grayscale_keeps_gray(tmp_path):
    gray = _rgb()[:, :, 0]
    path = str(tmp_path / "g.png")
    write_image(path, np.repeat(gray[:, :, None], 3, 2), grayscale=True)
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2
    np.testing.assert_array_equal(raw, gray)


def test_read_rgba_drops_alpha(tmp_path):
    rgb = _rgb()
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, np.concatenate([rgb[:, :, ::-1], alpha], 2))
    img, info = read_image(path)
    assert info.had_alpha and not info.was_grayscale
    np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), rgb)


def test_read_16bit(tmp_path):
    rgb16 = np.random.default_rng(1).integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    path = str(tmp_path / "d.png")
    cv2.imwrite(path, rgb16[:, :, ::-1])
    img, info = read_image(path)
    assert info.bit_depth == 16
    np.testing.assert_allclose(img, rgb16 / 65535.0, atol=1e-6)


def test_read_palette(tmp_path):
    idx = np.random.default_rng(2).integers(0, 4, (8, 6), dtype=np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    im = Image.fromarray(idx, "P")
    im.putpalette(palette + [0] * (768 - len(palette)))
    path = str(tmp_path / "p.png")
    im.save(path)
    img, info = read_image(path)
    assert info.was_palette
    want = np.array(palette, np.uint8).reshape(4, 3)[idx]
    np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), want)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path, orientation):
    rgb = np.zeros((8, 16, 3), np.uint8)  # an asymmetric picture with flat blocks (JPEG-safe)
    rgb[:4, :8] = (250, 0, 0)
    rgb[4:, 8:] = (0, 0, 250)
    rgb[:4, 8:] = (0, 250, 0)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = orientation
    path = str(tmp_path / "e.jpg")
    im.save(path, quality=100, exif=exif.tobytes())
    img, info = read_image(path)
    with Image.open(path) as ref:
        want = np.asarray(ImageOps.exif_transpose(ref).convert("RGB"), np.float32) / 255.0
    assert info.orientation == orientation
    assert img.shape == want.shape and image_size(path) == img.shape[:2]
    np.testing.assert_allclose(img, want, atol=2 / 255)  # two JPEG decoders


def _truncate(path, keep):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_and_corrupt(tmp_path, ext):
    path = str(tmp_path / f"t{ext}")
    cv2.imwrite(path, np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    _truncate(path, 0.6)
    with pytest.raises(KULNetError, match=f"t{ext}: truncated or corrupt"):
        read_image(path)
    bad = str(tmp_path / f"garbage{ext}")
    open(bad, "wb").write(b"this is not an image at all" * 10 + (b"\xff\xd9" if ext == ".jpg" else b"IEND\xaeB`\x82"))
    with pytest.raises(KULNetError, match=f"garbage{ext}: cannot decode"):
        read_image(bad)
    empty = str(tmp_path / f"empty{ext}")
    open(empty, "wb").close()
    with pytest.raises(KULNetError, match=f"empty{ext}: empty file"):
        read_image(empty)


def test_jpeg_with_trailing_bytes_is_fine(tmp_path):
    path = str(tmp_path / "tail.jpg")
    cv2.imwrite(path, np.full((8, 8, 3), 128, np.uint8))
    with open(path, "ab") as f:
        f.write(b"vendor trailer data")
    img, _ = read_image(path)
    assert abs(img.mean() - 128 / 255) < 2 / 255


def test_missing_file():
    with pytest.raises(KULNetError, match="nothere.png: no such file"):
        read_image("/tmp/definitely/nothere.png")


def test_error_messages_are_one_line(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(KULNetError) as err:
        read_image(str(bad))
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_tensor_conversion_and_mod_crop():
    rgb = _rgb(13, 11)
    t = img2tensor(rgb / 255.0)
    assert t.shape == (1, 3, 13, 11) and t.dtype == torch.float32
    np.testing.assert_array_equal(tensor2img(t), rgb)
    np.testing.assert_array_equal(tensor2img(t[0]), rgb)
    assert tensor2img(torch.full((3, 2, 2), 1.7))[0, 0, 0] == 255
    assert tensor2img(torch.full((3, 2, 2), 0.5 / 255 + 1e-4))[0, 0, 0] == 1
    assert mod_crop(rgb, 4).shape == (12, 8, 3)
    np.testing.assert_array_equal(mod_crop(rgb, 4), rgb[:12, :8])
    assert mod_crop(t, 3).shape == (1, 3, 12, 9)
    assert mod_crop(rgb[:, :, 0], 2).shape == (12, 10)


def test_write_errors(tmp_path):
    with pytest.raises(KULNetError, match="x.xyz: unsupported image extension"):
        write_image(str(tmp_path / "x.xyz"), _rgb())
    with pytest.raises(KULNetError, match="y.png: cannot write an array of shape"):
        write_image(str(tmp_path / "y.png"), np.zeros((4, 4, 5)))


def test_read_shared_set5(shared_datasets):
    paths = list_images(os.path.join(shared_datasets, "Set5", "HR"))
    assert len(paths) == 5
    img, info = read_image(paths[0])
    assert img.ndim == 3 and img.shape[2] == 3 and 0 <= img.min() and img.max() <= 1
    assert info.bit_depth == 8


def test_alpha_is_reported_once(tmp_path, monkeypatch, caplog):
    import utils.image_io as image_io

    monkeypatch.setattr(image_io, "_told_alpha", False)
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, np.zeros((4, 4, 4), np.uint8))
    with caplog.at_level("WARNING", logger="kulnet"):
        read_image(path)
        read_image(path)
    msgs = [r.getMessage() for r in caplog.records if "alpha" in r.getMessage()]
    assert msgs == [f"{path}: has an alpha channel; it is dropped (this is said once per run)"]


def test_list_image_inputs_file_or_folder(tmp_path):
    from utils.image_io import list_image_inputs

    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [os.path.basename(p) for p in list_image_inputs(str(tmp_path))] == ["a.jpg", "b.png"]
    assert list_image_inputs(str(tmp_path / "b.png")) == [str(tmp_path / "b.png")]
    with pytest.raises(KULNetError, match="not an image file"):
        list_image_inputs(str(tmp_path / "notes.txt"))
    with pytest.raises(KULNetError, match="no such folder"):
        list_image_inputs(str(tmp_path / "missing"))
