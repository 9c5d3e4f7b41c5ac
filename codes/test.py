"""Reproduce a paper table: the nine-kernel synthetic protocol in one command.

    python codes/test.py                                  # quick demo: 2 scikit-image photos, x4 model
    python codes/test.py -opt options/test/test_demo_full.yml   # the full demo: 6 photos, larger crops
    python codes/test.py -opt options/test/test.yml       # Set5 (and the sets listed there)
    python codes/test.py -opt options/test/test.yml --noise 0 5 10 --x8 --device cuda
    python codes/test.py -opt options/test/test.yml --scale 2   # pretrained/KULNet_x2.pth
    python codes/test.py -opt options/test/test.yml --sv_mode 3  # the authors' spatially variant pattern 3
    cd codes && python test.py --opt options/test/test.yml      # the authors' launch; their test.yml too

Every dataset x noise level x kernel x image is degraded (fixed seed), restored and scored; a line
per image, the per-kernel table and the nine-kernel average are printed, and the results go to
``<out>/results.{csv,json,md}`` (one row per dataset x noise x kernel x image, the summary, and
the reproducibility record), beside ``test_<name>_<time>.log``, the plain-text log of what was printed.
With no ``-opt`` the options are ``options/test/test_demo.yml`` (the quick demo: the same work on any
device, under two minutes on 2 CPU cores). An option file in the authors' layout is
translated (``--print_options`` writes it in ours; ``--help-options`` lists their keys).

``sv_mode`` 1-6 (the authors' spatially variant patterns, taken over from MANet) replaces the kernels:
every image is blurred with a kernel per 40x40 HR block; the kernel PSNR and the non-blind baseline use
the mean of the LR pixels' kernels, and ``<out>/sv_blocks.json`` lists every image's block parameters.
"""
import argparse
import json
import os
import sys
import time

import torch
from tqdm import tqdm

from data.spatially_variant import SV_BLOCK, SV_MODES, authors_block_params
from evaluation.evaluator import Evaluator
from evaluation.inference import load_model, make_forward, run_flags
from evaluation.protocol import SKIMAGE_PHOTOS, build_hr_sets, build_kernels, check_hr_sets
from evaluation.results import (
    kernel_estimation_table,
    kernel_table,
    paper_table,
    reproducibility_record,
    summarize,
    write_results,
)
from options.authors_layout import add_layout_flags, our_layout_yaml
from options.inference_options import (
    PRECISION,
    TEST_SCHEMA,
    apply_scale,
    apply_shared_flags,
    check_test_paths,
    validate_test_options,
)
from options.options import REPO_ROOT, locate_option_file, read_options, source_name
from utils.device import cudnn_autotuning, resolve_device
from utils.errors import run_cli
from utils.output_dir import prepare_output_dir
from utils.run_log import RunLog

DEMO_OPTIONS = os.path.join(REPO_ROOT, "options", "test", "test_demo.yml")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="KULNet synthetic test protocol (nine kernels). Cost: with no -opt, "
                                "the quick demo, about a minute of CPU time (under two minutes on 2 CPU cores); "
                                "each image of a set is restored nine times per noise level, twice with the "
                                "true-kernel baseline.")
    p.add_argument("-opt", "--opt", default=None, help="test option file, ours or the authors' test.yml "
                   "(default: options/test/test_demo.yml, the quick demo, under two minutes on 2 CPU cores; "
                   "options/test/test_demo_full.yml: the full demo, about 12 minutes); from the current "
                   "folder, else the repository root")
    p.add_argument("--scale", type=int, help="SR scale (default: the option file's); the shipped "
                   "checkpoint follows it (pretrained/KULNet_x<scale>.pth)")
    p.add_argument("--checkpoint", help="weights file (ours or the authors' latest_G.pth)")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--x8", action="store_true", help="x8 self-ensemble (flips and transposes)")
    p.add_argument("--literal", action="store_true",
                   help="the network's literal path: the authors' order of operations (slower)")
    p.add_argument("--precision", choices=PRECISION.choices,
                   help="inference autocast (default fp32, the paper's numerics; bf16 is faster, not exact)")
    p.add_argument("--datasets", nargs="+", metavar="[NAME=]FOLDER",
                   help="HR folders to test instead of the option file's datasets "
                   "('skimage': the photographs shipped with scikit-image)")
    p.add_argument("--noise", nargs="+", type=float, metavar="LEVEL", help="noise levels, 0..255")
    p.add_argument("--out", help="results folder (default results/<name>)")
    p.add_argument("--no_save_images", action="store_true", help="do not write SR PNGs / kernel figures")
    p.add_argument("--tile", type=int, help="LR tile size for the SR part (0: automatic)")
    p.add_argument("--sv_mode", type=int, choices=(0,) + SV_MODES,
                   help="1-6: the authors' spatially variant patterns instead of the kernels; 0: none")
    p.add_argument("--save_kernel", action="store_true",
                   help="accepted for the authors' launch: kernel figures are saved with the SR images")
    add_layout_flags(p, TEST_SCHEMA)
    return p.parse_args(argv)


def _dataset_arg(text):
    if text == "skimage":
        return {"name": "skimage", "skimage": list(SKIMAGE_PHOTOS)}
    name, sep, folder = text.partition("=")
    if not sep:
        folder = text
        base = os.path.basename(os.path.normpath(folder))
        name = os.path.basename(os.path.dirname(os.path.abspath(folder))) if base == "HR" else base
    return {"name": name, "dataroot_HR": os.path.abspath(folder)}


def build_options(args):
    """Option file + command-line overrides -> (validated options (paths checked unless printing them),
    the lines reporting a translation from the authors' layout, the options in our layout)."""
    path = locate_option_file(args.opt) if args.opt else DEMO_OPTIONS
    given = [key for key, flag in (("checkpoint", args.checkpoint), ("datasets", args.datasets)) if flag]
    raw, notes = read_options(path, "test", TEST_SCHEMA, not args.print_options, given)
    if args.scale is not None:
        apply_scale(raw, args.scale)
    apply_shared_flags(raw, args)
    if args.datasets:
        raw["datasets"] = [_dataset_arg(d) for d in args.datasets]
    if args.noise:
        raw["noise"] = args.noise
    if args.no_save_images:
        raw["save_images"] = False
    if args.sv_mode is not None:
        raw["sv_mode"] = args.sv_mode
        if args.sv_mode:  # the pattern replaces the file's kernels
            raw.pop("kernels", None), raw.pop("kernel_file", None)
    opt = validate_test_options(raw, source_name(path))
    if not args.print_options:
        check_test_paths(opt)
    return opt, notes, raw


def write_sv_blocks(out, rows, opt):
    """``<out>/sv_blocks.json``: every image's blocks and their (sig1, sig2, theta) under ``sv_mode``."""
    images = {(r["dataset"], r["image"]): (r["height"], r["width"]) for r in rows}
    doc = {"sv_mode": opt["sv_mode"], "block": SV_BLOCK, "seed": opt["seed"], "scale": opt["scale"],
           "columns": ["sig1 (variance)", "sig2 (variance)", "theta (radians)"],
           "images": [{"dataset": d, "image": i, "height": h, "width": w,
                       "blocks": authors_block_params(opt["sv_mode"], h, w, opt["scale"], opt["seed"]).tolist()}
                      for (d, i), (h, w) in images.items()]}
    path = os.path.join(out, "sv_blocks.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1)
    return path


def main(argv=None):
    args = parse_args(argv)
    opt, notes, raw = build_options(args)
    if args.print_options:
        print(our_layout_yaml(raw, TEST_SCHEMA, notes, source_name(args.opt or DEMO_OPTIONS)))
        return 0
    log = RunLog(tqdm.write)
    for line in notes:
        log(line)
    kernels = build_kernels(opt)
    hr_sets = build_hr_sets(opt["datasets"])
    check_hr_sets(hr_sets, opt["scale"], opt["crop_border"])  # every image read once, before the model
    prepare_output_dir(opt["out"])  # a bad --out fails now, not after the whole grid
    log_path = log.open(os.path.join(opt["out"], f"test_{opt['name']}_{time.strftime('%y%m%d-%H%M%S')}.log"))
    device = resolve_device(opt["device"])
    model, meta = load_model(opt, device)
    record = reproducibility_record(opt, device, meta)
    grid = f"sv_mode {opt['sv_mode']}" if opt["sv_mode"] else f"{len(kernels)} kernels"
    log(f"KULNet x{opt['scale']} | {opt['checkpoint']} | device {device} | "
        f"{len(hr_sets)} dataset(s) x {len(opt['noise'])} noise level(s) x {grid}{run_flags(opt)}")

    save_dir = os.path.join(opt["out"], "images") if opt["save_images"] else None
    forward = make_forward(model, opt["scale"], opt["tile"], opt["tile_overlap"], opt["x8"],
                           opt["precision"])
    evaluator = Evaluator(forward, opt["scale"], opt["kernel_size"], opt["crop_border"],
                          opt["seed"], device, opt["baselines"], save_dir, log=log)
    torch.manual_seed(opt["seed"])  # the latent's sampling, when network_G.sample_at_eval is on
    total = sum(len(s.items) for s in hr_sets) * len(kernels) * len(opt["noise"])
    # every image is restored once per kernel and noise level at one size: cuDNN's autotuning pays
    with cudnn_autotuning(device.type == "cuda"), torch.inference_mode(), \
            tqdm(total=total, unit="img", file=sys.stderr) as bar:
        rows = evaluator.run(hr_sets, kernels, opt["noise"], progress=bar.update)

    summary = summarize(rows)
    log()
    for entry in summary:
        log(kernel_table(entry) + "\n")
    log(paper_table(summary, opt["scale"]) + "\n")
    log(kernel_estimation_table(summary))
    paths = write_results(opt["out"], rows, evaluator.columns(), summary, record, opt, opt["scale"])
    extra = f", {write_sv_blocks(opt['out'], rows, opt)}" if opt["sv_mode"] else ""
    log(f"\nresults: {paths['csv']}, {paths['json']}, {paths['md']}{extra}; log: {log_path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
