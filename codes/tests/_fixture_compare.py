"""One criterion for comparing our outputs with the authors' fixtures that holds on any CPU.

The fixtures were computed on another machine, whose float rounding differs from this one's by a few
units in the last place (instruction sets, summation order). Everywhere but one place that moves the
outputs by rounding only. The one place is the LSM step's masks ``m = [r − fl(r ± t) ≠ 0]``: where
``|t|`` is within rounding of half a unit in the last place of ``r``, one machine adds ``t`` and the
other rounds it away, and the output jumps there (from about ``r`` to ``u``); the later stages spread a
little of the jump around that pixel.

The criterion: every value is within ``tol`` of the fixture, except in at most :data:`MAX_BLOBS`
spatially isolated blobs (8-connected, each of at most :data:`MAX_BLOB_PIXELS` pixels), each of which
touches a pixel where our own run had such a near tie (``|t|`` between half of and twice half an ulp of
``r``, at some stage and channel). A real regression (another proximal step, another operator) moves
values at many places, or at places with no near tie, and fails.
"""
import contextlib

import cv2
import numpy as np
import torch

MAX_BLOBS = 4
MAX_BLOB_PIXELS = 16
NEAR_TIE_FACTOR = 2.0  # |t| / (ulp(r) / 2) within [1/F, F]: a machine's rounding can put it either side of 1


def near_ties(r, t):
    """(B, H, W) bool: pixels where the step's rounding mask ``fl(r ± t) ≠ r`` is within rounding of flipping.

    Args:
        r, t (Tensor): (B, C, H, W), the step's input and threshold ``w·δ``.
    """
    r, t = r.detach().float().abs(), t.detach().float().abs()
    half_ulp = (torch.nextafter(r, torch.full_like(r, float("inf"))) - r) / 2
    ratio = t / half_ulp
    return ((ratio >= 1 / NEAR_TIE_FACTOR) & (ratio <= NEAR_TIE_FACTOR)).any(1).cpu().numpy()


class NearTies:
    """What :func:`record_near_ties` saw: ``band`` is the (B, H, W) union over the stages, or None."""

    def __init__(self):
        self.band = None

    def add(self, band):
        assert self.band is None or self.band.shape == band.shape, "one forward pass of one size per record"
        self.band = band if self.band is None else self.band | band


@contextlib.contextmanager
def record_near_ties():
    """Record the near ties of every LSM step run inside the block (the network's own step is called)."""
    import models.modules.dlsm as dlsm

    step, seen = dlsm.lsm_prox, NearTies()

    def recording(r, w, u, delta):
        seen.add(near_ties(r, w * delta))
        return step(r, w, u, delta)

    dlsm.lsm_prox = recording
    try:
        yield seen
    finally:
        dlsm.lsm_prox = step


def fixture_mismatch(ours, theirs, tol, channel_axis=0, ties=None):
    """None when ``ours`` matches the fixture ``theirs`` under the criterion above, else why not (a sentence).

    Args:
        ours, theirs (np.ndarray): one image, (C, H, W) or (H, W, C) (``channel_axis``), or (H, W).
        tol (float): the rounding tolerance (e.g. 1e-4 for floats in [0, 1], 1 for 8-bit levels).
        ties (np.ndarray | None): (H, W) bool, our run's near ties (see :func:`record_near_ties`);
            None: no value may be off (a computation without the step's masks).
    """
    assert ours.shape == theirs.shape, f"shape {ours.shape} against the fixture's {theirs.shape}"
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    off = diff > tol
    off = off.any(axis=channel_axis) if off.ndim == 3 else off
    if not off.any():
        return None
    report = f"{int((diff > tol).sum())} of {diff.size} values off by more than {tol} (max {diff.max():.3g})"
    count, labels, stats, _ = cv2.connectedComponentsWithStats(off.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if ties is None:
        return f"{report}; this comparison has no mask to explain any"
    if count - 1 > MAX_BLOBS or areas.max() > MAX_BLOB_PIXELS:
        return (f"{report}, in {count - 1} places of up to {areas.max()} pixels (at most {MAX_BLOBS} places of "
                f"{MAX_BLOB_PIXELS} may be off, where a mask is within rounding of flipping)")
    near = cv2.dilate(ties.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    for blob in range(1, count):
        if not near[labels == blob].any():
            y, x = np.argwhere(labels == blob)[0]
            return f"{report}; at ({y}, {x}) no mask of the LSM step is within rounding of flipping"
    return None


def assert_matches_fixture(ours, theirs, tol, what, channel_axis=0, ties=None):
    """Assert :func:`fixture_mismatch` finds nothing; ``what`` names the comparison in the message."""
    problem = fixture_mismatch(ours, theirs, tol, channel_axis, ties)
    assert problem is None, f"{what}: {problem}"
