"""The models shipped in pretrained/: the manifest matches the files, and each model still gives
the output it gave when it was shipped (a regression anchor for the weights and the inference path)."""
import json
import os

import pytest
import torch

from data.degradation import Degradation
from evaluation.metrics import calculate_psnr, kernel_psnr
from evaluation.protocol import build_kernels
from evaluation.results import sha256_file
from models.networks import define_G, load_network, read_checkpoint
from options.options import REPO_ROOT
from scripts.ship_model import SHIPPED_META
from utils.image_io import img2tensor, read_image, tensor2img

PRETRAINED = os.path.join(REPO_ROOT, "pretrained")

# Set5 img_003, top-left crop of 128 // scale * scale pixels (128 at x2/x4, 126 at x3), the protocol's
# first kernel for the scale (2.0, 0.5, 0 deg at every scale), noise 0, the shipped model's literal
# network in float32 on the CPU (the LSM step as the authors compute it): scale -> (sha256, PSNR_Y,
# kernel PSNR).
REFERENCE_OUTPUTS = {
    4: ("c677182034b8af451f210a751d4f266bb82f144583274f881e5c4091b2fe0f8c", 23.4289, 42.4119),
    2: ("363461753e69da4f1aed4220eac40922a294fc9f0f20999d233b57a5e6ed3913", 28.1300, 43.8957),
    3: ("eb350b51d44a890f5b201ab4790f690f8ef69db6ff8827776fe314d4df683f2a", 24.6094, 44.4547),
}


def _manifest():
    with open(os.path.join(PRETRAINED, "manifest.json"), encoding="utf-8") as handle:
        return json.load(handle)["files"]


def test_manifest_describes_each_shipped_file():
    files = _manifest()
    assert {"KULNet_x4.pth", "KULNet_x2.pth", "KULNet_x3.pth"} <= set(files)  # every scale of the paper
    on_disk = sorted(n for n in os.listdir(PRETRAINED) if n.endswith(".pth"))
    assert on_disk == sorted(files)
    for name, entry in files.items():
        path = os.path.join(PRETRAINED, name)
        assert sha256_file(path) == entry["sha256"] and os.path.getsize(path) == entry["bytes"]
        fmt, params, meta = read_checkpoint(path)
        assert {t.dtype for t in params.values() if t.is_floating_point()} == {torch.float16}
        # the metadata names nothing of the machine or the run it was trained in (the hardware is in the manifest)
        assert set(meta) <= set(SHIPPED_META) and meta["runs"] == len(entry["runs"])
        assert name == f"KULNet_x{entry['scale']}.pth" == f"KULNet_x{meta['scale']}.pth"
        assert meta["iteration"] == entry["iterations"] == sum(r["iterations"] for r in entry["runs"])
        assert entry["train_seconds"] == pytest.approx(sum(r["seconds"] for r in entry["runs"]), abs=0.1)
        check = entry["float16_check"]
        assert abs(check["psnr_y_float16"] - check["psnr_y_float32"]) < 0.01 == check["limit_db"]
        rows = {(r["dataset"], r["noise"]): r for r in entry["results"]}
        assert {("Set5", 0.0), ("Set14", 0.0)} <= set(rows)
        if entry["scale"] == 4:
            assert {("Set5", 10.0), ("Set14", 10.0)} <= set(rows)
        margin_db = 2 if entry["scale"] == 2 else 3  # bicubic loses less at x2 (x2 Set14: +2.6 dB)
        for row in rows.values():
            assert row["kulnet"]["psnr_y"] > row["bicubic"]["psnr_y"] + margin_db


@pytest.mark.parametrize("scale", sorted(REFERENCE_OUTPUTS))
def test_shipped_model_reproduces_its_reference_output(shared_datasets, scale):
    path = os.path.join(PRETRAINED, f"KULNet_x{scale}.pth")
    sha256, psnr_y, kernel_psnr_db = REFERENCE_OUTPUTS[scale]
    if sha256_file(path) != sha256:
        pytest.fail(f"pretrained/KULNet_x{scale}.pth changed: measure its new reference output and "
                    f"update REFERENCE_OUTPUTS[{scale}] in this test")
    net = define_G({"scale": scale}).eval()
    load_network(net, path, strict=True, expected_scale=scale)
    crop = 128 // scale * scale
    hr = img2tensor(read_image(os.path.join(shared_datasets, "Set5", "HR", "img_003.png"))[0][:crop, :crop])
    kernel = build_kernels({"scale": scale, "kernel_size": 21, "kernels": "paper"})[0].kernel[None]
    batch = Degradation(scale, 21, random_noise=False, noise=0)(hr, kernel=kernel)
    with torch.no_grad():
        out = net(batch.lr)
    psnr = calculate_psnr(tensor2img(out.sr), tensor2img(hr), scale)
    k_psnr = kernel_psnr(out.kernel[0], kernel[0])
    print(f"x{scale}: PSNR_Y {psnr:.4f} dB, kernel PSNR {k_psnr:.4f} dB")
    assert psnr == pytest.approx(psnr_y, abs=0.005)
    assert k_psnr == pytest.approx(kernel_psnr_db, abs=0.005)


def test_option_files_and_the_manifest_name_no_machine_they_ran_on():
    """What ships says the hardware (in the manifest's runs), never a machine's paths or a run's name."""
    import glob
    import re

    paths = glob.glob(os.path.join(REPO_ROOT, "options", "**", "*.yml"), recursive=True)
    paths += [os.path.join(PRETRAINED, "manifest.json"), os.path.join(PRETRAINED, "MANIFEST.md")]
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        machine = r"(?<![\w.])/(home|root|tmp|work|mnt|Users)/|[A-Z]:\\\\|\bsessions?\b|hostname"
        assert not re.search(machine, text), path
