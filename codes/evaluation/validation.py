"""Validation during training: the validation HR images degraded with one fixed kernel and noise
level (the authors' setting), the same LR at every validation (fixed seed), scored on the Y channel.

Metrics per image, averaged: PSNR_Y / SSIM_Y of the SR result (``scale`` pixels cropped from each
border), kernel PSNR (raw kernels), LR PSNR_Y between the clean LR and the HR re-degraded with the
estimated kernel, and the kernel response and gain over the nine paper kernels (the estimator alone,
so that an estimator that stops following the blur shows early; :mod:`evaluation.kernel_response`).

When the estimator trains alone (``train.mode: estimator``) the SR part is not run: the metrics are
the kernel figures over the nine paper kernels (:func:`estimator_metrics`), a matter of seconds, so
that a learning curve can be read every few hundred iterations.
"""
import csv
import os

import torch
from torch.utils.data import DataLoader

from data.degradation import Degradation, blur_subsample, quantize
from data.kernels import paper_kernels
from evaluation.figures import kernel_image
from evaluation.kernel_response import kernel_gain, kernel_moments, kernel_response
from evaluation.metrics import calculate_psnr_batch, calculate_ssim_batch, kernel_psnr
from utils.device import cudnn_autotuning
from utils.image_io import tensor2img, write_image

VAL_SEED = 20220101  # fixed: every validation sees the same noisy LR
ESTIMATOR_METRICS = ("kernel_psnr", "const_kernel_psnr", "kernel_l1", "const_kernel_l1", "kernel_response",
                     "kernel_gain")


def center_crop(hr, size, scale):
    """The centre ``size`` x ``size`` window of a (B, C, H, W) batch (both sides rounded down to a
    multiple of ``scale``; an image smaller than that is kept whole); None returns ``hr``."""
    if not size:
        return hr
    h, w = hr.shape[-2:]
    ch, cw = min(size, h) // scale * scale, min(size, w) // scale * scale
    top, left = (h - ch) // 2, (w - cw) // 2
    return hr[..., top:top + ch, left:left + cw]


def estimator_metrics(estimated, paper):
    """The kernel figures of one image restored under the paper's kernels.

    Args:
        estimated (Tensor): (N, l, l) the estimates, one per kernel of ``paper``.
        paper (Tensor): (N, l, l) the true kernels.

    Returns:
        dict[str, float]: kernel PSNR and L1 distance (sum over the entries) averaged over the kernels,
        the same for a constant guess (the kernels' mean), the kernel response and gain.
    """
    constant = paper.mean(dim=0, keepdim=True).expand_as(paper)
    estimated_m, true_m = kernel_moments(estimated), kernel_moments(paper)
    return {
        "kernel_psnr": kernel_psnr(estimated, paper),
        "const_kernel_psnr": kernel_psnr(constant, paper),
        "kernel_l1": (estimated.cpu() - paper.cpu()).abs().sum(dim=(1, 2)).mean().item(),
        "const_kernel_l1": (constant.cpu() - paper.cpu()).abs().sum(dim=(1, 2)).mean().item(),
        "kernel_response": kernel_response(estimated_m, true_m),
        "kernel_gain": kernel_gain(estimated_m, true_m),
    }


@torch.no_grad()
def validate(model, dataset, val_opt, iteration, save_dir=None, n_save=3, tb_logger=None):
    """Run one validation pass.

    Args:
        model (KULNetModel): its ``test`` method and ``device``/``scale`` are used.
        dataset (Dataset): HR dataset in test mode (items ``{'hr': (3, H, W), 'path'}``).
        val_opt (dict): ``datasets.val`` options (sig1, sig2, theta, noise, max_images, center_crop).
        iteration (int): for file names and TensorBoard steps.
        save_dir (str | None): write the first ``n_save`` SR images and kernels under
            ``save_dir/<iteration>/``.
        tb_logger (SummaryWriter | None): metrics and the first image pair go there.

    Returns:
        dict[str, float]: psnr_y, ssim_y, kernel_psnr, lr_psnr_y, kernel_response, kernel_gain (means
        over the images); with ``model.mode == 'estimator'`` the :data:`ESTIMATOR_METRICS` instead.
    """
    if getattr(model, "mode", "joint") == "estimator":
        return validate_estimator(model, dataset, val_opt, iteration, tb_logger)
    scale, device = model.scale, model.device
    deg = Degradation(scale, model.opt["kernel_size"], random_kernel=False, sig1=val_opt["sig1"],
                      sig2=val_opt["sig2"], theta=val_opt["theta"], random_noise=False,
                      noise=val_opt["noise"])
    generator = torch.Generator(device).manual_seed(VAL_SEED)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
    limit = val_opt.get("max_images") or len(dataset)
    sums = dict.fromkeys(("psnr_y", "ssim_y", "kernel_psnr", "lr_psnr_y", "kernel_response", "kernel_gain"), 0.0)
    count = 0
    paper = paper_kernels(scale, model.opt["kernel_size"], device=device)
    every_kernel = Degradation(scale, model.opt["kernel_size"], random_noise=False, noise=val_opt["noise"])
    response_noise = torch.Generator(device).manual_seed(VAL_SEED + 1)  # the main LRs stay as they were
    with cudnn_autotuning(False):  # each image has its own size: autotuning would run for each
        for data in loader:
            if count >= limit:
                break
            hr = center_crop(data["hr"].to(device), val_opt.get("center_crop"), scale)
            name = os.path.splitext(os.path.basename(data["path"][0]))[0]
            d = deg(hr, generator=generator)
            out = model.test(d.lr)
            sr = out.sr.clamp(0, 1)
            sums["psnr_y"] += calculate_psnr_batch(sr, hr, scale).item()
            sums["ssim_y"] += calculate_ssim_batch(sr, hr, scale).item()
            sums["kernel_psnr"] += kernel_psnr(out.kernel[0], d.kernel[0])
            lr_re = quantize(blur_subsample(hr, out.kernel, scale))
            sums["lr_psnr_y"] += calculate_psnr_batch(lr_re, d.lr_clean, 0).item()
            batch = every_kernel(hr.expand(len(paper), -1, -1, -1), generator=response_noise, kernel=paper)
            estimated, true = kernel_moments(model.test_kernel(batch.lr)), kernel_moments(paper)
            sums["kernel_response"] += kernel_response(estimated, true)
            sums["kernel_gain"] += kernel_gain(estimated, true)
            if count < n_save:
                k_img = kernel_image(out.kernel[0])
                if save_dir:
                    folder = os.path.join(save_dir, str(iteration))
                    write_image(os.path.join(folder, f"{name}_SR.png"), tensor2img(sr))
                    write_image(os.path.join(folder, f"{name}_kernel.png"), k_img)
                    gt = os.path.join(save_dir, f"{name}_kernel_GT.png")
                    if not os.path.exists(gt):
                        write_image(gt, kernel_image(d.kernel[0]))
                if tb_logger is not None:
                    tb_logger.add_image(f"val/{name}_SR", sr[0].cpu(), iteration)
                    tb_logger.add_image(f"val/{name}_kernel", k_img.transpose(2, 0, 1), iteration)
            count += 1
    return _finish(sums, count, iteration, tb_logger)


@torch.no_grad()
def validate_estimator(model, dataset, val_opt, iteration, tb_logger=None):
    """The estimator alone: each validation image (its centre crop with ``center_crop``) under the nine
    paper kernels at the validation noise level, one batch an image; :func:`estimator_metrics`
    averaged over the images. Arguments as :func:`validate`."""
    scale, device = model.scale, model.device
    paper = paper_kernels(scale, model.opt["kernel_size"], device=device)
    every_kernel = Degradation(scale, model.opt["kernel_size"], random_noise=False, noise=val_opt["noise"])
    generator = torch.Generator(device).manual_seed(VAL_SEED + 1)
    limit = min(val_opt.get("max_images") or len(dataset), len(dataset))
    sums, count = dict.fromkeys(ESTIMATOR_METRICS, 0.0), 0
    with cudnn_autotuning(False):
        for index in range(limit):
            hr = center_crop(dataset[index]["hr"].to(device)[None], val_opt.get("center_crop"), scale)
            batch = every_kernel(hr.expand(len(paper), -1, -1, -1), generator=generator, kernel=paper)
            for key, value in estimator_metrics(model.test_kernel(batch.lr), paper).items():
                sums[key] += value
            count += 1
    return _finish(sums, count, iteration, tb_logger)


def _finish(sums, count, iteration, tb_logger):
    metrics = {k: v / max(count, 1) for k, v in sums.items()}
    if tb_logger is not None:
        for key, value in metrics.items():
            tb_logger.add_scalar(f"val/{key}", value, iteration)
    return metrics


def append_curve_row(path, row):
    """Append one validation's row (iteration, seconds, training losses, metrics) to the learning curve
    CSV at ``path``, writing the header first when the file is new; a row with other columns starts
    a new header line (a resumed run whose options changed)."""
    header = list(row)
    previous = None
    if os.path.isfile(path):
        with open(path, newline="", encoding="utf-8") as handle:
            lines = [line for line in csv.reader(handle) if line]
        headers = [line for line in lines if line and line[0] == "iteration"]
        previous = headers[-1] if headers else None
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if previous != header:
            writer.writerow(header)
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row.values()])


def read_curve(path):
    """The rows of a learning-curve CSV written by :func:`append_curve_row`, as dicts of floats."""
    rows, header = [], None
    with open(path, newline="", encoding="utf-8") as handle:
        for line in csv.reader(handle):
            if not line:
                continue
            if line[0] == "iteration":
                header = line
                continue
            rows.append({k: float(v) if v not in ("", "nan") else float("nan") for k, v in zip(header, line)})
    return rows
