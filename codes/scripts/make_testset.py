"""Make a synthetic blind-SR test set from HR images: the exact test set behind a table, publishable.

Usage (from the repository root)::

    python codes/scripts/make_testset.py --hr datasets/Set5/HR --scale 4 --out datasets/Set5_x4_paper
    python codes/scripts/make_testset.py --hr HR --scale 2 --out OUT --noise 10 \
        --sig1 2.0 3.5 --sig2 1.0 2.0 --theta 10 45          # degrees (as deg / 180 * 3.14, the authors' quirk)
    python codes/scripts/make_testset.py --hr HR --scale 4 --out OUT --kernels my_kernels.npy   # (l,l) or (N,l,l)
    python codes/scripts/make_testset.py --hr HR --scale 4 --out OUT --sv_mode 3   # the authors' pattern 3

Output (see the README.txt written beside it)::

    OUT/HR/<name>.png                 HR mod-cropped to the scale, 8-bit RGB
    OUT/kernel_XX/LR/<name>.png       LR = (HR * k) subsampled by s, + noise, 8-bit
    OUT/kernel_XX/kernel.npy          the 21x21 kernel (float32, sums to 1)
    OUT/kernel_XX/kernel.png          the kernel enlarged (nearest), normalised to its maximum
    OUT/README.txt, OUT/meta.json     what was done, with every parameter
    OUT/sv_mode<N>/LR/<name>.png      --sv_mode N (1-6): the authors' spatially variant pattern (MANet's),
    OUT/sv_mode<N>/blocks/<name>.npy  a kernel per 40x40 HR block, whose (sig1, sig2, theta) these hold

The degradation is the paper's (``data.degradation.Degradation``). Deterministic: for each kernel a
``torch.Generator`` seeded with ``--seed`` draws the noise for the images in sorted name order, so the
same command gives the same files. The set is written into a temporary folder beside OUT and moved into
place when complete; ``--overwrite`` replaces a previous set as a whole (none of its files stay), and a
folder that holds other files is never written into. Read back with
``data.PairedDataset('OUT/HR', 'OUT/kernel_01/LR', scale, kernel_folder='OUT/kernel_01')``.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: put codes/ on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.degradation import Degradation  # noqa: E402
from data.kernels import (  # noqa: E402
    PAPER_KERNELS,
    anisotropic_gaussian_kernels,
    degrees_to_radians_authors,
    isotropic_gaussian_kernels,  # noqa: E402
)
from data.paired_dataset import load_kernel_file  # noqa: E402
from data.spatially_variant import SV_BLOCK, SV_MODES, authors_block_params, degrade_authors_sv  # noqa: E402
from evaluation.figures import kernel_image  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402
from utils.image_io import img2tensor, list_images, mod_crop, read_image, tensor2img, write_image  # noqa: E402
from utils.output_dir import prepare_output_dir  # noqa: E402
from utils.output_lock import claim_output  # noqa: E402

KERNEL_PNG_ZOOM = 10
SCALES = (2, 3, 4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Make a synthetic blind-SR test set (HR, LR per kernel, kernels).")
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--scale", required=True, type=int, help="SR scale: 2, 3 or 4")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian noise level in 0..255 units (default 0)")
    p.add_argument("--sig1", type=float, nargs="+", help="kernel variances along the first axis (one per kernel)")
    p.add_argument("--sig2", type=float, nargs="+", help="kernel variances along the second axis")
    p.add_argument("--theta", type=float, nargs="+", help="kernel angles in degrees (converted as deg/180*3.14)")
    p.add_argument("--kernels", help="a .npy/.mat file of one (l,l) or several (N,l,l) kernels instead")
    p.add_argument("--kernel_size", type=int, default=21, help="kernel size for sig1/sig2/theta kernels")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the test set OUT already holds, as a whole")
    p.add_argument("--sv_mode", type=int, choices=(0,) + SV_MODES,
                   help="1-6: the authors' spatially variant pattern (a kernel per 40x40 HR block) instead of "
                        "kernels; 0: none")
    return p.parse_args(argv)


def build_kernels(args):
    """List of (kernel (l, l) float32 tensor, description dict) from the arguments."""
    if args.kernels:
        if args.sig1 or args.sig2 or args.theta:
            raise KULNetError("--kernels: give either a kernel file or --sig1/--sig2/--theta, not both")
        arr = load_kernel_file(args.kernels)
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.shape[-1] % 2 == 0:
            raise KULNetError(f"{args.kernels}: kernel size {arr.shape[-1]} is even; kernels must be odd-sized")
        out = []
        for i, k in enumerate(arr):
            if not np.isfinite(k).all() or (k < 0).any() or k.sum() <= 0:
                raise KULNetError(f"{args.kernels}: kernel {i} has NaN/inf or negative entries or sums to 0")
            out.append((torch.from_numpy(k / k.sum()).float(),
                        {"source": os.path.basename(args.kernels), "index": i, "normalised_sum": float(k.sum())}))
        return out
    if args.sig1 is None:
        if args.sig2 or args.theta:
            raise KULNetError("--sig2/--theta: give --sig1 as well (one value per kernel)")
        table = [(s1, s2, th, "paper") for s1, s2, th in PAPER_KERNELS]
    elif args.sig2 is None and args.theta is None:
        table = [(s1, None, None, "isotropic") for s1 in args.sig1]
    else:
        if args.sig2 is None or args.theta is None or not len(args.sig1) == len(args.sig2) == len(args.theta):
            raise KULNetError("--sig1/--sig2/--theta: give the same number of values to all three "
                              "(or --sig1 alone for isotropic kernels)")
        table = [(s1, s2, th, "arguments") for s1, s2, th in zip(args.sig1, args.sig2, args.theta)]
    out = []
    for s1, s2, th, source in table:
        if s1 <= 0 or (s2 is not None and s2 <= 0):
            raise KULNetError(f"--sig1/--sig2 = {s1}/{s2}: must be > 0")
        if s2 is None:
            k = isotropic_gaussian_kernels(s1, args.kernel_size, args.scale)[0]
            desc = {"source": source, "sigma": s1}
        else:
            rad = degrees_to_radians_authors(th)
            k = anisotropic_gaussian_kernels(s1, s2, rad, args.kernel_size, args.scale)[0]
            desc = {"source": source, "sig1": s1, "sig2": s2, "theta_degrees": th, "theta_radians": rad}
        out.append((k.float(), desc))
    return out


def kernel_png(kernel):
    """(l, l) kernel -> uint8 (l*zoom, l*zoom) image, normalised to its maximum, nearest-neighbour zoom."""
    return kernel_image(kernel, KERNEL_PNG_ZOOM)[:, :, 0]


def load_hr_images(folder, scale):
    """Read, mod-crop and 8-bit-quantise the HR images; returns [(name, Tensor (1, 3, H, W))]."""
    images, seen = [], {}
    for path in list_images(folder):
        name = os.path.splitext(os.path.basename(path))[0]
        if name in seen:
            raise KULNetError(f"{path}: same name as {seen[name]}; rename one (outputs are <name>.png)")
        seen[name] = path
        img = mod_crop(read_image(path)[0], scale)
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise KULNetError(f"{path}: image is smaller than the scale {scale}; remove it")
        hr = img2tensor(np.round(img * 255.0) / 255.0)  # the written 8-bit HR is what gets degraded
        images.append((name, hr))
    return images


README_TEMPLATE = """Synthetic blind-SR test set made by codes/scripts/make_testset.py (KULNet).

Source HR folder: {hr}
Scale: x{scale}    Noise level: {noise} (0..255 units)    Seed: {seed}    Kernels: {n_kernels} ({source})

Layout:
  HR/<name>.png              HR image mod-cropped to a multiple of {scale} (8-bit RGB PNG)
  kernel_XX/LR/<name>.png    LR image: HR blurred with the kernel (replicate padding, correlation),
                             subsampled by {scale} from (0, 0), plus Gaussian noise, clamped, 8-bit
  kernel_XX/kernel.npy       the kernel, float32 (l, l), sums to 1
  kernel_XX/kernel.png       the kernel enlarged {zoom}x (nearest neighbour), normalised to its maximum
  meta.json                  every parameter (sig1/sig2 are variances; theta in degrees and in radians
                             as deg / 180 * 3.14, the authors' convention)

Noise: for each kernel a torch.Generator seeded with {seed} draws the noise of the images in sorted
name order. The same command reproduces these files.

Load a pair in Python (from the repository's codes/ folder on sys.path):
  from data import PairedDataset
  ds = PairedDataset('{out}/HR', '{out}/kernel_01/LR', {scale}, kernel_folder='{out}/kernel_01')
"""


SV_README = """
Spatially variant (--sv_mode {mode}): the authors' pattern {mode} (taken over from MANet) instead of the kernels:
  sv_mode{mode}/LR/<name>.png         every HR pixel blurred with the kernel of its 40x40 block, subsampled,
                                     noise, 8-bit (as above)
  sv_mode{mode}/blocks/<name>.npy     (n_h, n_w, 3): each block's sig1, sig2 (variances) and theta (radians)
  Mode 5 draws its parameters from a NumPy generator seeded with {seed} for every image.
"""


def write_sv_folder(args, images, out):
    """``out/sv_mode<N>/``: the LR images of the authors' spatially variant pattern and their blocks' parameters."""
    name = f"sv_mode{args.sv_mode}"
    folder = os.path.join(out, name)
    os.makedirs(os.path.join(folder, "blocks"), exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    for image, hr in images:
        out = degrade_authors_sv(hr, args.sv_mode, args.scale, args.kernel_size, args.noise, generator, args.seed)
        write_image(os.path.join(folder, "LR", image + ".png"), tensor2img(out.lr))
        h, w = hr.shape[-2:]
        np.save(os.path.join(folder, "blocks", image + ".npy"),
                authors_block_params(args.sv_mode, h, w, args.scale, args.seed))
    print(f"{name}: {len(images)} LR images (the authors' spatially variant pattern {args.sv_mode})")
    return {"folder": name, "sv_mode": args.sv_mode, "block": SV_BLOCK,
            "blocks": "blocks/<name>.npy: (n_h, n_w, 3) sig1, sig2 (variances), theta (radians)"}


def make_testset(args):
    """Write the test set described by ``args`` (see :func:`parse_args`); returns the meta dict."""
    if args.scale not in SCALES:
        raise KULNetError(f"--scale {args.scale}: give 2, 3 or 4 (the scales of the paper's kernels and models)")
    if not math.isfinite(args.noise) or args.noise < 0:
        raise KULNetError(f"--noise {args.noise}: must be a number >= 0 (0..255 units)")
    _check_out(args.out, args.overwrite)
    if args.sv_mode and (args.kernels or args.sig1 or args.sig2 or args.theta):
        raise KULNetError(f"--sv_mode {args.sv_mode}: the pattern gives every block its kernel; leave out "
                          f"--kernels and --sig1/--sig2/--theta")
    kernels = [] if args.sv_mode else build_kernels(args)
    images = load_hr_images(args.hr, args.scale)
    prepare_output_dir(os.path.dirname(os.path.abspath(args.out)), f"--out {args.out}: its folder")
    with claim_output(args.out, "--out"):
        _check_out(args.out, args.overwrite)  # again: another run may have made it meanwhile
        work = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(args.out))}.", dir=os.path.dirname(
            os.path.abspath(args.out)))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(work, 0o777 & ~umask)  # a folder as os.makedirs makes it, not mkdtemp's private one
        try:
            meta = _write_set(args, kernels, images, work)
            _replace(work, args.out)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    print(f"wrote {len(images)} HR images and {len(kernels)} kernel folders to {args.out}")
    return meta


def _check_out(out, overwrite):
    """OUT may be new, an empty folder, or (with --overwrite) a test set; never a folder of other files."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise KULNetError(f"--out {out}: is a file, not a folder; give a folder for the results")
    holds_set = os.path.exists(os.path.join(out, "meta.json"))
    if holds_set and not overwrite:
        raise KULNetError(f"{out}: already holds a test set; choose another --out or add --overwrite")
    if os.path.isdir(out) and os.listdir(out) and not holds_set:
        raise KULNetError(f"{out}: holds files and no test set (no meta.json); choose another --out")


def _replace(work, out):
    """Move the finished set ``work`` to ``out``; a previous set goes only now, as a whole."""
    if os.path.isdir(out) and not os.listdir(out):
        os.rmdir(out)
    if not os.path.exists(out):
        os.replace(work, out)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.replaced.",
                           dir=os.path.dirname(os.path.abspath(out)))
    os.replace(out, os.path.join(old, "set"))
    os.replace(work, out)
    shutil.rmtree(old)


def _write_set(args, kernels, images, out):
    """Write the set's files into the folder ``out``; returns the meta dict."""
    for name, hr in images:
        write_image(os.path.join(out, "HR", name + ".png"), tensor2img(hr))
    meta_kernels = []
    for i, (kernel, desc) in enumerate(kernels, start=1):
        folder = os.path.join(out, f"kernel_{i:02d}")
        deg = Degradation(args.scale, kernel.shape[-1], random_kernel=False, sig1=1.0, sig2=1.0, theta=0.0,
                          random_noise=False, noise=args.noise)
        generator = torch.Generator().manual_seed(args.seed)
        for name, hr in images:
            degraded = deg(hr, generator=generator, kernel=kernel[None])
            write_image(os.path.join(folder, "LR", name + ".png"), tensor2img(degraded.lr))
        np.save(os.path.join(folder, "kernel.npy"), kernel.numpy().astype(np.float32))
        write_image(os.path.join(folder, "kernel.png"), kernel_png(kernel.numpy()), grayscale=True)
        meta_kernels.append({"folder": f"kernel_{i:02d}", "size": int(kernel.shape[-1]), **desc})
        print(f"kernel_{i:02d}: {len(images)} LR images ({desc})")
    meta = {
        "made_by": "codes/scripts/make_testset.py",
        "hr_folder": args.hr,
        "scale": args.scale,
        "noise": args.noise,
        "seed": args.seed,
        "images": [name for name, _ in images],
        "kernels": meta_kernels,
        "spatially_variant": write_sv_folder(args, images, out) if args.sv_mode else None,
        "degradation": "the paper's: replicate pad, correlation, subsample at (0,0), noise, clamp, 8-bit",
    }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    source = meta_kernels[0]["source"] if meta_kernels else "-"
    with open(os.path.join(out, "README.txt"), "w") as f:
        f.write(README_TEMPLATE.format(hr=args.hr, scale=args.scale, noise=args.noise, seed=args.seed,
                                       n_kernels=len(kernels), source=source, zoom=KERNEL_PNG_ZOOM, out=args.out)
                + (SV_README.format(mode=args.sv_mode, seed=args.seed) if args.sv_mode else ""))
    return meta


def main(argv=None):
    return make_testset(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
