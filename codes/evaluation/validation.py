"""Validation during training: the validation HR images degraded with one fixed kernel and noise
level (the authors' setting), the same LR at every validation (fixed seed), scored on the Y channel.

Metrics per image, averaged: PSNR_Y / SSIM_Y of the SR result (``scale`` pixels cropped from each
border), kernel PSNR (raw kernels), LR PSNR_Y between the clean LR and the HR re-degraded with the
estimated kernel, and the kernel response and gain over the nine paper kernels (the estimator alone,
so that an estimator that stops following the blur shows early; :mod:`evaluation.kernel_response`).
"""
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


@torch.no_grad()
def validate(model, dataset, val_opt, iteration, save_dir=None, n_save=3, tb_logger=None):
    """Run one validation pass.

    Args:
        model (KULNetModel): its ``test`` method and ``device``/``scale`` are used.
        dataset (Dataset): HR dataset in test mode (items ``{'hr': (3, H, W), 'path'}``).
        val_opt (dict): ``datasets.val`` options (sig1, sig2, theta, noise, max_images).
        iteration (int): for file names and TensorBoard steps.
        save_dir (str | None): write the first ``n_save`` SR images and kernels under
            ``save_dir/<iteration>/``.
        tb_logger (SummaryWriter | None): metrics and the first image pair go there.

    Returns:
        dict[str, float]: psnr_y, ssim_y, kernel_psnr, lr_psnr_y, kernel_response, kernel_gain (means
        over the images).
    """
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
            hr = data["hr"].to(device)
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
    metrics = {k: v / max(count, 1) for k, v in sums.items()}
    if tb_logger is not None:
        for key, value in metrics.items():
            tb_logger.add_scalar(f"val/{key}", value, iteration)
    return metrics
