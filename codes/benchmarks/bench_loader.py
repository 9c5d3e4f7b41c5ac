"""Training data loader benchmark: batches per second as train.py reads them; prints, never asserts.

The loader is built by :func:`data.loader.build_train_loader`, the function train.py calls (seeded
items, continuous epochs, persistent workers, pinned memory on CUDA), from an image folder or a
prepared LMDB folder (``codes/scripts/prepare_dataset.py``) alike. Each batch is moved to the device
and made float as ``KULNetModel.feed_data`` does (:func:`data.loader.hr_to_device`). The first
``--warmup`` batches (worker start-up, cold pages) are not timed.

Figures: ``batches_per_s``; ``ms_per_item`` (wall ms per crop); ``mb_per_s``, megabytes of crop pixels
per second counted at one byte per sample (B x 3 x G x G per batch, whatever the transfer dtype);
``batch_mb``, the batch as transferred (uint8 or float32); ``main_cpu_ms_per_batch``, CPU time of
the training process per batch (receiving, converting: what the training step loses). With fewer
images than a batch, each image is read ``repeat`` times an epoch (a new crop each time), so that batches can be filled.

Usage (from the repository root):
    python codes/benchmarks/bench_loader.py --dataroot datasets/DF2K/HR.lmdb --scale 4 --workers 1 \\
        --batches 200 [--batch 16] [--gt_size 192] [--warmup 5] [--crops uint8|float] [--device auto]
        [--json PATH]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from data import create_dataset  # noqa: E402
from data.loader import build_train_loader, hr_to_device  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402
from utils.lmdb_layout import detect_data_type  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataroot", required=True, help="folder of HR images, or a prepared LMDB folder")
    p.add_argument("--scale", type=int, default=4, help="SR scale (sets the default crop)")
    p.add_argument("--gt_size", type=int, default=None, help="HR crop size (default 48 * scale)")
    p.add_argument("--batch", type=int, default=16, help="batch size")
    p.add_argument("--workers", type=int, default=1, help="data-loader worker processes")
    p.add_argument("--batches", type=int, default=100, help="timed batches")
    p.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    p.add_argument("--crops", choices=("auto", "uint8", "float"), default="auto",
                   help="crops of 8-bit images travel as uint8 or float32; auto: train.py's choice "
                        "(uint8 to a CUDA device, float on the CPU)")
    p.add_argument("--seed", type=int, default=0, help="train.manual_seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (where batches go)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p.parse_args(argv)


def loader_options(args):
    """The option subset :func:`build_train_loader` reads, as the option parser would complete it."""
    gt_size = args.gt_size or 48 * args.scale
    train = {"mode": "HR", "dataroot_GT": os.path.abspath(args.dataroot), "data_type": None, "GT_size": gt_size,
             "batch_size": args.batch, "n_workers": args.workers, "use_shuffle": True, "use_flip": True,
             "use_rot": True, "name": "train"}
    return {"scale": args.scale, "datasets": {"train": train}, "train": {"manual_seed": args.seed}}


def run(args):
    for flag in ("batch", "batches", "scale"):
        if getattr(args, flag) < 1:
            raise KULNetError(f"--{flag} {getattr(args, flag)}: give 1 or more")
    if args.workers < 0 or args.warmup < 0:
        raise KULNetError("--workers and --warmup: give 0 or more")
    opt = loader_options(args)
    root = opt["datasets"]["train"]["dataroot_GT"]
    if not os.path.isdir(root):
        raise KULNetError(f"{args.dataroot}: no such folder; give an image folder or a prepared one")
    device = resolve_device(args.device)
    images = len(create_dataset({**opt["datasets"]["train"], "phase": "test", "scale": args.scale}))
    repeat = -(-args.batch // images)  # fewer images than a batch: each is read several times an epoch
    t0 = time.perf_counter()
    uint8_crops = {"auto": None, "uint8": True, "float": False}[args.crops]
    loader, sampler = build_train_loader(opt, 0, 1, device, uint8_crops=uint8_crops, repeat=repeat)
    init_s = time.perf_counter() - t0
    sampler.set_epoch(0)
    batches = iter(loader)
    t_warm = time.perf_counter()
    for _ in range(args.warmup):
        hr_to_device(next(batches)["hr"], device)
    warmup_s = time.perf_counter() - t_warm
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
        batch = next(batches)["hr"]
        hr = hr_to_device(batch, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, main_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    gt = opt["datasets"]["train"]["GT_size"]
    per_s = args.batches / seconds
    result = {
        "dataroot": root, "data_type": detect_data_type(root), "images": images, "repeat": repeat,
        "scale": args.scale, "gt_size": gt, "batch": args.batch, "workers": args.workers,
        "crops": args.crops, "transfer_dtype": str(batch.dtype).replace("torch.", ""),
        "device": str(device), "batches": args.batches, "warmup": args.warmup, "seconds": seconds,
        "init_s": init_s, "warmup_s": warmup_s, "batches_per_s": per_s,
        "ms_per_item": 1e3 / (per_s * args.batch), "mb_per_s": per_s * args.batch * 3 * gt * gt / 1e6,
        "batch_mb": batch.numel() * batch.element_size() / 1e6, "output_shape": list(hr.shape),
        "main_cpu_ms_per_batch": 1e3 * main_cpu / args.batches,
    }
    return result


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    print(f"{result['data_type']} {result['dataroot']}: {result['batches_per_s']:.2f} batches/s, "
          f"{result['ms_per_item']:.3f} ms/item, {result['mb_per_s']:.1f} MB/s "
          f"(B{result['batch']} GT{result['gt_size']} x{result['scale']}, {result['workers']} worker(s), "
          f"{result['transfer_dtype']} crops, {result['batches']} batches after {result['warmup']}, "
          f"{result['device']})")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
