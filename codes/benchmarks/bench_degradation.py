"""Time the batched training degradation (the paper's synthetic degradation) per batch; prints figures, asserts nothing.

One batch = random kernel synthesis + blur + subsample + noise + quantisation of B x 3 x G x G HR
crops (default 16 x 3 x 192 x 192 at x4, the paper's training batch). Rows:

    degradation (fused)  Degradation(scale)(hr, generator): blur and subsample as one strided conv
    two-step blur        the same, but blur at full resolution then subsample (for comparison)
    kernels only         random_kernel_params + make_kernels

Usage (from the repository root):
    python codes/benchmarks/bench_degradation.py [--device auto|cpu|cuda] [--batch 16] [--gt_size 192]
        [--scale 4] [--repeats 20] [--warmup 3] [--threads N] [--json PATH]
"""
import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.timing import time_call  # noqa: E402
from data.degradation import Degradation, add_noise, blur, quantize, subsample  # noqa: E402
from data.kernels import make_kernels, random_kernel_params  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402


def _two_step(deg, hr, generator):
    """Reference pipeline with the blur computed at every HR pixel, then subsampled."""
    b = hr.shape[0]
    p = random_kernel_params(b, generator, hr.device)
    del p["is_iso"]
    k = make_kernels(p, deg.kernel_size, deg.scale)
    lr = subsample(blur(hr, k), deg.scale)
    level = torch.rand(b, generator=generator, device=hr.device) * (deg.noise_high / 255.0)
    return quantize(lr), quantize(add_noise(lr, level, generator))


def _kernels_only(deg, hr, generator):
    p = random_kernel_params(hr.shape[0], generator, hr.device)
    del p["is_iso"]
    return make_kernels(p, deg.kernel_size, deg.scale)


def bench(device, batch, gt_size, scale, repeats, warmup):
    """Run the three rows on one device; returns a list of result dicts."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(0)
    hr = torch.rand((batch, 3, gt_size, gt_size), generator=g, device=device)
    deg = Degradation(scale)
    rows = [
        ("degradation (fused)", lambda: deg(hr, g)),
        ("two-step blur", lambda: _two_step(deg, hr, g)),
        ("kernels only", lambda: _kernels_only(deg, hr, g)),
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    results = []
    for label, fn in rows:
        with torch.no_grad():
            timing = time_call(fn, device, repeats, warmup)
            med, best = timing["ms"], timing["min_ms"]
        results.append({
            "device": str(device), "device_name": name, "threads": torch.get_num_threads(),
            "row": label, "batch": batch, "gt_size": gt_size, "scale": scale,
            "repeats": repeats, "median_ms": round(med, 4), "min_ms": round(best, 4),
        })
        print(f"{str(device):6s} {label:22s} {batch}x3x{gt_size}x{gt_size} x{scale}: "
              f"median {med:9.3f} ms  min {best:9.3f} ms  ({name}, {torch.get_num_threads()} threads)")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CPU, and CUDA when present), cpu or cuda")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--gt_size", type=int, default=192)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (default: torch's choice; 1 is steadier on a busy machine)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif args.device.startswith("cuda") and not torch.cuda.is_available():
        raise KULNetError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    else:
        devices = [args.device]
    if args.gt_size % args.scale:
        raise KULNetError(f"--gt_size {args.gt_size}: must be a multiple of --scale {args.scale}")
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise KULNetError("--batch and --repeats must be >= 1, --warmup >= 0")

    if args.threads is not None:
        if args.threads < 1:
            raise KULNetError(f"--threads {args.threads}: must be >= 1")
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}")
    results = []
    for dev in devices:
        results += bench(dev, args.batch, args.gt_size, args.scale, args.repeats, args.warmup)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "results": results}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run_cli(main)
