"""Real photos as the authors restore them (``authors_real_photo.npz``): their border kernel, their
bordered network input, and the 8-bit image their script saves, for a colour and a grayscale photo
at x2, x3 and x4, with the weights of ``authors_forward.npz``."""
import os

import cv2
import numpy as np
import pytest
import torch
from _eval_helpers import run_script
from _fixture_compare import assert_matches_fixture, fixture_mismatch, record_near_ties

from data.lr_dataset import add_real_border, border_kernel, remove_real_border
from evaluation.inference import load_model, make_forward
from utils.image_io import img2tensor, read_image

SCALES = (2, 3, 4)
PHOTOS = ("rgb", "gray")


def _load(name):
    from conftest import REFERENCE_DIR

    path = os.path.join(REFERENCE_DIR, name)
    return dict(np.load(path))


@pytest.fixture(scope="module")
def real():
    return _load("authors_real_photo.npz")


@pytest.fixture(scope="module")
def photos(real, tmp_path_factory):
    """The fixture's photos written to PNG as given (uint8 BGR, and one gray plane)."""
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        cv2.imwrite(str(folder / f"{name}.png"), real[f"photo_{name}"])
    return folder


@pytest.fixture(scope="module")
def authors_checkpoints(tmp_path_factory):
    """The weights of ``authors_forward.npz`` saved as the authors' ``latest_G.pth`` (a bare
    state_dict), one per scale folder as their ``pretrained_models/x<s>/`` layout has them."""
    weights = _load("authors_forward.npz")
    state = {k[len("weight/"):]: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()
             if k.startswith("weight/")}
    root = tmp_path_factory.mktemp("authors")
    paths = {}
    for scale in SCALES:
        (root / f"x{scale}").mkdir()
        paths[scale] = root / f"x{scale}" / "latest_G.pth"
        torch.save(state, paths[scale])
    return paths


@pytest.mark.parametrize("scale", SCALES)
def test_border_kernel_and_bordered_input_equal_the_authors(real, photos, scale):
    assert np.abs(border_kernel(scale).numpy() - real[f"x{scale}/border_kernel"]).max() <= 1e-6
    for name in PHOTOS:
        lr = img2tensor(read_image(str(photos / f"{name}.png"))[0])  # as test_real.py reads it
        bordered, _ = add_real_border(lr, scale)
        diff = np.abs(bordered[0].numpy() - real[f"x{scale}/{name}/lr_bordered"]).max()
        assert diff <= 1e-6, f"x{scale} {name}: bordered input off by {diff:.3g}"


def our_near_ties(photo, checkpoint, scale, literal):
    """(H, W) near ties of the LSM step (:mod:`_fixture_compare`) where test_real.py restores ``photo``,
    from the same computation run here (the bordered input, the same path, the border cropped)."""
    opt = {"scale": scale, "kernel_size": 21, "checkpoint": str(checkpoint), "network_G": {}, "literal": literal}
    model, _ = load_model(opt, torch.device("cpu"))
    lr, border = add_real_border(img2tensor(read_image(str(photo))[0]), scale)
    with torch.inference_mode(), record_near_ties() as ties:
        make_forward(model, scale)(lr)
    return remove_real_border(torch.from_numpy(ties.band), border, scale)[0].numpy()


@pytest.mark.parametrize("literal", [True, False], ids=["literal", "default"])
@pytest.mark.parametrize("scale", SCALES)
def test_test_real_saves_the_authors_sr(real, photos, authors_checkpoints, tmp_path, scale, literal):
    """test_real.py with an authors' checkpoint on their photos saves their image, on the literal and
    the default path: every value within one level, but for a few isolated pixels where one of the
    LSM step's masks is within rounding of flipping (see :mod:`_fixture_compare`)."""
    out = tmp_path / "out"
    args = ["--input", photos, "--scale", scale, "--checkpoint", authors_checkpoints[scale], "--out", out,
            "--device", "cpu"] + (["--literal"] if literal else [])
    res = run_script("test_real.py", *args)
    assert res.returncode == 0, res.stderr[-2000:]
    for name in PHOTOS:
        ours = cv2.imread(str(out / f"{name}_SR.png"), cv2.IMREAD_UNCHANGED)
        theirs = real[f"x{scale}/{name}/sr"]
        assert ours.shape == theirs.shape and ours.dtype == np.uint8  # gray photos too: three channels
        if fixture_mismatch(ours, theirs, 1, channel_axis=2, ties=np.zeros(ours.shape[:2], bool)) is None:
            continue  # within one level everywhere: no need to look for near ties
        ties = our_near_ties(photos / f"{name}.png", authors_checkpoints[scale], scale, literal)
        assert_matches_fixture(ours, theirs, 1, f"x{scale} {name}", channel_axis=2, ties=ties)
