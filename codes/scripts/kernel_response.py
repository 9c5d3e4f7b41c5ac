"""The kernel estimate of a checkpoint under the paper protocol, without restoring: kernel PSNR, a
constant guess's kernel PSNR, the kernel response and gain, per dataset and noise level.

    python codes/scripts/kernel_response.py --checkpoint pretrained/KULNet_x4.pth --scale 4 \\
        --datasets Set5=datasets/Set5/HR [Set14=datasets/Set14/HR] [--noise 0 10] [--json OUT.json]

The LR images are test.py's (the same kernels and seeded noise) and the estimator runs as test.py
runs it, so the figures equal test.py's kernel columns; the SR part is skipped (the images are only
upsampled bicubically in its place). Set5 at x4 (45 estimates) takes about 40 s of CPU time, under a
minute on 2 CPU cores. ``--json`` is checked before the work and written to a temporary file moved into
place; an existing file is replaced only with ``--overwrite``.
"""
import argparse
import json
import os
import sys

import torch

if __package__ in (None, ""):  # run as a script: put codes/ on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from evaluation.evaluator import Evaluator, bicubic_upsample  # noqa: E402
from evaluation.inference import load_model  # noqa: E402
from evaluation.protocol import build_hr_sets, build_kernels  # noqa: E402
from evaluation.results import kernel_estimation_table, summarize  # noqa: E402
from models.modules.kulnet import KULNetOutput  # noqa: E402
from options.inference_options import validate_test_options  # noqa: E402
from utils.atomic_save import atomic_write_text  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402
from utils.output_dir import check_new_file  # noqa: E402

KERNEL_METRICS = ("kernel_psnr", "const_kernel_psnr", "kernel_response", "kernel_gain")
COST = ("Cost: the estimator alone, no SR part: Set5 at x4 (nine kernels, 45 estimates) takes about 40 s "
        "of CPU time, under a minute on 2 CPU cores.")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=COST)
    p.add_argument("--checkpoint", required=True, help="weights file (ours or the authors' latest_G.pth)")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--datasets", nargs="+", required=True, metavar="NAME=FOLDER", help="HR folders")
    p.add_argument("--noise", nargs="+", type=float, default=[0.0], metavar="LEVEL", help="0..255 units")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    return p.parse_args(argv)


def estimate_only(model, scale):
    """A forward for the Evaluator: the model's kernel estimate, bicubic upsampling in place of the SR."""
    def forward(lr, kernel=None):
        k, mean, log_var = model.estimate_kernel(lr)
        return KULNetOutput(bicubic_upsample(lr, scale), k.float(), mean, log_var)
    return forward


def main(argv=None):
    args = parse_args(argv)
    if args.json:
        check_new_file(args.json, "--json", args.overwrite, {"checkpoint": args.checkpoint})
    datasets = []
    for item in args.datasets:
        name, sep, folder = item.partition("=")
        if not sep:
            raise KULNetError(f"--datasets {item}: give NAME=FOLDER, e.g. Set5=datasets/Set5/HR")
        datasets.append({"name": name, "dataroot_HR": os.path.abspath(folder)})
    opt = validate_test_options({"scale": args.scale, "checkpoint": os.path.abspath(args.checkpoint),
                                 "device": args.device, "datasets": datasets, "noise": args.noise}, "command line")
    device = resolve_device(opt["device"])
    model, _ = load_model(opt, device)
    evaluator = Evaluator(estimate_only(model, opt["scale"]), opt["scale"], opt["kernel_size"], opt["crop_border"],
                          opt["seed"], device, {}, log=lambda line: None)
    with torch.inference_mode():
        rows = evaluator.run(build_hr_sets(opt["datasets"]), build_kernels(opt), opt["noise"])
    summary = summarize(rows)
    print(kernel_estimation_table(summary))
    if args.json:
        figures = [{"dataset": e["dataset"], "noise": e["noise"], **{m: e["average"][m] for m in KERNEL_METRICS}}
                   for e in summary]
        doc = {"checkpoint": opt["checkpoint"], "scale": opt["scale"], "results": figures}
        atomic_write_text(args.json, json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    run_cli(main)
