"""Whether the estimator's uncertainty map means something: its rank correlation with the per-pixel
kernel error and with the SR error, beside a plain LR edge map's, over an HR set under the nine paper
kernels.

    python codes/scripts/uncertainty_rank.py --checkpoint pretrained/KULNet_x4.pth --scale 4 --hr datasets/Set14/HR \\
        [--noise 0] [--json OUT.json]

Per LR pixel: the uncertainty is the latent variance ``exp(2 log_var)`` averaged over channels (the
map test_real.py draws); the kernel error is the L1 distance between that pixel's kernel (the
estimator's per-pixel kernel map) and the true kernel; the SR error is the mean absolute error of the
SR result over the pixel's s x s block; the edge map is the LR luminance's gradient magnitude (Sobel).
Each correlation is Spearman's over the pixels of one image and kernel, then averaged. A map that
does no better than the edge map says nothing an edge detector would not.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

if __package__ in (None, ""):  # run as a script: put codes/ on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.degradation import Degradation  # noqa: E402
from data.kernels import paper_kernels  # noqa: E402
from evaluation.inference import load_model  # noqa: E402
from evaluation.protocol import build_hr_sets, load_hr  # noqa: E402
from options.inference_options import validate_test_options  # noqa: E402
from utils.atomic_save import atomic_write_text  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402

MAPS = ("uncertainty", "edges")
ERRORS = ("kernel_error", "sr_error")


def edge_map(lr):
    """(B, 3, h, w) in [0, 1] -> (B, h, w): the gradient magnitude of the luminance (Sobel, replicated border)."""
    y = lr.mean(dim=1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=lr.device)
    weights = torch.stack([sobel, sobel.t()])[:, None]
    grad = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), weights)
    return grad.pow(2).sum(dim=1).sqrt()


def pixel_maps(model, lr, hr, kernel, scale):
    """The per-LR-pixel maps of one batch: dict of (B, h, w) tensors (:data:`MAPS` and :data:`ERRORS`)."""
    k_est, _, log_var, kernel_map = model.estimate_kernel(lr, return_kernel_map=True)
    sr = model.restore(lr, k_est).clamp(0, 1)
    target = kernel.flatten(1)[:, :, None, None]
    return {"uncertainty": torch.exp(2 * log_var.float()).mean(dim=1),
            "edges": edge_map(lr),
            "kernel_error": (kernel_map.float() - target).abs().sum(dim=1),
            "sr_error": F.avg_pool2d((sr - hr).abs().mean(dim=1, keepdim=True), scale)[:, 0]}


def rank_correlations(maps):
    """Spearman's correlation of each map with each error, per image of the batch: dict of lists."""
    out = {}
    for m in MAPS:
        for e in ERRORS:
            values = []
            for a, b in zip(maps[m].cpu().numpy(), maps[e].cpu().numpy()):
                if a.min() == a.max() or b.min() == b.max():  # a constant map has no ranks
                    values.append(0.0)
                    continue
                values.append(float(spearmanr(a.ravel(), b.ravel()).statistic))
            out[f"{m}~{e}"] = values
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="weights file (ours or the authors' latest_G.pth)")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--noise", type=float, default=0.0, help="noise level, 0..255 units (default 0)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="also write the figures here")
    return p.parse_args(argv)


@torch.no_grad()
def main(argv=None):
    args = parse_args(argv)
    raw = {"checkpoint": os.path.abspath(args.checkpoint), "device": args.device, "scale": args.scale,
           "datasets": [{"name": "hr", "dataroot_HR": os.path.abspath(args.hr)}]}
    opt = validate_test_options(raw, "uncertainty_rank.py")
    device = resolve_device(opt["device"])
    model, _ = load_model(opt, device)
    scale = opt["scale"]
    kernels = paper_kernels(scale, opt["kernel_size"], device=device)
    degrade = Degradation(scale, opt["kernel_size"], random_noise=False, noise=args.noise)
    generator = torch.Generator(device).manual_seed(0)
    sums = {}
    (hr_set,) = build_hr_sets(opt["datasets"])
    for name, loader in hr_set.items:
        hr = torch.from_numpy(load_hr(loader, scale).transpose(2, 0, 1).copy()).to(device)
        hr = hr[None].expand(len(kernels), -1, -1, -1)
        batch = degrade(hr, generator=generator, kernel=kernels)
        for key, values in rank_correlations(pixel_maps(model, batch.lr, hr, kernels, scale)).items():
            sums.setdefault(key, []).extend(values)
        print(f"{name}: " + ", ".join(f"{k} {np.mean(v[-len(kernels):]):+.3f}" for k, v in sums.items()), flush=True)
    means = {k: float(np.mean(v)) for k, v in sums.items()}
    print(f"mean over {len(hr_set.items)} images x {len(kernels)} kernels (Spearman):")
    for m in MAPS:
        print(f"  {m:<12} with the kernel error {means[f'{m}~kernel_error']:+.3f}, "
              f"with the SR error {means[f'{m}~sr_error']:+.3f}")
    if args.json:
        if os.path.isdir(args.json):
            raise KULNetError(f"--json {args.json}: a folder; give a file name")
        atomic_write_text(args.json, json.dumps({"checkpoint": args.checkpoint, "hr": args.hr, "noise": args.noise,
                                                 "images": len(hr_set.items), "means": means}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
