"""The kernel response: 0 for an estimator that does not follow the blur, 1 for one that does, and
its place in the protocol's results beside a constant guess."""
import numpy as np
import pytest
import torch

from data.kernels import anisotropic_gaussian_kernels, paper_kernels
from evaluation.kernel_response import MOMENTS, kernel_gain, kernel_moments, kernel_response, mean_gain, mean_response


def test_moments_of_a_gaussian_are_its_variances_and_centre():
    """sig1/sig2 are variances (the authors' quirk): theta 0 gives var_x = sig1, var_y = sig2, cov 0;
    90 degrees swaps them; the centre is that of the top-left l' x l' grid."""
    k = anisotropic_gaussian_kernels(torch.tensor([2.0, 2.0]), torch.tensor([0.5, 0.5]),
                                     torch.tensor([0.0, np.pi / 2]), 21, 4, dtype=torch.float64)
    m = kernel_moments(k)  # sampled on the integer grid: a variance of 0.5 comes out 0.501
    np.testing.assert_allclose(m[0], [8.5, 8.5, 0.5, 2.0, 0.0], atol=2e-3)
    np.testing.assert_allclose(m[1], [8.5, 8.5, 2.0, 0.5, 0.0], atol=2e-3)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_true_kernels_score_one_constant_zero_shifted_one(scale):
    true = kernel_moments(paper_kernels(scale))
    assert kernel_response(true, true) == pytest.approx(1.0)
    constant = np.repeat(kernel_moments(paper_kernels(scale).mean(0, keepdim=True)), 9, axis=0)
    assert kernel_response(constant, true) == 0.0
    shifted = kernel_moments(torch.roll(paper_kernels(scale), shifts=(1, 2), dims=(-2, -1)))
    assert kernel_response(shifted, true) == pytest.approx(1.0)
    wider = true.copy()
    wider[:, 2:4] += 1.5  # blurrier by the same amount everywhere: still follows the blur
    assert kernel_response(wider, true) == pytest.approx(1.0)
    noise = np.random.default_rng(0).normal(0, 0.01, true.shape)
    assert abs(kernel_response(constant + noise, true)) < 0.5  # almost constant: no systematic response


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_gain_is_one_for_the_true_kernels_zero_for_a_constant_and_sees_how_far_the_estimate_moves(scale):
    """The gain measures what the response (a correlation) cannot: an estimate that moves the right way
    but a tenth as far has a response of 1 and a gain of 0.1."""
    true = kernel_moments(paper_kernels(scale))
    assert kernel_gain(true, true) == pytest.approx(1.0)
    constant = np.repeat(kernel_moments(paper_kernels(scale).mean(0, keepdim=True)), 9, axis=0)
    assert kernel_gain(constant, true) == pytest.approx(0.0, abs=1e-12)
    shifted = kernel_moments(torch.roll(paper_kernels(scale), shifts=(1, 2), dims=(-2, -1)))
    assert kernel_gain(shifted, true) == pytest.approx(1.0, abs=1e-4)  # the roll wraps a trace of mass
    timid = constant + 0.1 * (true - true.mean(axis=0))  # moves a tenth of the way, in the right direction
    assert kernel_response(timid, true) == pytest.approx(1.0)
    assert kernel_gain(timid, true) == pytest.approx(0.1)
    opposite = constant - 0.5 * (true - true.mean(axis=0))
    assert kernel_gain(opposite, true) == pytest.approx(-0.5)
    assert np.isnan(kernel_gain(true, np.repeat(true[:1], 9, axis=0)))  # true kernels all alike


def test_an_estimate_that_shrinks_as_the_blur_grows_scores_below_zero():
    true = kernel_moments(paper_kernels(4))
    opposite = true.copy()
    opposite[:, 2:] = -true[:, 2:]
    assert kernel_response(opposite, true) == pytest.approx(-1.0)


def test_mean_response_averages_the_images():
    true = kernel_moments(paper_kernels(4))
    rows = []
    for image, est in (("a", true), ("b", np.repeat(true[:1], 9, axis=0))):
        for e, t in zip(est, true):
            rows.append({"image": image, **{f"kernel_{m}": v for m, v in zip(MOMENTS, e)},
                         **{f"true_{m}": v for m, v in zip(MOMENTS, t)}})
    assert mean_response(rows) == pytest.approx(0.5)  # (1 + 0) / 2
    assert mean_gain(rows) == pytest.approx(0.5)
    assert np.isnan(mean_response(rows[:1]))  # one kernel: nothing to correlate


def test_protocol_results_report_the_constant_guess_and_the_response(tmp_path):
    """An Evaluator run of a 'perfect' estimator (the true kernel as the estimate) scores a response
    of 1 and an infinite kernel PSNR; the constant guess's kernel PSNR is that of the mean kernel."""
    from evaluation.evaluator import Evaluator
    from evaluation.metrics import kernel_psnr
    from evaluation.protocol import HRSet, build_kernels
    from evaluation.results import kernel_estimation_table, summarize
    from models.modules.kulnet import KULNetOutput

    kernels = build_kernels({"scale": 2, "kernel_size": 21, "kernels": "paper"})
    current = {}

    def oracle(lr, kernel=None):  # upsampling only; reports the kernel it was degraded with
        sr = torch.nn.functional.interpolate(lr, scale_factor=2, mode="nearest")
        return KULNetOutput(sr, current["k"][None], None, None)

    ev = Evaluator(oracle, 2, 21, 2, 0, torch.device("cpu"), {"bicubic": False, "non_blind": False})
    real_evaluate = ev.evaluate_image

    def evaluate(hr, tk, noise, generator):
        current["k"] = tk.kernel
        return real_evaluate(hr, tk, noise, generator)

    ev.evaluate_image = evaluate
    rng = np.random.default_rng(0)
    images = [(f"im{i}", lambda i=i: rng.random((16, 20, 3)).astype(np.float32)) for i in range(2)]
    rows = ev.run([HRSet("tiny", images)], kernels, [0.0])
    (entry,) = summarize(rows)
    avg = entry["average"]
    assert avg["kernel_response"] == pytest.approx(1.0) and avg["kernel_gain"] == pytest.approx(1.0)
    mean_kernel = torch.stack([k.kernel for k in kernels]).mean(0)
    want = np.mean([kernel_psnr(mean_kernel, k.kernel) for k in kernels])
    assert avg["const_kernel_psnr"] == pytest.approx(want)
    per_kernel = entry["per_kernel"][4]  # the moments go in the results, per kernel
    assert per_kernel["true_var_y"] == pytest.approx(per_kernel["kernel_var_y"])
    assert "| tiny | 0 | inf |" in kernel_estimation_table([entry])


def test_validation_logs_the_response_over_the_paper_kernels():
    """A stand-in model whose estimator returns the true kernels scores 1 at validation, one that
    always returns the same kernel 0: a collapse shows in the training log."""
    from evaluation.validation import validate
    from models.modules.kulnet import KULNetOutput

    class StandIn:
        scale, device, opt = 2, torch.device("cpu"), {"kernel_size": 21}

        def __init__(self, follows):
            self.follows = follows

        def test(self, lr):
            sr = torch.nn.functional.interpolate(lr, scale_factor=2, mode="nearest")
            return KULNetOutput(sr, paper_kernels(2)[:1], None, None)

        def test_kernel(self, lr):
            assert lr.shape[0] == 9  # one image under the nine kernels, in one batch
            return paper_kernels(2) if self.follows else paper_kernels(2)[:1].expand(9, -1, -1)

    data = [{"hr": torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(i)), "path": f"{i}.png"}
            for i in range(2)]
    val_opt = {"sig1": 3.5, "sig2": 1.5, "theta": 0.5233, "noise": 10.0, "max_images": None}
    follows, collapsed = validate(StandIn(True), data, val_opt, 1), validate(StandIn(False), data, val_opt, 1)
    assert follows["kernel_response"] == pytest.approx(1.0) and follows["kernel_gain"] == pytest.approx(1.0)
    assert collapsed["kernel_response"] == 0.0 and collapsed["kernel_gain"] == pytest.approx(0.0, abs=1e-12)


def test_kernel_response_script_gives_test_py_kernel_figures(tmp_path):
    """scripts/kernel_response.py (the estimator alone) reports test.py's kernel PSNR, constant guess
    and response on the same data."""
    import json

    import cv2
    from _eval_helpers import run_script, smooth_image, write_tiny_checkpoint, write_yaml

    hr = tmp_path / "HR"
    hr.mkdir()
    for i in range(2):
        cv2.imwrite(str(hr / f"{i}.png"), smooth_image(24, 28, seed=i))
    ckpt = tmp_path / "tiny_x2.pth"
    net = write_tiny_checkpoint(ckpt, scale=2)
    res = run_script("scripts/kernel_response.py", "--checkpoint", ckpt, "--scale", 2, "--datasets", f"tiny={hr}",
                     "--device", "cpu", "--json", tmp_path / "k.json")
    assert res.returncode == 0, res.stderr[-2000:]
    quick = json.loads((tmp_path / "k.json").read_text())["results"][0]
    opt = write_yaml(tmp_path / "t.yml", {"scale": 2, "checkpoint": str(ckpt), "network_G": net, "device": "cpu",
                                          "datasets": [{"name": "tiny", "dataroot_HR": str(hr)}],
                                          "save_images": False, "out": str(tmp_path / "full")})
    res = run_script("test.py", "-opt", opt)
    assert res.returncode == 0, res.stderr[-2000:]
    full = json.loads((tmp_path / "full" / "results.json").read_text())["summary"][0]["average"]
    for key in ("kernel_psnr", "const_kernel_psnr", "kernel_response", "kernel_gain"):
        assert quick[key] == pytest.approx(full[key], abs=1e-6), key
    assert "| tiny | 0 |" in res.stdout  # test.py prints the kernel estimation table


def test_low_response_note_for_shipped_files_only(tmp_path):
    import json

    from _eval_helpers import write_tiny_checkpoint

    from evaluation.results import sha256_file
    from evaluation.shipped import low_response_note

    ckpt = tmp_path / "KULNet_x4.pth"
    write_tiny_checkpoint(ckpt)
    manifest = tmp_path / "manifest.json"
    # (response, gain, noted): a high response with a small gain (an estimate that barely moves) is noted
    for response, gain, noted in ((0.12, None, True), (0.9, None, False), (None, None, False), (0.9, 0.03, True),
                                  (0.9, 0.8, False)):
        entry = {"sha256": sha256_file(str(ckpt)), "results": [
            {"dataset": "Set5", "noise": 0.0, "kulnet": {"kernel_response": response, "kernel_gain": gain}}]}
        manifest.write_text(json.dumps({"files": {"KULNet_x4.pth": entry}}))
        note = low_response_note(str(ckpt), str(manifest))
        assert (note is not None) == noted
        if noted:
            assert f"KULNet_x4.pth does not follow the blur (kernel response {response:.2f}" in note
            assert "\n" not in note and (gain is None or f"gain {gain:.2f}" in note)
    other = tmp_path / "other.pth"
    write_tiny_checkpoint(other, seed=1)
    assert low_response_note(str(other), str(manifest)) is None  # not a shipped file
