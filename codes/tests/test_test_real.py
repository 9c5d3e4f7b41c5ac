"""test_real.py as a user runs it: good and bad inputs in one folder, outputs, no tracebacks."""
import cv2
import numpy as np
import pytest
from _eval_helpers import run_script, smooth_image, write_tiny_checkpoint, write_yaml

CAPTION_2, CAPTION_3 = 2 * 20 + 6, 3 * 20 + 6  # pixels of a figure's caption of two / three lines


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    ckpt = root / "rand.pth"
    net = write_tiny_checkpoint(ckpt)
    opt = write_yaml(root / "real.yml", {"checkpoint": str(ckpt), "network_G": net, "device": "cpu"})
    return root, opt


def _inputs(folder):
    folder.mkdir()
    cv2.imwrite(str(folder / "a_rgb.png"), smooth_image(20, 28, seed=1))
    cv2.imwrite(str(folder / "b_gray.png"), smooth_image(20, 24, seed=2, channels=1))
    rgba = np.dstack([smooth_image(16, 20, seed=3), np.full((16, 20), 200, np.uint8)])
    cv2.imwrite(str(folder / "c_rgba.png"), rgba)
    cv2.imwrite(str(folder / "d_16bit.png"), smooth_image(18, 18, seed=4).astype(np.uint16) * 257)
    (folder / "e_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    cv2.imwrite(str(folder / "f_tiny.png"), smooth_image(4, 6, seed=5))
    (folder / "notes.txt").write_text("not an image")


def test_bad_inputs_are_reported_and_the_rest_processed(tiny_setup, tmp_path):
    _, opt = tiny_setup
    _inputs(tmp_path / "in")
    out = tmp_path / "out"
    res = run_script("test_real.py", "-opt", opt, "--input", tmp_path / "in", "--out", out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert "4 of 6 image(s) restored" in res.stdout
    assert "skipped e_corrupt.png:" in res.stdout and "skipped f_tiny.png:" in res.stdout
    assert "too small" in res.stdout
    assert "b_gray.png: done" in res.stdout and "grayscale in, restored as three channels" in res.stdout
    assert "alpha channel dropped" in res.stdout and "16-bit in, 8-bit out" in res.stdout

    sizes = {"a_rgb": (20, 28), "b_gray": (20, 24), "c_rgba": (16, 20), "d_16bit": (18, 18)}
    for stem, (h, w) in sizes.items():
        sr = cv2.imread(str(out / f"{stem}_SR.png"), cv2.IMREAD_UNCHANGED)
        assert sr.shape[:2] == (4 * h, 4 * w)  # the section 8 border is cropped again
        assert sr.dtype == np.uint8
        assert sr.ndim == 3  # a grayscale photo too, as the authors save it
        k = np.load(out / f"{stem}_kernel.npy")
        assert k.shape == (21, 21) and k.dtype == np.float32
        assert abs(float(k.sum()) - 1) < 1e-4 and k.min() >= 0
        heat = cv2.imread(str(out / f"{stem}_uncertainty.png"))  # the map (SR size), a colour bar, a caption
        assert heat.shape[0] == 4 * h + CAPTION_2 and heat.shape[1] >= 4 * w + 20
        # the kernel at 16 pixels a tap with its scale bar and the three caption lines naming the grid
        assert cv2.imread(str(out / f"{stem}_kernel.png")).shape[0] == 21 * 16 + CAPTION_3
    for stem in ("e_corrupt", "f_tiny", "notes"):
        assert not list(out.glob(f"{stem}_*"))


def test_single_file_without_border_and_tiled(tiny_setup, tmp_path):
    _, opt = tiny_setup
    img = tmp_path / "one.png"
    cv2.imwrite(str(img), smooth_image(24, 40, seed=6))
    out = tmp_path / "out"
    res = run_script("test_real.py", "-opt", opt, "--input", img, "--out", out, "--no_border", "--tile", "16")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 of 1 image(s) restored" in res.stdout and "border off" in res.stdout
    assert cv2.imread(str(out / "one_SR.png")).shape == (96, 160, 3)


def test_nothing_restorable_and_missing_checkpoint_are_one_line_errors(tiny_setup, tmp_path):
    _, opt = tiny_setup
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"garbage")
    res = run_script("test_real.py", "-opt", opt, "--input", bad, "--out", tmp_path / "o")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "skipped x.png" in res.stdout

    res = run_script("test_real.py", "--input", bad, "--checkpoint", tmp_path / "none.pth")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and "none.pth: checkpoint not found" in line

    res = run_script("test_real.py")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "give -opt" in res.stderr


def test_output_stems_are_unique():
    from test_real import output_stems

    assert output_stems(["/x/a.png", "/y/b.jpg"]) == ["a", "b"]
    assert output_stems(["/x/a.png", "/x/a.jpg", "/x/b.png"]) == ["a_png", "a_jpg", "b"]
    assert output_stems(["A.png", "a.JPG"]) == ["A_png", "a_JPG"]  # case-insensitive file systems
    # a renamed stem that meets another input's own name gets a counter
    assert output_stems(["a.png", "a.jpg", "a_png.bmp"]) == ["a_png", "a_jpg", "a_png_2"]
    assert output_stems(["d1/a.png", "d2/a.png"]) == ["a_png", "a_png_2"]


def test_same_name_different_extension_do_not_overwrite(tiny_setup, tmp_path):
    _, opt = tiny_setup
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), smooth_image(16, 20, seed=7))
    cv2.imwrite(str(folder / "a.jpg"), smooth_image(20, 16, seed=8))
    cv2.imwrite(str(folder / "b.png"), smooth_image(16, 16, seed=9))
    out = tmp_path / "out"
    res = run_script("test_real.py", "-opt", opt, "--input", folder, "--out", out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 of 3 image(s) restored" in res.stdout and "outputs named a_png_* (name shared)" in res.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{stem}_{kind}" for stem in ("a_jpg", "a_png", "b")
                           for kind in ("SR.png", "kernel.npy", "kernel.png", "uncertainty.png"))
    assert cv2.imread(str(out / "a_png_SR.png")).shape == (64, 80, 3)
    assert cv2.imread(str(out / "a_jpg_SR.png")).shape == (80, 64, 3)


def test_border_and_tiling_together(tiny_setup, tmp_path):
    """Section 8 border on, tiles forced on a small photo: the script runs, the tiles are really used
    (on the bordered LR), the kernel is the whole photo's, and the cropped SR equals the untiled one
    when every tile's context covers the whole image (and is close with real tiles)."""
    import test_real
    import torch
    from _eval_helpers import tiny_model

    from data.lr_dataset import add_real_border
    from evaluation.inference import make_forward

    _, opt = tiny_setup
    img = tmp_path / "photo.png"
    cv2.imwrite(str(img), smooth_image(26, 34, seed=10))
    res = run_script("test_real.py", "-opt", opt, "--input", img, "--out", tmp_path / "cli", "--tile", "8")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 of 1 image(s) restored" in res.stdout and "border on" in res.stdout
    assert cv2.imread(str(tmp_path / "cli" / "photo_SR.png")).shape == (104, 136, 3)
    assert cv2.imread(str(tmp_path / "cli" / "photo_uncertainty.png")).shape[0] == 104 + CAPTION_2

    model = tiny_model(4, positive_thresholds=True)
    calls = []
    restore = model.restore
    model.restore = lambda lr, kernel: calls.append(tuple(lr.shape[-2:])) or restore(lr, kernel)
    bordered = add_real_border(torch.zeros(1, 3, 26, 34), 4)[0].shape[-2:]
    outs = {}
    with torch.inference_mode():
        for name, tile, overlap in (("untiled", None, 32), ("whole", 8, 64), ("tiles", 8, 16)):
            calls.clear()
            folder = tmp_path / name
            folder.mkdir()
            run_opt = {"scale": 4, "border": True, "out": str(folder)}
            forward = make_forward(model, 4, tile, overlap)
            test_real.restore_one(str(img), forward, run_opt, torch.device("cpu"))
            outs[name] = (cv2.imread(str(folder / "photo_SR.png")).astype(int),
                          np.load(folder / "photo_kernel.npy"))
            if tile is None:
                assert calls == [tuple(bordered)]
            else:  # 8x8 cores over the bordered 32x40 LR: 4 x 5 patches, each restored separately
                assert len(calls) == 20
                assert all(c == tuple(bordered) for c in calls) == (overlap == 64)
    ref_sr, ref_k = outs["untiled"]
    for name in ("whole", "tiles"):
        sr, k = outs[name]
        assert sr.shape == ref_sr.shape == (104, 136, 3)
        np.testing.assert_array_equal(k, ref_k)  # one kernel, estimated on the whole bordered photo
    assert np.abs(outs["whole"][0] - ref_sr).max() <= 1  # 8-bit rounding only
    # real tiles: not exact (utils/tiling.py); measured max 0.05/255 at this overlap, 3/255 at 8
    assert np.abs(outs["tiles"][0] - ref_sr).max() <= 1


def test_cudnn_autotuning_only_where_sizes_repeat(tmp_path):
    from test_real import sizes_repeat

    for name, (h, w) in (("a", (16, 20)), ("b", (16, 24)), ("c", (16, 20))):
        cv2.imwrite(str(tmp_path / f"{name}.png"), smooth_image(h, w, seed=1))
    a, b, c = (str(tmp_path / f"{n}.png") for n in "abc")
    assert not sizes_repeat([a, b])
    assert sizes_repeat([a, b, c])  # a and c share a size
    assert sizes_repeat([a], x8=True) and sizes_repeat([a], tile=64)
