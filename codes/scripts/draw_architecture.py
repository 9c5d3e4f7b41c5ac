"""Draw the KULNet architecture figure (illustrations/kulnet_architecture.png) with PIL.

    python codes/scripts/draw_architecture.py [--out illustrations/kulnet_architecture.png]

Everything is drawn from the paper's description of the network (no image is copied); the kernel shown in the figure is
paper test kernel 3 computed by ``data.kernels``. PIL comes with scikit-image / torchvision.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.kernels import paper_kernels  # noqa: E402
from utils.errors import run_cli  # noqa: E402

W, H = 1560, 640
EST, SR, OPS, IO = "#dbe9f6", "#fde3c8", "#e4f2dc", "#eeeeee"
INK, MUTED = "#1d1d1d", "#5a5a5a"


def font(size):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def box(draw, xy, text, fill, size=15, bold=False):
    """A rectangle with centred multi-line text; returns its (x0, y0, x1, y1)."""
    draw.rectangle(xy, fill=fill, outline=INK, width=2 if bold else 1)
    f = font(size)
    x0, y0, x1, y1 = xy
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=f, spacing=3, align="center")
    tx = x0 + (x1 - x0 - (right - left)) / 2
    ty = y0 + (y1 - y0 - (bottom - top)) / 2 - top
    draw.multiline_text((tx, ty), text, fill=INK, font=f, spacing=3, align="center")
    return xy


def arrow(draw, points, color=INK, width=2, head=9):
    """A polyline ending with an arrow head."""
    draw.line(points, fill=color, width=width, joint="curve")
    (xa, ya), (xb, yb) = points[-2], points[-1]
    v = np.array([xb - xa, yb - ya], dtype=float)
    v /= np.linalg.norm(v) or 1.0
    n = np.array([-v[1], v[0]])
    tip = np.array([xb, yb])
    base = tip - head * v
    draw.polygon([tuple(tip), tuple(base + head * 0.55 * n), tuple(base - head * 0.55 * n)], fill=color)


def right(b):
    return b[2], (b[1] + b[3]) // 2


def left(b):
    return b[0], (b[1] + b[3]) // 2


def chain(draw, boxes):
    for a, b in zip(boxes, boxes[1:]):
        arrow(draw, [right(a), left(b)])


def kernel_picture(size):
    k = paper_kernels(4)[2].numpy()
    img = np.round(255 * k / k.max()).astype(np.uint8)
    return Image.fromarray(img).resize((size, size), Image.NEAREST).convert("RGB")


def draw():
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    d.text((20, 12), "KULNet: uncertainty-learning kernel estimator + deep Laplacian-scale-mixture (DLSM) "
           "unfolded SR network", fill=INK, font=font(21))
    d.text((20, 40), "Fang, Dong, Li, Wu, Li, Shi, ECCV 2022. Figure drawn by this project from the method "
           "description (codes/scripts/draw_architecture.py).", fill=MUTED, font=font(14))

    # ---------------------------------------------------------------- kernel estimator
    d.rectangle((12, 70, W - 12, 318), outline=MUTED, width=1)
    d.text((22, 76), "Kernel estimator (U-Net, 64 channels, 3x3 convs)", fill=INK, font=font(17))
    y0, y1 = 150, 222
    lr = box(d, (28, y0, 118, y1), "LR y\nh x w x 3", IO, bold=True)
    e1 = box(d, (140, y0, 276, y1), "encoder 3->64\nconv, 2 ResBlocks\nstride-2 conv", EST, size=14)
    e2 = box(d, (296, y0, 432, y1), "encoder 64->64\nconv, 2 ResBlocks\nstride-2 conv", EST, size=14)
    mid = box(d, (452, y0, 546, y1), "middle\n5 x (conv,\nReLU)", EST, size=14)
    d1 = box(d, (566, y0, 702, y1), "decoder\nconvT x2, concat\nconv, 2 ResBlocks", EST, size=14)
    d2 = box(d, (722, y0, 858, y1), "decoder\nconvT x2, concat\nconv, 2 ResBlocks", EST, size=14)
    chain(d, [lr, e1, e2, mid, d1, d2])
    for enc, dec, lift in ((e2, d1, 18), (e1, d2, 34)):  # skip connections
        xa, xb = (enc[0] + enc[2]) // 2, (dec[0] + dec[2]) // 2
        arrow(d, [(xa, y0), (xa, y0 - lift), (xb, y0 - lift), (xb, y0)], color=MUTED, width=1, head=7)
    d.text((330, y0 - 52), "skip connections", fill=MUTED, font=font(13))
    mean = box(d, (886, 112, 1012, 160), "mean =\nReLU(conv)", EST, size=14)
    logv = box(d, (886, 214, 1012, 262), "log_var =\nconv", EST, size=14)
    arrow(d, [right(d2), (872, 186), (872, 136), left(mean)])
    arrow(d, [(872, 186), (872, 238), left(logv)])
    z = box(d, (1042, 150, 1190, 222), "z = mean\n+ eps * exp(log_var)\n(eps = 0 in eval)", EST, size=14)
    arrow(d, [right(mean), (1026, 136), (1026, 176), (z[0], 176)])
    arrow(d, [right(logv), (1026, 238), (1026, 196), (z[0], 196)])
    soft = box(d, (1210, 150, 1338, 222), "conv 64->441\nsoftmax per pixel\n(21x21 kernel)", EST, size=14)
    arrow(d, [right(z), left(soft)])
    kb = box(d, (1360, 116, 1540, 256), "", EST, bold=True)
    d.text((1368, 120), "spatial mean -> k", fill=INK, font=font(14))
    im.paste(kernel_picture(105), (1398, 144))
    arrow(d, [right(soft), left(kb)])
    unc = box(d, (1042, 262, 1338, 306), "uncertainty: channel mean of exp(2 log_var)\n"
              "(heat map written by test_real.py)", OPS, size=13)
    arrow(d, [((logv[0] + logv[2]) // 2, logv[3]), ((logv[0] + logv[2]) // 2, 284), left(unc)], color=MUTED, width=1)

    # ---------------------------------------------------------------- DLSM
    d.rectangle((12, 334, W - 12, H - 38), outline=MUTED, width=1)
    d.text((22, 340), "DLSM super-resolution: T = 4 unfolded stages (32 channels), the same k in A and A^T",
           fill=INK, font=font(17))
    s0, s1 = 440, 540
    lr2 = box(d, (28, s0 + 12, 128, s1 - 12), "LR y", IO, bold=True)
    x0 = box(d, (156, s0, 276, s1), "X_0 = A^T y", OPS)
    arrow(d, [right(lr2), left(x0)])
    stage_frame = (300, 392, 1330, 590)
    d.rectangle(stage_frame, outline=INK, width=2)
    d.text((310, 398), "stage i = 0..3", fill=INK, font=font(15))
    g = box(d, (318, s0, 478, s1), "gradient step\nR = X_i\n+ A^T(y - A X_i)", OPS)
    f = box(d, (502, s0, 672, s1), "features\nf_i = conv 3->32 (shared)\nconcat f_0..f_i\n1x1 conv -> 32", SR)
    u = box(d, (696, s0, 900, s1), "U-Net (reflect-pad to x16)\n32-64-64-128-128\navg-pool / bilinear up\n"
            "two heads: w, u", SR)
    p = box(d, (924, s0, 1140, s1),
            "LSM proximal step\nt = w * delta_i\nX_i+1 = soft-threshold\nof R towards u by t", SR)
    arrow(d, [right(x0), left(g)])
    chain(d, [g, f, u, p])
    loop_y = 572
    arrow(d, [right(p), (1170, (s0 + s1) // 2), (1170, loop_y), (398, loop_y), (398, s1)], color=MUTED, width=2)
    d.text((640, loop_y - 20), "X_i+1 -> next stage (dense features across stages)", fill=MUTED, font=font(13))
    out = box(d, (1366, s0, 1540, s1), "SR image X_4\nsh x sw x 3", IO, bold=True)
    arrow(d, [(1170, (s0 + s1) // 2), left(out)])
    # the kernel feeds A and A^T
    kx = (kb[0] + kb[2]) // 2
    arrow(d, [(kx, kb[3]), (kx, 372), (216, 372), (216, s0)], color="#2b6cb0", width=2)
    arrow(d, [(398, 372), (398, s0)], color="#2b6cb0", width=2)
    d.text((444, 374), "k", fill="#2b6cb0", font=font(15))
    d.text((20, H - 30), "A x = bicubic down-s(k (*) x), zero padding 10;   A^T y = k (*)^T bicubic up-s(y);   "
           "losses: L1(SR, HR) + kernel L1 + 0.001 KL(latent)", fill=MUTED, font=font(14))
    return im


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("illustrations", "kulnet_architecture.png"))
    args = p.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    img = draw().quantize(colors=64, method=Image.Quantize.MEDIANCUT)  # a small palette PNG
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({os.path.getsize(args.out) // 1024} KB)")


if __name__ == "__main__":
    run_cli(main)
