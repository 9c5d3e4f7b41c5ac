"""Visual comparison figure from our own outputs: LR, bicubic, KULNet, GT, with the kernels.

    python codes/scripts/make_comparison_figure.py --checkpoint pretrained/KULNet_x4.pth \
        [--image astronaut | --image path/to/HR.png] [--kernel 3] [--noise 0] [--crop 256] \
        [--out illustrations/visual_comparison.png]

The HR image (a scikit-image photograph by name, or a file) is centre-cropped to ``--crop`` pixels,
degraded with paper kernel ``--kernel`` (1..9) as in the test protocol, restored, and shown as a row:
LR (nearest-enlarged, true kernel inset), bicubic, KULNet (estimated kernel inset, PSNR in the title),
GT. Network widths come from the option file (``-opt``, default options/test/test.yml).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.degradation import Degradation  # noqa: E402
from data.kernels import PAPER_KERNELS, paper_kernels  # noqa: E402
from evaluation.evaluator import bicubic_upsample  # noqa: E402
from evaluation.figures import comparison_figure  # noqa: E402
from evaluation.inference import load_model, make_forward  # noqa: E402
from evaluation.metrics import calculate_psnr, kernel_psnr  # noqa: E402
from evaluation.protocol import SKIMAGE_PHOTOS, load_hr, skimage_loader  # noqa: E402
from options.inference_options import check_test_paths, validate_test_options  # noqa: E402
from options.options import (
    REPO_ROOT,  # noqa: E402
    read_yaml,  # noqa: E402
)
from utils.device import resolve_device  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402
from utils.image_io import read_image, tensor2img, write_image  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description="LR / bicubic / KULNet / GT comparison figure.")
    p.add_argument("-opt", default=os.path.join(REPO_ROOT, "options", "test", "test.yml"))
    p.add_argument("--checkpoint", help="weights file (default: the option file's)")
    p.add_argument("--image", default="astronaut", help=f"HR file or one of {', '.join(SKIMAGE_PHOTOS)}")
    p.add_argument("--kernel", type=int, default=3, help=f"paper kernel 1..{len(PAPER_KERNELS)}")
    p.add_argument("--noise", type=float, default=0.0, help="noise level, 0..255")
    p.add_argument("--crop", type=int, default=256, help="centre crop of the HR image, pixels")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=os.path.join("illustrations", "visual_comparison.png"))
    args = p.parse_args(argv)
    if not 1 <= args.kernel <= len(PAPER_KERNELS):
        raise KULNetError(f"--kernel {args.kernel}: choose 1..{len(PAPER_KERNELS)}")
    raw = read_yaml(args.opt)
    raw.pop("datasets", None)
    if args.checkpoint:
        raw["checkpoint"] = os.path.abspath(args.checkpoint)
    if args.device:
        raw["device"] = args.device
    opt = validate_test_options(raw, os.path.relpath(args.opt))
    check_test_paths({**opt, "datasets": []})
    scale = opt["scale"]
    device = resolve_device(opt["device"])
    model, _ = load_model(opt, device)
    forward = make_forward(model, scale, opt["tile"], opt["tile_overlap"], opt["x8"])

    if os.path.isfile(args.image):
        loader = lambda: read_image(args.image)[0]  # noqa: E731
    else:
        loader = skimage_loader(args.image)
    hr_np = load_hr(loader, scale, args.crop)
    hr = torch.from_numpy(hr_np.transpose(2, 0, 1).copy())[None].to(device)
    k_true = paper_kernels(scale, opt["kernel_size"], device=device)[args.kernel - 1][None]
    gen = torch.Generator(device=device).manual_seed(opt["seed"])
    batch = Degradation(scale, opt["kernel_size"], random_noise=False, noise=args.noise)(hr, gen, kernel=k_true)
    with torch.inference_mode():
        out = forward(batch.lr)
    hr_img, sr_img = tensor2img(hr), tensor2img(out.sr)
    bic_img = tensor2img(bicubic_upsample(batch.lr, scale))
    crop = opt["crop_border"]
    psnr = lambda img: calculate_psnr(img, hr_img, crop)  # noqa: E731
    k_est = out.kernel[0].cpu()
    panels = [
        (f"LR x{scale}, noise {args.noise:g}\ntrue kernel {args.kernel}", tensor2img(batch.lr), k_true[0].cpu()),
        (f"bicubic\n{psnr(bic_img):.2f} dB", bic_img, None),
        (f"KULNet {psnr(sr_img):.2f} dB\nkernel PSNR {kernel_psnr(k_est, k_true[0].cpu()):.1f} dB", sr_img, k_est),
        ("GT\n", hr_img, None),
    ]
    write_image(args.out, comparison_figure(panels))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
