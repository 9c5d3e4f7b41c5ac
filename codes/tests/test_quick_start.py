"""The quick start: ``python codes/test.py`` with no arguments runs the quick demo, the same work on any
device, and the README's table is what it prints today (the record of codes/benchmarks/quick_start.py
is of today's demo options and shipped model, and one of its cells is recomputed here)."""
import importlib.util
import json
import os

import pytest
import torch

from evaluation.evaluator import Evaluator
from evaluation.inference import load_model, make_forward
from evaluation.protocol import build_hr_sets, build_kernels
from evaluation.results import paper_table, sha256_file
from options.options import REPO_ROOT, read_yaml

RECORD = os.path.join(REPO_ROOT, "codes", "benchmarks", "results", "quick_start_cpu.json")
DEMO = os.path.join(REPO_ROOT, "options", "test", "test_demo.yml")


def _test_script():
    """codes/test.py as a module (its name would otherwise be the standard library's test package)."""
    spec = importlib.util.spec_from_file_location("kulnet_test_script", os.path.join(REPO_ROOT, "codes", "test.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def record():
    with open(RECORD, encoding="utf-8") as handle:
        return json.load(handle)


def test_the_default_options_are_the_quick_demo_and_the_full_one_is_an_option_file_away():
    test_script = _test_script()
    opt, _, _ = test_script.build_options(test_script.parse_args([]))
    assert test_script.DEMO_OPTIONS == DEMO and opt["name"] == "KULNet_x4_demo"
    # the same work on a CPU and a GPU: fp32, no tiles, no self-ensemble, a fixed seed, fixed crops
    assert (opt["precision"], opt["tile"], opt["x8"], opt["seed"]) == ("fp32", None, False, 0)
    (dataset,) = opt["datasets"]
    assert len(dataset["skimage"]) * 9 <= 27 and dataset["center_crop"] == 128 and opt["noise"] == [0.0]
    full = read_yaml(os.path.join(REPO_ROOT, "options", "test", "test_demo_full.yml"))
    assert len(full["datasets"][0]["skimage"]) == 6 and full["datasets"][0]["center_crop"] == 256


def test_the_record_is_of_todays_demo_and_model(record):
    assert record["demo_options"] == read_yaml(DEMO)
    assert record["checkpoint_sha256"] == sha256_file(os.path.join(REPO_ROOT, "pretrained", "KULNet_x4.pth"))
    assert record["table"] == paper_table(record["summary"], 4)
    assert "| skimage | SR part given the true kernel |" in record["table"]
    assert len(record["rows"]) == 9 * len(record["demo_options"]["datasets"][0]["skimage"])


def test_one_cell_of_the_record_recomputed(record):
    """The first photograph under the first kernel, as test.py runs it on the CPU: the record's numbers."""
    test_script = _test_script()
    opt, _, _ = test_script.build_options(test_script.parse_args(["--device", "cpu"]))
    device = torch.device("cpu")
    model, _ = load_model(opt, device)
    forward = make_forward(model, opt["scale"], opt["tile"], opt["tile_overlap"], opt["x8"], opt["precision"])
    hr_set = build_hr_sets(opt["datasets"])[0]
    hr_set.items = hr_set.items[:1]
    evaluator = Evaluator(forward, opt["scale"], opt["kernel_size"], opt["crop_border"], opt["seed"], device,
                          {}, log=lambda line: None)
    with torch.inference_mode():
        (row,) = evaluator.run([hr_set], build_kernels(opt)[:1], opt["noise"])
    expected = next(r for r in record["rows"] if r["image"] == row["image"] and r["kernel"] == row["kernel"])
    assert row["psnr_y"] == pytest.approx(expected["psnr_y"], abs=0.005)
    assert row["ssim_y"] == pytest.approx(expected["ssim_y"], abs=5e-5)
    assert row["kernel_psnr"] == pytest.approx(expected["kernel_psnr"], abs=0.005)
