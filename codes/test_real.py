"""Blind SR of real photographs (no ground truth), with the estimated kernel and its uncertainty.

    python codes/test_real.py -opt options/test/test_real.yml
    cd codes && python test_real.py --opt options/test/test_real.yml   # the authors' launch and file too
    python codes/test_real.py --input FOLDER_OR_FILE --scale 4 [--checkpoint PATH] [--out DIR]
                              [--tile N] [--no_border] [--x8] [--device cpu]

For every image ``<name>.<ext>`` it writes into the output folder:
``<name>_SR.png`` (8-bit RGB; a grayscale photo is restored as three equal channels, as the authors
do), ``<name>_kernel.npy`` (21x21, float32, sums to 1), ``<name>_kernel.png`` (normalised, enlarged)
and ``<name>_uncertainty.png`` (heat map of the estimator's latent variance ``exp(2 log_var)``
averaged over channels, resized to the SR size: bright = where the kernel estimate is unsure). The
kernel figure marks the centre of the authors' shifted grid and the kernel's centroid. The map is
cropped like the SR (the authors' blurred border removed) and drawn on an absolute colour scale (0 to
2, the prior's variance 1 in the middle); its edge rows differ from the interior by about 0.01 (the
convolutions' padding at the photo's edge), which that scale leaves invisible.

Output names are unique within a run (:func:`output_stems`): when several inputs share a name
(``a.png`` and ``a.jpg``; compared ignoring case), each of them keeps its extension in the output
name (``a_png_SR.png``, ``a_jpg_SR.png``, ...); inputs with a name of their own keep ``<name>``. A name
still taken after that gets ``_2``, ``_3``, ... (in input order).

By default the LR gets the authors' blurred border first and ``c*s`` pixels are cropped
from the SR result. RGBA inputs lose their alpha (noted), 16-bit inputs give 8-bit outputs (noted);
corrupt files and images under ``MIN_LR_SIZE`` pixels a side are reported and skipped, the rest are
processed. Large photos are restored tile by tile with one kernel estimated on the whole photo
(:mod:`evaluation.tiling`).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from data.lr_dataset import add_real_border, remove_real_border
from evaluation.figures import kernel_scale_figure, uncertainty_figure
from evaluation.inference import load_model, make_forward, run_flags
from evaluation.shipped import low_response_note
from options.authors_layout import add_layout_flags, our_layout_yaml
from options.inference_options import (
    PRECISION,
    REAL_SCHEMA,
    apply_scale,
    apply_shared_flags,
    check_real_paths,
    validate_real_options,
)
from options.options import locate_option_file, read_options, source_name
from utils.device import cudnn_autotuning, resolve_device
from utils.errors import KULNetError, run_cli
from utils.image_io import image_size, img2tensor, list_image_inputs, read_image, tensor2img, write_image
from utils.output_dir import prepare_output_dir

MIN_LR_SIZE = 8  # LR pixels a side; below this there is too little image to estimate a 21x21 kernel
# --input skimage: these photographs of the installed scikit-image package, used as LR inputs
SKIMAGE_INPUTS = ("astronaut.png", "chelsea.png", "coffee.png")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="KULNet on real LR photographs. Cost: about 40 s of CPU time for a 400x200 photo at x4 on "
        "2 CPU cores (about a minute), growing with its pixels; a GPU takes a fraction of a second.",
        epilog="Outputs per input <name>.<ext>: <name>_SR.png, <name>_kernel.npy, <name>_kernel.png, "
        "<name>_uncertainty.png. Inputs that share a name (a.png and a.jpg, ignoring case) keep their "
        "extension in the output name instead: a_png_SR.png, a_jpg_SR.png, ...; a name still taken "
        "after that gets _2, _3, ... in input order.")
    p.add_argument("-opt", "--opt", default=None, help="option file, ours or the authors' test_real.yml, e.g. "
                   "options/test/test_real.yml; from the current folder, else the repository root")
    p.add_argument("--input", help="a folder of LR images, one image, or 'skimage' (demo photographs "
                   "shipped with scikit-image)")
    p.add_argument("--scale", type=int, help="SR scale (default 4)")
    p.add_argument("--checkpoint", help="weights file (default pretrained/KULNet_x<scale>.pth)")
    p.add_argument("--out", help="output folder (default results/<name>)")
    p.add_argument("--tile", type=int, help="LR tile size for the SR part (0: automatic)")
    p.add_argument("--no_border", action="store_true", help="skip the authors' blurred border")
    p.add_argument("--x8", action="store_true", help="x8 self-ensemble")
    p.add_argument("--literal", action="store_true",
                   help="the network's literal path: the authors' order of operations (slower)")
    p.add_argument("--precision", choices=PRECISION.choices,
                   help="inference autocast (default fp32; bf16 is about 3x faster on CPUs with AMX)")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--save_kernel", action="store_true",
                   help="accepted for the authors' launch: the kernels are always saved")
    add_layout_flags(p, REAL_SCHEMA)
    return p.parse_args(argv)


def build_options(args):
    """Option file and/or command line -> (validated options (checkpoint and input checked unless printing
    them), the lines reporting a translation from the authors' layout, the options in our layout)."""
    if args.opt is None and args.input is None:
        raise KULNetError("no input: give -opt options/test/test_real.yml or --input FOLDER_OR_FILE")
    path = locate_option_file(args.opt) if args.opt else None
    given = [key for key, flag in (("checkpoint", args.checkpoint), ("input", args.input)) if flag]
    raw, notes = read_options(path, "real", REAL_SCHEMA, not args.print_options, given) if path else ({}, [])
    demo = args.input == "skimage"
    if demo:
        import skimage.data

        args.input = skimage.data.data_dir
    if args.scale is not None:
        raw.setdefault("name", "KULNet_x4_real")
        apply_scale(raw, args.scale)
    apply_shared_flags(raw, args, paths=("input", "checkpoint", "out"))
    if args.no_border:
        raw["border"] = False
    opt = validate_real_options(raw, source_name(path) if path else "command line")
    if not args.print_options:
        check_real_paths(opt)
    opt["files"] = [os.path.join(opt["input"], f) for f in SKIMAGE_INPUTS] if demo else None
    return opt, notes, raw


def output_stems(paths):
    """Unique output name stems for the input files, in input order.

    ``<name>`` for ``<name>.<ext>``; every input whose ``<name>`` another input shares (compared
    ignoring case, for case-insensitive file systems) gets ``<name>_<ext>`` (extension as written);
    a stem still taken after that gets ``_2``, ``_3``, ... .

    Args:
        paths (list[str]): input image paths.

    Returns:
        list[str]: one file-name stem per path, pairwise different ignoring case.
    """
    parts = [os.path.splitext(os.path.basename(p)) for p in paths]
    counts = {}
    for stem, _ in parts:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    wanted = [f"{stem}_{ext.lstrip('.')}" if counts[stem.casefold()] > 1 else stem for stem, ext in parts]
    taken, stems = set(), []
    for stem in wanted:
        unique, n = stem, 1
        while unique.casefold() in taken:
            n += 1
            unique = f"{stem}_{n}"
        taken.add(unique.casefold())
        stems.append(unique)
    return stems


OUTPUT_SUFFIXES = ("_SR.png", "_kernel.npy", "_kernel.png", "_uncertainty.png")


def check_outputs_spare_inputs(paths, stems, out):
    """Refuse an ``out`` where an output file would be one of the inputs (``a.png`` and ``a_SR.png``
    restored into their own folder): the photos are never written over.

    Raises:
        KULNetError: one line naming the input.
    """
    inputs = {os.path.realpath(p) for p in paths}
    for stem in stems:
        for suffix in OUTPUT_SUFFIXES:
            target = os.path.join(out, stem + suffix)
            if os.path.realpath(target) in inputs:
                raise KULNetError(f"{target}: is an input, and the outputs of {stem} would be written over it; "
                                  f"give another --out")


def sizes_repeat(paths, x8=False, tile=None):
    """Whether the network meets an input size more than once in this run (then cuDNN's autotuning
    pays for itself): x8's transforms, fixed tiles, or photos that share a size (from the headers)."""
    if x8 or tile:
        return True
    sizes = [image_size(p) for p in paths]
    return len(set(sizes)) < len(sizes)


def restore_one(path, forward, opt, device, stem=None):
    """Restore one photo and write its outputs.

    Args:
        path (str): the LR image.
        forward (callable): ``forward(lr (1, 3, h, w)) -> KULNetOutput`` (see ``make_forward``).
        opt (dict): validated options (``scale``, ``border``, ``out``).
        device (torch.device): where to run.
        stem (str | None): output file-name stem (default: the input's name without extension).

    Returns:
        str: notes about conversions ('' when none).

    Raises:
        KULNetError: unreadable or too small image (the caller reports it and goes on).
    """
    img, info = read_image(path)
    h, w = img.shape[:2]
    if min(h, w) < MIN_LR_SIZE:
        raise KULNetError(f"{path}: {h}x{w} pixels is too small (at least {MIN_LR_SIZE}x{MIN_LR_SIZE} "
                          f"LR pixels are needed to estimate a kernel)")
    scale = opt["scale"]
    lr = img2tensor(img).to(device)
    border = 0
    if opt["border"]:
        lr, border = add_real_border(lr, scale)
    out = forward(lr)
    sr = remove_real_border(out.sr, border, scale)
    kernel = out.kernel[0].float().cpu().numpy()

    if stem is None:
        stem = os.path.splitext(os.path.basename(path))[0]
    stem = os.path.join(opt["out"], stem)
    write_image(f"{stem}_SR.png", tensor2img(sr))
    np.save(f"{stem}_kernel.npy", kernel)
    write_image(f"{stem}_kernel.png", kernel_scale_figure(kernel, scale=scale))
    if out.log_var is not None:
        write_image(f"{stem}_uncertainty.png", uncertainty_figure(remove_real_border(out.log_var, border, 1),
                                                                  sr.shape[-2:]))
    notes = []
    if info.was_grayscale:
        notes.append("grayscale in, restored as three channels")
    if info.had_alpha:
        notes.append("alpha channel dropped, RGB out")
    if info.bit_depth == 16:
        notes.append("16-bit in, 8-bit out")
    return "; ".join(notes)


def main(argv=None):
    args = parse_args(argv)
    opt, notes, raw = build_options(args)
    if args.print_options:
        print(our_layout_yaml(raw, REAL_SCHEMA, notes, args.opt or "command line"))
        return 0
    for line in notes:
        print(line)
    paths = opt["files"] or list_image_inputs(opt["input"])
    prepare_output_dir(opt["out"])
    check_outputs_spare_inputs(paths, output_stems(paths), opt["out"])
    device = resolve_device(opt["device"])
    model, _ = load_model(opt, device)
    note = low_response_note(opt["checkpoint"])
    if note:
        print(note)
    forward = make_forward(model, opt["scale"], opt["tile"], opt["tile_overlap"], opt["x8"],
                           opt["precision"])
    print(f"KULNet x{opt['scale']} | {opt['checkpoint']} | device {device} | {len(paths)} image(s) "
          f"| border {'on' if opt['border'] else 'off'}{run_flags(opt)}")

    autotune = device.type == "cuda" and sizes_repeat(paths, opt["x8"], opt["tile"])
    done, skipped = 0, []
    with cudnn_autotuning(autotune), torch.inference_mode():
        for path, stem in tqdm(list(zip(paths, output_stems(paths))), unit="img", file=sys.stderr):
            name = os.path.basename(path)
            start = time.perf_counter()
            try:
                notes = restore_one(path, forward, opt, device, stem)
            except KULNetError as err:
                skipped.append(name)
                tqdm.write(f"skipped {name}: {err}")
                continue
            done += 1
            if stem != os.path.splitext(name)[0]:
                notes = "; ".join(filter(None, [f"outputs named {stem}_* (name shared)", notes]))
            tqdm.write(f"{name}: done in {time.perf_counter() - start:.2f} s" + (f" ({notes})" if notes else ""))
    summary = f"{done} of {len(paths)} image(s) restored into {opt['out']}"
    if skipped:
        summary += f"; {len(skipped)} skipped: {', '.join(skipped)}"
    print(summary)
    if done == 0:
        raise KULNetError(f"{opt['input']}: no image could be restored (see the messages above)")
    return 0


if __name__ == "__main__":
    run_cli(main)
