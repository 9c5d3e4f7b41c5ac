"""Whether an estimator follows the blur: the kernel response, and the moments it is made from.

Kernel PSNR alone does not tell: the protocol's kernels are alike enough that always guessing their
mean scores well. The response asks instead whether the estimate changes as the true kernel does.
For one image restored under each of the protocol's N kernels, it is the Pearson correlation between
the estimated and the true kernels' second central moments (variance along y, variance along x,
covariance), each moment centred over the N kernels and the three pooled. An estimate that does not
change with the blur scores 0 (defined so when the estimates do not vary at all), a perfect one 1,
and so does one shifted or uniformly wider (the centring removes it). Averaged over the images.

A correlation ignores how far the estimate moves: one that barely moves, but the right way, scores
near 1. The kernel gain says how far: the least-squares slope of the same centred moments, estimated
on true. A constant estimate scores 0, a perfect one 1 (shifted or uniformly wider too), and one that
follows a tenth of the change 0.1. An estimator follows the blur when both are high.

Public API:
    MOMENTS, kernel_moments, kernel_response, kernel_gain, mean_response, mean_gain
"""
import math

import numpy as np
import torch

MOMENTS = ("cy", "cx", "var_y", "var_x", "cov")  # centroid (pixels), then second central moments
SECOND = slice(2, 5)  # the moments the response compares


def kernel_moments(kernel):
    """Centroid and second central moments of kernels taken as distributions over their grid.

    Args:
        kernel (Tensor | np.ndarray): (..., l, l), >= 0 (normalised here).

    Returns:
        np.ndarray: (..., 5) float64: ``cy, cx`` (row, column of the centroid), ``var_y, var_x, cov``.
    """
    k = kernel.detach().double().cpu().numpy() if torch.is_tensor(kernel) else np.asarray(kernel, np.float64)
    k = k / k.sum(axis=(-2, -1), keepdims=True)
    y, x = np.arange(k.shape[-2], dtype=np.float64), np.arange(k.shape[-1], dtype=np.float64)
    py, px = k.sum(axis=-1), k.sum(axis=-2)  # marginals
    cy, cx = py @ y, px @ x
    dy, dx = y - cy[..., None], x - cx[..., None]
    var_y, var_x = (py * dy ** 2).sum(-1), (px * dx ** 2).sum(-1)
    cov = (k * dy[..., :, None] * dx[..., None, :]).sum(axis=(-2, -1))
    return np.stack([cy, cx, var_y, var_x, cov], axis=-1)


def _centred_second_moments(estimated, true):
    """The second moments of (N, 5) moment rows, each centred over the N kernels: two (N, 3) arrays."""
    est = np.asarray(estimated, np.float64)[:, SECOND]
    ref = np.asarray(true, np.float64)[:, SECOND]
    return est - est.mean(axis=0), ref - ref.mean(axis=0)


def kernel_response(estimated, true):
    """The response of one image over the protocol's kernels.

    Args:
        estimated (array-like): (N, 5) :func:`kernel_moments` of the estimates, one row per kernel.
        true (array-like): (N, 5) the true kernels' moments, same order.

    Returns:
        float: in [-1, 1]; 0 where the estimates' moments do not vary over the kernels.
    """
    est, ref = _centred_second_moments(estimated, true)
    norm = math.sqrt(float((est ** 2).sum()) * float((ref ** 2).sum()))
    return float((est * ref).sum() / norm) if norm > 1e-12 else 0.0


def kernel_gain(estimated, true):
    """The gain of one image over the protocol's kernels: how far the estimate moves per unit the
    true kernels move.

    Args:
        estimated (array-like): (N, 5) :func:`kernel_moments` of the estimates, one row per kernel.
        true (array-like): (N, 5) the true kernels' moments, same order.

    Returns:
        float: 1 for the true kernels, 0 for a constant estimate; NaN where the true kernels are all alike.
    """
    est, ref = _centred_second_moments(estimated, true)
    spread = float((ref ** 2).sum())
    return float((est * ref).sum()) / spread if spread > 1e-12 else float("nan")


def _mean_over_images(rows, measure, estimated, true):
    by_image = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row)
    values = [measure([[r[estimated + m] for m in MOMENTS] for r in image_rows],
                      [[r[true + m] for m in MOMENTS] for r in image_rows])
              for image_rows in by_image.values() if len(image_rows) > 1]
    return float(np.mean(values)) if values else float("nan")


def mean_response(rows, estimated="kernel_", true="true_"):
    """Mean over the images of :func:`kernel_response`, from rows of one dataset and noise level.

    Args:
        rows (list[dict]): one per image and kernel, with ``image`` and the moments as
            ``<prefix><moment>`` (e.g. ``kernel_var_y``, ``true_var_y``).

    Returns:
        float: NaN when no image was restored under two kernels or more.
    """
    return _mean_over_images(rows, kernel_response, estimated, true)


def mean_gain(rows, estimated="kernel_", true="true_"):
    """Mean over the images of :func:`kernel_gain`; rows as for :func:`mean_response`."""
    return _mean_over_images(rows, kernel_gain, estimated, true)
