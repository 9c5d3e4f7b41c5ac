"""The paper's synthetic test protocol as a grid, its summaries and results files.

Grid: every dataset x noise level x kernel x image. For each cell the HR image (mod-cropped) is
degraded with the kernel and a fixed noise level (the noise generator is seeded with ``seed`` at the
start of every dataset x noise x kernel, so a cell's numbers do not depend on what else is in the
grid, as when the authors ran one setting per invocation), restored, and scored:

- ``psnr_y`` / ``ssim_y``: SR vs HR on the Y channel, ``crop_border`` (= the scale) pixels cropped;
- ``lr_psnr_y`` / ``lr_ssim_y``: the clean LR vs the HR re-degraded (no noise) with the estimated
  kernel, no crop (both LR images share the same replicate-padded border);
- ``kernel_psnr``: 20 log10(1 / RMSE) of the raw 21x21 kernels; ``time_s``: the KULNet pass (the
  line printed per image also gives the image's whole time, baselines and metrics included);
- baselines (options): ``bicubic_*`` = bicubic upsampling of the same noisy LR
  (``F.interpolate(..., mode='bicubic', align_corners=False)``, clamped to [0, 1], the same
  resampling as the network's operators), and ``nonblind_*`` = the SR part given the true kernel
  (``model(lr, kernel=true_kernel)``). Not an upper bound: the SR part was trained with estimated
  kernels, which sit on the authors' shifted grid, and can do worse given the true kernel.

Summary (per method and metric): per-kernel mean over the images, then the nine-kernel average =
the mean over kernels of the per-kernel means (as the paper reports it; equal to the mean over all images only
when every kernel has the same images). ``inf`` (identical images) propagates into the means;
SSIM is NaN for images smaller than its 11x11 window and NaN values are left out of means.

Summaries, tables and results files: :mod:`evaluation.results`.

The protocol's kernels and HR sets: :mod:`evaluation.protocol`.

Public API:
    bicubic_upsample, Evaluator
"""
import os
import time

import torch

from data.degradation import Degradation
from data.spatially_variant import degrade_authors_sv
from evaluation.kernel_response import MOMENTS, kernel_moments
from evaluation.metrics import calculate_psnr, calculate_ssim, kernel_psnr
from evaluation.protocol import check_hr_size, load_hr_levels
from evaluation.results import BASELINE_METRICS, KERNEL_COLUMNS, KEY_COLUMNS, KULNET_METRICS, format_number
from models.modules.operators import bicubic_up
from utils.image_io import raw_to_float, tensor2img, write_image


def bicubic_upsample(lr, scale):
    """Bicubic baseline: the operators' ``bicubic_up``, (B, 3, h, w) -> (B, 3, s*h, s*w), clamped to [0, 1]."""
    return bicubic_up(lr, scale).clamp(0, 1)


def _ssim(img1, img2, crop):
    try:
        return calculate_ssim(img1, img2, crop)
    except ValueError:  # smaller than the 11x11 window
        return float("nan")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Evaluator:
    """Runs the grid for one restoration function.

    Args:
        forward (callable): ``forward(lr (1, 3, h, w), kernel=None) -> KULNetOutput`` (the model,
            possibly wrapped by tiling / self-ensemble); called with the true kernel for the
            non-blind baseline.
        scale (int), kernel_size (int), crop_border (int), seed (int): protocol settings.
        device (torch.device): where images are degraded and restored.
        baselines (dict): ``{'bicubic': bool, 'non_blind': bool}``.
        save_dir (str | None): write SR PNGs and kernel figures there (None: no images).
        log (callable): receives one line per image.
    """

    def __init__(self, forward, scale, kernel_size, crop_border, seed, device, baselines,
                 save_dir=None, log=print):
        self.forward, self.scale, self.kernel_size = forward, scale, kernel_size
        self.crop, self.seed, self.device = crop_border, seed, device
        self.baselines = {k: bool(baselines.get(k)) for k in BASELINE_METRICS}
        self.save_dir, self.log = save_dir, log
        self.clean = Degradation(scale, kernel_size, random_noise=False, noise=0.0)
        self.constant_kernel = None  # (l, l): the constant guess of the kernel metrics, set by run()

    def columns(self):
        """The CSV columns of this run (baseline columns only for enabled baselines)."""
        return KEY_COLUMNS + KULNET_METRICS + KERNEL_COLUMNS + [m for b, ms in BASELINE_METRICS.items()
                                               if self.baselines[b] for m in ms]

    def evaluate_image(self, hr, tk, noise, generator):
        """Degrade one HR image with kernel ``tk`` and ``noise`` (0..255), restore and score it.

        Args:
            hr (Tensor): (1, 3, H, W) in [0, 1] on the device, H, W multiples of the scale.
            tk (ProtocolKernel): the true kernel.
            noise (float): noise level in 0..255 units.
            generator (torch.Generator): noise source on the device.

        Returns:
            tuple: (metrics dict, SR tensor (1, 3, H, W), estimated kernel (l, l)).
        """
        if tk.sv_mode:  # the authors' spatially variant pattern: a kernel per 40x40 HR block
            batch = degrade_authors_sv(hr, tk.sv_mode, self.scale, self.kernel_size, noise, generator, self.seed)
            k_true = batch.kernel  # the mean of the LR pixels' kernels, what one estimated kernel stands for
        else:
            k_true = tk.kernel.to(self.device)[None]
            deg = Degradation(self.scale, self.kernel_size, random_noise=False, noise=noise)
            batch = deg(hr, generator=generator, kernel=k_true)
        hr_img = tensor2img(hr)
        _sync(self.device)
        start = time.perf_counter()
        out = self.forward(batch.lr)
        _sync(self.device)
        elapsed = time.perf_counter() - start
        sr_img = tensor2img(out.sr)
        k_est = out.kernel[0]
        lr_redeg = tensor2img(self.clean(hr, kernel=k_est[None]).lr_clean)
        lr_clean = tensor2img(batch.lr_clean)
        m = {
            "psnr_y": calculate_psnr(sr_img, hr_img, self.crop),
            "ssim_y": _ssim(sr_img, hr_img, self.crop),
            "lr_psnr_y": calculate_psnr(lr_redeg, lr_clean, 0),
            "lr_ssim_y": _ssim(lr_redeg, lr_clean, 0),
            "kernel_psnr": kernel_psnr(k_est, k_true[0]),
            "time_s": elapsed,
        }
        if self.constant_kernel is not None:
            m["const_kernel_psnr"] = kernel_psnr(self.constant_kernel.to(k_est.device), k_true[0])
        for prefix, kernel in (("kernel_", k_est), ("true_", k_true[0])):
            m.update({prefix + name: float(v) for name, v in zip(MOMENTS, kernel_moments(kernel))})
        if self.baselines["bicubic"]:
            bic = tensor2img(bicubic_upsample(batch.lr, self.scale))
            m["bicubic_psnr_y"] = calculate_psnr(bic, hr_img, self.crop)
            m["bicubic_ssim_y"] = _ssim(bic, hr_img, self.crop)
        if self.baselines["non_blind"]:
            nb = tensor2img(self.forward(batch.lr, k_true).sr)
            m["nonblind_psnr_y"] = calculate_psnr(nb, hr_img, self.crop)
            m["nonblind_ssim_y"] = _ssim(nb, hr_img, self.crop)
        return m, out.sr, k_est

    def run(self, hr_sets, kernels, noise_levels, progress=None):
        """Evaluate the whole grid.

        Args:
            hr_sets (list[HRSet]): datasets.
            kernels (list[ProtocolKernel]): kernels.
            noise_levels (list[float]): 0..255 units.
            progress (callable | None): called once per image (e.g. a tqdm bar's ``update``).

        Returns:
            list[dict]: one row per dataset x noise x kernel x image, keys :meth:`columns`.
        """
        rows = []
        # the constant-guess baseline of the kernel metrics: always the mean of the protocol's kernels
        # (none for a spatially variant pattern, whose kernels are per block)
        fixed = [tk.kernel for tk in kernels if tk.kernel is not None]
        self.constant_kernel = torch.stack(fixed).mean(dim=0) if fixed and len(fixed) == len(kernels) else None
        for hs in hr_sets:
            images = []  # each image decoded once per dataset, kept as its 8-bit levels
            for name, loader in hs.items:
                levels = load_hr_levels(loader, self.scale, hs.center_crop)
                check_hr_size(f"{hs.name}/{name}", levels, self.scale, self.crop)
                images.append((name, levels))
            for noise in noise_levels:
                for tk in kernels:
                    generator = torch.Generator(device=self.device).manual_seed(self.seed)
                    for name, hr_u8 in images:
                        start = time.perf_counter()
                        hr_np = raw_to_float(hr_u8)  # what load_hr returns
                        hr = torch.from_numpy(hr_np.transpose(2, 0, 1).copy())[None].to(self.device)
                        m, sr, k_est = self.evaluate_image(hr, tk, noise, generator)
                        row = {"dataset": hs.name, "image": name, "noise": float(noise), "kernel": tk.index,
                               "sig1": tk.sig1, "sig2": tk.sig2, "theta_deg": tk.theta_deg,
                               "height": hr_np.shape[0], "width": hr_np.shape[1], **m}
                        rows.append(row)
                        if self.save_dir:
                            self._save(row, sr, k_est, tk.kernel)
                        self.log(_image_line(row, time.perf_counter() - start))
                        if progress is not None:
                            progress()
        return rows

    def _save(self, row, sr, k_est, k_true):
        from evaluation.figures import kernel_figure

        stem = f"{row['image']}_noise{row['noise']:g}_k{row['kernel']}"
        folder = os.path.join(self.save_dir, row["dataset"])
        write_image(os.path.join(folder, f"{stem}_SR.png"), tensor2img(sr))
        fig = kernel_figure(k_est, k_true, row["kernel_psnr"], scale=self.scale)
        write_image(os.path.join(folder, f"{stem}_kernel.png"), fig)


def _image_line(r, whole_s):
    """One image's line; ``whole_s``: its seconds in all (the KULNet pass, baselines, metrics, saving)."""
    parts = [f"{r['dataset']} noise {r['noise']:g} k{r['kernel']} {r['image']}:",
             f"PSNR_Y {format_number(r['psnr_y'])} dB SSIM_Y {format_number(r['ssim_y'], 4)}",
             f"| LR PSNR_Y {format_number(r['lr_psnr_y'])} | kernel PSNR {format_number(r['kernel_psnr'])}"]
    if "bicubic_psnr_y" in r:
        parts.append(f"| bicubic {format_number(r['bicubic_psnr_y'])}")
    if "nonblind_psnr_y" in r:
        parts.append(f"| SR given the true kernel {format_number(r['nonblind_psnr_y'])}")
    parts.append(f"| {whole_s:.2f} s (KULNet {r['time_s']:.2f} s)")
    return " ".join(parts)
