"""Faithfulness to the authors' code: their forward pass (``authors_forward.npz``: their weights in
their checkpoint layout, real photo crops, their blind output and their non-blind output) and the
LSM proximal step's closed forms."""
import os

import numpy as np
import pytest
import torch
from _fixture_compare import assert_matches_fixture, record_near_ties

from models.fast import accelerate
from models.modules.dlsm import lsm_prox
from models.networks import define_G

CASES = ("x4_37x45", "x4_48x32", "x3_41x41", "x2_50x33")


@pytest.fixture(scope="module")
def fixture(request):
    from conftest import REFERENCE_DIR

    path = os.path.join(REFERENCE_DIR, "authors_forward.npz")
    return dict(np.load(path))


def authors_state_dict(fixture):
    """The fixture's weights as the authors' ``latest_G.pth`` holds them (a bare state_dict, float32)."""
    return {k[len("weight/"):]: torch.from_numpy(v.astype(np.float32)) for k, v in fixture.items()
            if k.startswith("weight/")}


def run_case(fixture, case, plain):
    """Our network with the authors' weights on a case: {name: (output as numpy, our near ties or
    None)} for ``sr``, ``kernel`` and ``sr_given_kernel`` (see :mod:`_fixture_compare`)."""
    net = define_G({"scale": int(case[1])}).eval()
    net.load_state_dict(authors_state_dict(fixture))  # as a user loads their checkpoint
    if not plain:
        accelerate(net, "cpu")
    lr = torch.from_numpy(fixture[f"{case}/lr"])[None]
    with torch.no_grad(), record_near_ties() as blind_ties:
        blind = net(lr)
    with torch.no_grad(), record_near_ties() as given_ties:
        given = net(lr, torch.from_numpy(fixture[f"{case}/true_kernel"])[None])
    return {"sr": (blind.sr[0].numpy(), blind_ties.band[0]), "kernel": (blind.kernel[0].numpy(), None),
            "sr_given_kernel": (given.sr[0].numpy(), given_ties.band[0])}


def assert_case_matches(fixture, case, outputs, tol):
    """The kernel within float rounding (no mask in the estimator); both SRs within ``tol`` but for
    the few isolated pixels a mask within rounding of flipping explains."""
    for name, (ours, ties) in outputs.items():
        assert_matches_fixture(ours, fixture[f"{case}/{name}"], 1e-6 if name == "kernel" else tol,
                               f"{case}/{name}", ties=ties)


@pytest.mark.parametrize("case", CASES)
def test_plain_path_reproduces_the_authors_forward(fixture, case):
    assert_case_matches(fixture, case, run_case(fixture, case, plain=True), 1e-5)


@pytest.mark.parametrize("case", CASES)
def test_default_path_agrees_with_the_authors_forward(fixture, case):
    """Reordered float arithmetic (fused, FFT, channels-last) agrees to float rounding, but where it
    flips one of the step's masks; the later stages then spread that a little."""
    assert_case_matches(fixture, case, run_case(fixture, case, plain=False), 1e-4)


def test_the_old_first_condition_reading_would_fail_the_fixture(fixture, monkeypatch):
    """The test above can fail: the reading that lets the first condition win where ``t < 0`` moves
    pixels of every case by far more than the tolerance."""
    import models.modules.dlsm as dlsm

    def first_wins(r, w, u, delta):
        t = w * delta
        return torch.where(r < u - t, r + t, torch.where(r > u + t, r - t, u))

    monkeypatch.setattr(dlsm, "lsm_prox", first_wins)
    sr, ties = run_case(fixture, "x2_50x33", plain=True)["sr"]
    assert np.abs(sr - fixture["x2_50x33/sr"]).max() > 0.1
    with pytest.raises(AssertionError, match="no mask of the LSM step is within rounding|places of up to"):
        assert_matches_fixture(sr, fixture["x2_50x33/sr"], 1e-5, "x2_50x33/sr", ties=ties)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_lsm_prox_closed_forms(dtype):
    def prox(r, w, u, delta):
        as_t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
        return lsm_prox(as_t(r), as_t(w), as_t(u), torch.tensor([delta], dtype=dtype))

    # t > 0, the textbook rule: r + t below u - t, r - t above u + t, u in between
    out = prox([-1.0, 0.05, 0.5, 2.0], [1.0] * 4, [0.0] * 4, 0.125)
    assert out.tolist() == [-0.875, 0.0, 0.375, 1.875]
    # t < 0 (w < 0): inside u + t < r < u - t both masks hold, 2r - u; outside only one does
    out = prox([0.25, -0.0625, 1.0, -1.0], [-1.0] * 4, [0.0] * 4, 0.5)
    assert out.tolist() == [0.5, -0.125, 1.5, -1.5]
    # t so small that r + t == r and r - t == r in this dtype: both masks 0, the result is u
    tiny = 1e-9 if dtype == torch.float32 else 1e-5
    out = prox([1.0, -1.0], [1.0, 1.0], [0.25, 0.25], tiny)
    assert out.tolist() == [0.25, 0.25]
    assert out.dtype == dtype


def test_test_py_evaluation_path_on_an_authors_checkpoint(fixture, tmp_path):
    """What ``test.py --checkpoint latest_G.pth`` runs (load_model + make_forward) gives the authors'
    output for a bare state_dict saved as their code saves it, in a folder named by its scale."""
    from evaluation.inference import load_model, make_forward

    state = authors_state_dict(fixture)
    for case in ("x4_37x45", "x2_50x33"):
        scale = int(case[1])
        path = tmp_path / f"x{scale}" / "latest_G.pth"
        path.parent.mkdir()
        torch.save(state, path)
        opt = {"scale": scale, "kernel_size": 21, "checkpoint": str(path), "network_G": {}}
        model, meta = load_model(opt, torch.device("cpu"))
        assert meta["format"] == "authors"
        forward = make_forward(model, scale)
        with torch.inference_mode(), record_near_ties() as ties:
            out = forward(torch.from_numpy(fixture[f"{case}/lr"])[None])
        assert_matches_fixture(out.sr[0].numpy(), fixture[f"{case}/sr"], 1e-4, case, ties=ties.band[0])


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_compiled_step_equals_eager_in_the_dtypes_of_autocast_training(half):
    """Under autocast ``r`` is float32 (the blurs and resampling), ``w`` and ``u`` come from
    convolutions in half precision and ``δ`` is a float32 parameter: the compiled step (inductor, as
    ``train.compile`` uses it) gives the eager step's values, masks included, with ``t < 0`` at half
    of the pixels."""
    torch.manual_seed(0)
    r, w, u = torch.randn(3, 2, 3, 24, 24).unbind(0)
    w, u = w.to(half), u.to(half)
    delta = torch.tensor([0.3])
    eager = lsm_prox(r, w, u, delta)
    compiled = torch.compile(lsm_prox, fullgraph=True)(r, w, u, delta)
    assert eager.dtype == torch.float32 and bool(((w * delta) < 0).any())
    assert torch.equal(compiled, eager)
