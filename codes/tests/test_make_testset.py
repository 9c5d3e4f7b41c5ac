"""codes/scripts/make_testset.py: layout, determinism, and readability by PairedDataset."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from data import PairedDataset
from data.degradation import Degradation
from data.kernels import paper_kernels
from scripts.make_testset import kernel_png, main
from utils.errors import KULNetError
from utils.image_io import img2tensor, read_image, tensor2img


def _hr_folder(tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"b_img": (27, 30), "a_img": (25, 22)}.items():
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    gray = rng.integers(0, 256, (24, 26), dtype=np.uint8)
    cv2.imwrite(str(folder / "c_gray.jpg"), gray)
    (folder / "info.txt").write_text("ignored")
    return str(folder)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_paper_kernels_layout_and_paired_readback(tmp_path):
    hr = _hr_folder(tmp_path)
    out = str(tmp_path / "out")
    meta = main(["--hr", hr, "--scale", "4", "--out", out])
    names = ["a_img", "b_img", "c_gray"]
    assert meta["images"] == names and len(meta["kernels"]) == 9
    files = _files(out)
    assert "README.txt" in files and "meta.json" in files
    assert [f for f in files if f.startswith("HR")] == [f"HR/{n}.png" for n in names]
    for i in range(1, 10):
        assert f"kernel_{i:02d}/kernel.npy" in files and f"kernel_{i:02d}/kernel.png" in files
        assert [f for f in files if f.startswith(f"kernel_{i:02d}/LR")] == [f"kernel_{i:02d}/LR/{n}.png" for n in names]
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert meta["kernels"][2]["theta_radians"] == pytest.approx(30 / 180 * 3.14)

    want_kernels = paper_kernels(4)
    hr_img, _ = read_image(os.path.join(out, "HR", "a_img.png"))
    assert hr_img.shape == (24, 20, 3)  # mod-cropped from 25x22
    for i in (0, 5):
        folder = os.path.join(out, f"kernel_{i + 1:02d}")
        ds = PairedDataset(os.path.join(out, "HR"), os.path.join(folder, "LR"), 4, kernel_folder=folder)
        assert len(ds) == 3
        k = np.load(os.path.join(folder, "kernel.npy"))
        np.testing.assert_allclose(k, want_kernels[i].numpy(), atol=1e-7)
        for j in range(3):
            item = ds[j]
            fresh = Degradation(4, random_kernel=False, sig1=1.0, sig2=1.0, theta=0.0, random_noise=False)(
                item["hr"][None], kernel=want_kernels[i][None])
            np.testing.assert_array_equal(tensor2img(item["lr"]), tensor2img(fresh.lr))
            torch.testing.assert_close(item["kernel"], want_kernels[i], rtol=0, atol=1e-7)
    png = cv2.imread(os.path.join(out, "kernel_01", "kernel.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (210, 210) and png.max() == 255


def test_noise_deterministic_and_seeded(tmp_path):
    hr = _hr_folder(tmp_path)
    args = ["--hr", hr, "--scale", "2", "--noise", "10", "--sig1", "2.0", "--sig2", "1.0", "--theta", "10"]
    main(args + ["--out", str(tmp_path / "o1")])
    main(args + ["--out", str(tmp_path / "o2")])
    main(args + ["--out", str(tmp_path / "o3"), "--seed", "1"])
    read = lambda o: read_image(str(tmp_path / o / "kernel_01" / "LR" / "b_img.png"))[0]  # noqa: E731
    np.testing.assert_array_equal(read("o1"), read("o2"))
    assert not np.array_equal(read("o1"), read("o3"))
    # The noise is what a fresh generator seeded 0 draws for the images in sorted order.
    ds = PairedDataset(str(tmp_path / "o1" / "HR"), str(tmp_path / "o1" / "kernel_01" / "LR"), 2,
                       kernel_folder=str(tmp_path / "o1" / "kernel_01"))
    deg = Degradation(2, random_kernel=False, sig1=2.0, sig2=1.0, theta=10 / 180 * 3.14, random_noise=False,
                      noise=10.0)
    g = torch.Generator().manual_seed(0)
    for j in range(len(ds)):
        item = ds[j]
        fresh = deg(item["hr"][None], generator=g)
        np.testing.assert_array_equal(tensor2img(item["lr"]), tensor2img(fresh.lr))


def test_kernels_from_mat_and_npy(tmp_path):
    hr = _hr_folder(tmp_path)
    ks = paper_kernels(3)[:2].numpy().astype(np.float64) * 2.0  # un-normalised on purpose
    scipy.io.savemat(str(tmp_path / "k.mat"), {"kernel": ks[0]})
    np.save(tmp_path / "k.npy", ks)
    meta = main(["--hr", hr, "--scale", "3", "--out", str(tmp_path / "m"), "--kernels", str(tmp_path / "k.mat")])
    assert len(meta["kernels"]) == 1 and meta["kernels"][0]["normalised_sum"] == pytest.approx(2.0)
    np.testing.assert_allclose(np.load(tmp_path / "m" / "kernel_01" / "kernel.npy"), ks[0] / 2, atol=1e-7)
    meta = main(["--hr", hr, "--scale", "3", "--out", str(tmp_path / "n"), "--kernels", str(tmp_path / "k.npy")])
    assert [k["folder"] for k in meta["kernels"]] == ["kernel_01", "kernel_02"]
    ds = PairedDataset(str(tmp_path / "n" / "HR"), str(tmp_path / "n" / "kernel_02" / "LR"), 3,
                       kernel_folder=str(tmp_path / "n" / "kernel_02"))
    assert ds[0]["lr"].shape[1:] == (8, 7)


def test_kernel_png():
    k = np.zeros((3, 3))
    k[1, 1], k[0, 0] = 0.5, 0.25
    img = kernel_png(k)
    assert img.shape == (30, 30) and img[15, 15] == 255 and img[0, 0] == 128 and img[29, 29] == 0


def test_cli_errors_are_one_line(tmp_path, repo_root):
    script = os.path.join(repo_root, "codes", "scripts", "make_testset.py")
    missing = str(tmp_path / "nohr")
    res = subprocess.run([sys.executable, script, "--hr", missing, "--scale", "4", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=repo_root)
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {missing}: no such folder; check the path (relative paths start at the " \
                                 f"repository root)"
    hr = _hr_folder(tmp_path)
    with pytest.raises(KULNetError, match="same number of values") as err:  # in-process: one subprocess is enough
        main(["--hr", hr, "--scale", "4", "--out", str(tmp_path / "o"), "--sig1", "2", "--sig2", "1"])
    assert "\n" not in str(err.value)


def test_refuses_to_overwrite(tmp_path):
    hr = _hr_folder(tmp_path)
    args = ["--hr", hr, "--scale", "2", "--out", str(tmp_path / "o"), "--sig1", "1.5"]
    main(args)
    with pytest.raises(KULNetError, match="already holds a test set"):
        main(args)
    main(args + ["--overwrite"])


def test_shared_set5_x4(shared_datasets, tmp_path):
    out = str(tmp_path / "set5")
    main(["--hr", os.path.join(shared_datasets, "Set5", "HR"), "--scale", "4", "--out", out, "--sig1", "3.5",
          "--sig2", "1.5", "--theta", "30"])
    ds = PairedDataset(os.path.join(out, "HR"), os.path.join(out, "kernel_01", "LR"), 4,
                       kernel_folder=os.path.join(out, "kernel_01"))
    assert len(ds) == 5
    item = ds[0]
    assert item["hr"].shape[1] == 4 * item["lr"].shape[1] and item["kernel"].shape == (21, 21)
    torch.testing.assert_close(item["kernel"], paper_kernels(4)[2], rtol=0, atol=1e-7)


def test_spatially_variant_pattern_folder(tmp_path):
    from data.spatially_variant import authors_block_params, degrade_authors_sv

    hr = _hr_folder(tmp_path)
    out = tmp_path / "sv"
    meta = main(["--hr", hr, "--scale", "2", "--out", str(out), "--sv_mode", "5", "--noise", "5"])
    assert meta["kernels"] == [] and meta["spatially_variant"]["folder"] == "sv_mode5"
    files = _files(str(out))
    assert [f for f in files if f.startswith("sv_mode5")] == [
        f"sv_mode5/{kind}/{n}.{ext}" for kind, ext in (("LR", "png"), ("blocks", "npy"))
        for n in ("a_img", "b_img", "c_gray")]
    hr_img = read_image(str(out / "HR" / "b_img.png"))[0]  # 26x30, one block
    np.testing.assert_array_equal(np.load(out / "sv_mode5" / "blocks" / "b_img.npy"),
                                  authors_block_params(5, 26, 30, 2, seed=0))
    g = torch.Generator().manual_seed(0)
    lrs = {}
    for name in ("a_img", "b_img"):  # the noise is drawn for the images in sorted order
        img = img2tensor(read_image(str(out / "HR" / f"{name}.png"))[0])
        lrs[name] = degrade_authors_sv(img, 5, 2, noise=5, generator=g).lr
    written = img2tensor(read_image(str(out / "sv_mode5" / "LR" / "b_img.png"))[0])
    np.testing.assert_array_equal(tensor2img(written), tensor2img(lrs["b_img"]))
    assert hr_img.shape == (26, 30, 3) and "Spatially variant (--sv_mode 5)" in (out / "README.txt").read_text()
    with pytest.raises(KULNetError, match=r"--sv_mode 5: the pattern gives every block its kernel"):
        main(["--hr", hr, "--scale", "2", "--out", str(tmp_path / "x"), "--sv_mode", "5", "--sig1", "2"])
