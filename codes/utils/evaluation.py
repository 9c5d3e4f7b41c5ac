"""The paper's synthetic test protocol (KULNET.md §7) as a grid, its summaries and results files.

Grid: every dataset x noise level x kernel x image. For each cell the HR image (mod-cropped) is
degraded with the kernel and a fixed noise level (the noise generator is seeded with ``seed`` at the
start of every dataset x noise x kernel, so a cell's numbers do not depend on what else is in the
grid, as when the authors ran one setting per invocation), restored, and scored:

- ``psnr_y`` / ``ssim_y``: SR vs HR on the Y channel, ``crop_border`` (= the scale) pixels cropped;
- ``lr_psnr_y`` / ``lr_ssim_y``: the clean LR vs the HR re-degraded (no noise) with the estimated
  kernel, no crop (both LR images share the same replicate-padded border);
- ``kernel_psnr``: 20 log10(1 / RMSE) of the raw 21x21 kernels; ``time_s``: the KULNet pass;
- baselines (options): ``bicubic_*`` = bicubic upsampling of the same noisy LR
  (``F.interpolate(..., mode='bicubic', align_corners=False)``, clamped to [0, 1], the same
  resampling as the network's operators), and ``nonblind_*`` = the SR part given the true kernel
  (``model(lr, kernel=true_kernel)``), the bound on what kernel estimation can give.

Summary (per method and metric): per-kernel mean over the images, then the nine-kernel average =
the mean over kernels of the per-kernel means (KULNET.md §7; equal to the mean over all images only
when every kernel has the same images). ``inf`` (identical images) propagates into the means;
SSIM is NaN for images smaller than its 11x11 window and NaN values are left out of means.

Summaries, tables and results files: :mod:`utils.results`.

Public API:
    ProtocolKernel, HRSet, build_kernels, build_hr_sets, check_hr_sets, skimage_loader, load_hr_levels,
    load_hr, load_model, make_forward, bicubic_upsample, Evaluator
"""
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from data.degradation import Degradation
from data.kernels import PAPER_KERNELS, anisotropic_gaussian_kernels, degrees_to_radians_authors, paper_kernels
from models.modules.operators import bicubic_up
from utils.errors import KULNetError
from utils.image_io import list_images, mod_crop, raw_to_float, read_image, tensor2img, write_image
from utils.metrics import calculate_psnr, calculate_ssim, kernel_psnr
from utils.results import BASELINE_METRICS, KEY_COLUMNS, KULNET_METRICS, format_number

# The RGB photographs shipped inside scikit-image (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina", "colorwheel")



# ----------------------------------------------------------------------------------------- inputs
@dataclass
class ProtocolKernel:
    """One test kernel: ``index`` (1-based label), parameters (NaN for kernels from a file), (l, l)."""

    index: int
    sig1: float
    sig2: float
    theta_deg: float
    kernel: torch.Tensor


def build_kernels(opt):
    """The kernels of the protocol from the options ('paper', a list of triples, or ``kernel_file``).

    Returns:
        list[ProtocolKernel]: kernels float32 (l, l) on the CPU, each summing to 1.
    """
    scale, ks = opt["scale"], opt["kernel_size"]
    if opt.get("kernel_file"):
        path = opt["kernel_file"]
        try:
            arr = np.load(path)
        except (OSError, ValueError) as err:
            raise KULNetError(f"{path}: cannot read the kernel file ({err}); give a .npy array (N, l, l)")
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != (ks, ks) or not np.all(np.isfinite(arr)) or arr.min() < 0:
            raise KULNetError(f"{path}: kernels of shape {arr.shape}; expected (N, {ks}, {ks}) finite, >= 0")
        sums = arr.sum(axis=(1, 2))
        if np.any(np.abs(sums - 1) > 1e-3):
            raise KULNetError(f"{path}: kernel sums {np.round(sums, 4).tolist()}; every kernel must sum to 1")
        nan = float("nan")
        return [ProtocolKernel(i + 1, nan, nan, nan, torch.from_numpy(k).float()) for i, k in enumerate(arr)]
    if opt["kernels"] == "paper":
        params = PAPER_KERNELS
        kernels = paper_kernels(scale, ks)
    else:
        params = opt["kernels"]
        s1, s2, deg = (torch.tensor([p[i] for p in params], dtype=torch.float64) for i in range(3))
        kernels = anisotropic_gaussian_kernels(s1, s2, degrees_to_radians_authors(deg), ks, scale)
    return [ProtocolKernel(i + 1, float(p[0]), float(p[1]), float(p[2]), k) for i, (p, k) in
            enumerate(zip(params, kernels))]


@dataclass
class HRSet:
    """A test set: ``items`` are (image name, loader returning float32 (H, W, 3) RGB in [0, 1])."""

    name: str
    items: list
    center_crop: int = None


def skimage_loader(name):
    """Loader of a photograph shipped with scikit-image (read from the installed package).

    Returns:
        callable: ``() -> np.ndarray float32 (H, W, 3) RGB in [0, 1]``.
    """
    import skimage.data

    if name not in SKIMAGE_PHOTOS:
        raise KULNetError(f"skimage: '{name}' is not one of the RGB photographs shipped with "
                          f"scikit-image; choose from {', '.join(SKIMAGE_PHOTOS)}")
    img = getattr(skimage.data, name)()
    return lambda: img.astype(np.float32) / 255.0


def build_hr_sets(datasets):
    """Resolve the ``datasets`` options into :class:`HRSet` objects (lists files, checks names).

    Raises:
        KULNetError: empty or missing folder, unknown scikit-image photograph.
    """
    sets = []
    for ds in datasets:
        if ds["dataroot_HR"] is not None:
            paths = list_images(ds["dataroot_HR"])
            items = [(os.path.splitext(os.path.basename(p))[0], lambda p=p: read_image(p)[0]) for p in paths]
        else:
            items = [(name, skimage_loader(name)) for name in ds["skimage"]]
        if ds.get("max_images"):
            items = items[: ds["max_images"]]
        sets.append(HRSet(ds["name"], items, ds.get("center_crop")))
    return sets


def load_hr_levels(loader, scale, center_crop=None):
    """Load one HR image as its 8-bit levels, centre-cropped to at most ``center_crop`` pixels a side
    and mod-cropped.

    The image is rounded to 8-bit levels (exact for 8-bit files): the protocol scores on 8-bit
    images, so a 16-bit HR is degraded from the same 8-bit image it is scored against, as
    ``make_testset.py`` (which writes 8-bit HR files) does.

    Returns:
        np.ndarray: uint8 (H, W, 3), H and W multiples of ``scale``.
    """
    img = np.round(np.asarray(loader(), dtype=np.float32) * np.float32(255)).astype(np.uint8)
    if center_crop:
        h, w = img.shape[:2]
        ch, cw = min(h, center_crop), min(w, center_crop)
        y, x = (h - ch) // 2, (w - cw) // 2
        img = img[y:y + ch, x:x + cw]
    return np.ascontiguousarray(mod_crop(img, scale))


def load_hr(loader, scale, center_crop=None):
    """:func:`load_hr_levels` as float32 (H, W, 3) in [0, 1] (on the 8-bit grid)."""
    return raw_to_float(load_hr_levels(loader, scale, center_crop))


def check_hr_sets(hr_sets, scale, crop_border):
    """Read every HR image once before any work, so an unreadable file or an image too small for the
    scale or the border crop stops the run at the start, not in the middle of the grid.

    Raises:
        KULNetError: one line naming the image.
    """
    for hs in hr_sets:
        for name, loader in hs.items:
            _check_size(f"{hs.name}/{name}", load_hr_levels(loader, scale, hs.center_crop), scale, crop_border)


def _check_size(label, hr_np, scale, crop_border):
    h, w = hr_np.shape[:2]
    if min(h, w) == 0:
        raise KULNetError(f"{label}: smaller than the scale {scale} (nothing is left after cropping to a "
                          f"multiple of {scale}); leave this image out")
    if 2 * crop_border >= min(h, w):
        raise KULNetError(f"{label}: crop_border = {crop_border} leaves nothing of its {h}x{w} pixels; "
                          f"lower crop_border or leave this image out")


# ---------------------------------------------------------------------------------------- runtime
def load_model(opt, device):
    """Build the network of ``opt`` (scale, kernel_size, network_G; the widths recorded in one of our
    checkpoints are used), load ``opt['checkpoint']``; ``opt['literal']`` runs the literal path
    (every speed option off), else the fast path for ``device``.

    Returns:
        tuple: (model in eval mode on ``device``, metadata dict from ``load_network``).
    """
    from models.fast import accelerate
    from models.networks import define_G, load_network, network_options_for_checkpoint, read_checkpoint

    path = opt["checkpoint"]
    contents = read_checkpoint(path)  # read once (~11 MB), used twice
    model = define_G({**opt, "network_G": network_options_for_checkpoint(opt, path, contents)})
    meta = load_network(model, path, strict=True, expected_scale=opt["scale"], contents=contents)
    model = model.eval().to(device)
    return (model if opt.get("literal") else accelerate(model, device)), meta


INFERENCE_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_forward(model, scale, tile=None, overlap=32, x8=False, precision="fp32"):
    """The restoration function of the scripts: the model, tiled for large inputs (one kernel per
    image, :mod:`utils.tiling`), x8 self-ensembled on request (:mod:`utils.self_ensemble`).

    Args:
        precision (str): ``'fp32'`` (default: the reference numerics), or ``'bf16'`` / ``'fp16'``
            autocast (faster: bf16 is about 3x on CPUs with AMX; not the paper's numerics). fp16
            is refused on the CPU (slow there; use bf16).

    Returns:
        callable: ``forward(lr (B, 3, h, w), kernel=None) -> KULNetOutput`` with float32 tensors.
    """
    from utils.self_ensemble import self_ensemble
    from utils.tiling import auto_tile, tiled_forward

    if precision not in INFERENCE_PRECISIONS:
        raise KULNetError(f"precision={precision!r}: choose one of {', '.join(INFERENCE_PRECISIONS)}")
    dtype = INFERENCE_PRECISIONS[precision]
    device_type = next(model.parameters()).device.type
    if dtype is torch.float16 and device_type == "cpu":
        raise KULNetError("precision fp16 on the CPU: use bf16 (fast on CPUs with AMX or AVX512-BF16) or fp32")

    def plain(lr, kernel=None):
        with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = tiled_forward(model, lr, kernel, scale, auto_tile(lr.shape, tile, scale), overlap)
        return type(out)(*[None if t is None else t.float() for t in out])

    if x8:
        return lambda lr, kernel=None: self_ensemble(plain, lr, scale, kernel)
    return plain


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

    def columns(self):
        """The CSV columns of this run (baseline columns only for enabled baselines)."""
        return KEY_COLUMNS + KULNET_METRICS + [m for b, ms in BASELINE_METRICS.items()
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
        for hs in hr_sets:
            images = []  # each image decoded once per dataset, kept as its 8-bit levels
            for name, loader in hs.items:
                levels = load_hr_levels(loader, self.scale, hs.center_crop)
                _check_size(f"{hs.name}/{name}", levels, self.scale, self.crop)
                images.append((name, levels))
            for noise in noise_levels:
                for tk in kernels:
                    generator = torch.Generator(device=self.device).manual_seed(self.seed)
                    for name, hr_u8 in images:
                        hr_np = raw_to_float(hr_u8)  # what load_hr returns
                        hr = torch.from_numpy(hr_np.transpose(2, 0, 1).copy())[None].to(self.device)
                        m, sr, k_est = self.evaluate_image(hr, tk, noise, generator)
                        row = {"dataset": hs.name, "image": name, "noise": float(noise), "kernel": tk.index,
                               "sig1": tk.sig1, "sig2": tk.sig2, "theta_deg": tk.theta_deg,
                               "height": hr_np.shape[0], "width": hr_np.shape[1], **m}
                        rows.append(row)
                        self.log(_image_line(row))
                        if self.save_dir:
                            self._save(row, sr, k_est, tk.kernel)
                        if progress is not None:
                            progress()
        return rows

    def _save(self, row, sr, k_est, k_true):
        from utils.figures import kernel_figure

        stem = f"{row['image']}_noise{row['noise']:g}_k{row['kernel']}"
        folder = os.path.join(self.save_dir, row["dataset"])
        write_image(os.path.join(folder, f"{stem}_SR.png"), tensor2img(sr))
        fig = kernel_figure(k_est, k_true, row["kernel_psnr"])
        write_image(os.path.join(folder, f"{stem}_kernel.png"), fig)


def _image_line(r):
    parts = [f"{r['dataset']} noise {r['noise']:g} k{r['kernel']} {r['image']}:",
             f"PSNR_Y {format_number(r['psnr_y'])} dB SSIM_Y {format_number(r['ssim_y'], 4)}",
             f"| LR PSNR_Y {format_number(r['lr_psnr_y'])} | kernel PSNR {format_number(r['kernel_psnr'])}"]
    if "bicubic_psnr_y" in r:
        parts.append(f"| bicubic {format_number(r['bicubic_psnr_y'])}")
    if "nonblind_psnr_y" in r:
        parts.append(f"| non-blind {format_number(r['nonblind_psnr_y'])}")
    parts.append(f"| {r['time_s']:.2f} s")
    return " ".join(parts)
