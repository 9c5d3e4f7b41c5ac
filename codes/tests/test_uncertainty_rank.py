"""scripts/uncertainty_rank.py: the edge map's closed form, the rank correlations' limits, and a run on a
tiny checkpoint."""
import json

import cv2
import pytest
import torch
from _eval_helpers import run_script, smooth_image, write_tiny_checkpoint

from scripts.uncertainty_rank import edge_map, rank_correlations


def test_edge_map_of_a_step():
    lr = torch.zeros(1, 3, 6, 8)
    lr[..., 4:] = 1.0  # a vertical step between columns 3 and 4
    edges = edge_map(lr)[0]
    assert torch.equal(edges[:, 3], torch.full((6,), 4.0)) and torch.equal(edges[:, 4], torch.full((6,), 4.0))
    assert edges[:, [0, 1, 2, 5, 6, 7]].abs().max().item() == 0.0


def test_rank_correlations_limits():
    ramp = torch.arange(20.0).view(1, 4, 5)
    maps = {"uncertainty": ramp, "edges": -ramp, "kernel_error": ramp ** 3, "sr_error": torch.ones(1, 4, 5)}
    rho = rank_correlations(maps)
    assert rho["uncertainty~kernel_error"] == [pytest.approx(1.0)]  # ranks only: any increasing map scores 1
    assert rho["edges~kernel_error"] == [pytest.approx(-1.0)]
    assert rho["uncertainty~sr_error"] == [0.0]  # a constant error has no ranks: 0, not NaN


def test_script_on_a_tiny_checkpoint(tmp_path):
    hr = tmp_path / "HR"
    hr.mkdir()
    for i in range(2):
        cv2.imwrite(str(hr / f"{i}.png"), smooth_image(32, 40, seed=i))
    write_tiny_checkpoint(str(tmp_path / "x4.pth"), scale=4)
    out = run_script("scripts/uncertainty_rank.py", "--checkpoint", str(tmp_path / "x4.pth"), "--scale", "4",
                     "--hr", str(hr), "--json", str(tmp_path / "u.json"))
    assert out.returncode == 0, out.stderr[-2000:]
    means = json.load(open(tmp_path / "u.json"))["means"]
    assert set(means) == {f"{m}~{e}" for m in ("uncertainty", "edges") for e in ("kernel_error", "sr_error")}
    assert all(-1 <= v <= 1 for v in means.values())
    folder = run_script("scripts/uncertainty_rank.py", "--checkpoint", str(tmp_path / "x4.pth"), "--scale", "4",
                        "--hr", str(hr), "--json", str(tmp_path))
    assert folder.returncode == 2 and "a folder" in folder.stderr and "Traceback" not in folder.stderr
