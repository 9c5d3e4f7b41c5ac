"""Learning curves of the kernel estimator trained alone, one arm per recipe.

Each arm is ``train.py`` with the option file and the arm's own ``--set`` options, for the same number
of iterations from the same seed and batch stream. The option file's validation runs the estimator
alone (the validation images' centre crops under the nine paper kernels: seconds, not minutes) every
``--every`` iterations and once before the first (a fresh initialisation's figures); a constant guess
scores gain 0 and response 0 by construction, and its kernel PSNR and L1 are in every row.

    python codes/benchmarks/estimator_curve.py -opt options/train/estimator_curve.yml --iters 600 \\
        --arm "mean:" --arm "map: train.kernel_loss=map" --out results/estimator_curve

Writes OUT/curves.csv (every arm's rows), OUT/curves.json (the same with each arm's options and the
last row) and OUT/curves.png (kernel gain and response against iterations). The arms' runs stay in
experiments/<name>_<arm>/; ``--auto_resume`` continues arms that were stopped (``--time_budget``
is per arm) and skips the finished ones.
"""
import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: put codes/ on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from evaluation.validation import read_curve  # noqa: E402
from options.options import parse  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402

TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train.py")
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


def parse_arm(text):
    """``'NAME: KEY=VALUE KEY=VALUE'`` -> (name, [KEY=VALUE, ...]); one-line error when malformed."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise KULNetError(f"--arm {text!r}: give NAME: KEY=VALUE ..., a name of letters, digits, - _ . "
                          f"(e.g. \"map: train.kernel_loss=map\")")
    sets = rest.split()
    bad = [s for s in sets if "=" not in s]
    if bad:
        raise KULNetError(f"--arm {text!r}: {bad[0]!r} is not KEY=VALUE")
    return name, sets


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-opt", "--opt", required=True, help="the training option file of every arm")
    p.add_argument("--arm", action="append", required=True, metavar="'NAME: KEY=VALUE ...'",
                   help="one arm: its name and its --set options (repeatable)")
    p.add_argument("--iters", type=int, required=True, help="iterations of each arm")
    p.add_argument("--every", type=int, default=100, help="validate every N iterations (default 100)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an option for every arm")
    p.add_argument("--out", default="results/estimator_curve", help="folder of the curves (default %(default)s)")
    p.add_argument("--time_budget", type=float, default=None, metavar="MINUTES", help="per arm, as train.py's")
    p.add_argument("--auto_resume", action="store_true", help="continue stopped arms, skip finished ones")
    p.add_argument("--plot_only", action="store_true", help="redraw OUT from the arms' existing curves")
    args = p.parse_args(argv)
    if args.iters < 1 or args.every < 1:
        raise KULNetError(f"--iters {args.iters} --every {args.every}: give positive numbers")
    return args


def run_arm(args, name, sets, base_name):
    """Train one arm (a subprocess: each arm its own log and process); returns its experiment folder."""
    command = [sys.executable, TRAIN_SCRIPT, "-opt", args.opt]
    for item in [*args.set, *sets, f"name={base_name}_{name}", f"train.niter={args.iters}",
                 f"train.val_freq={args.every}", "train.val_at_start=true"]:  # the runner's own keys last
        command += ["--set", item]
    if args.time_budget:
        command += ["--time_budget", str(args.time_budget)]
    if args.auto_resume:
        command.append("--auto_resume")
    print(f"arm {name}: {' '.join(sets) or '(the option file as it is)'}", flush=True)
    code = subprocess.call(command)
    if code != 0:  # a spent time budget exits 0 too (resumable)
        raise KULNetError(f"arm {name}: train.py exited with {code} (its log is in experiments/{base_name}_{name}/)")


def draw_curves(curves, path, keys=("kernel_gain", "kernel_response"), size=(360, 520)):
    """One panel per metric, iterations on x, one coloured line per arm, the legend under the panels."""
    height, width = size
    pad, panels = 48, []
    last = max((row["iteration"] for rows in curves.values() for row in rows), default=1) or 1
    for key in keys:
        values = [row[key] for rows in curves.values() for row in rows if np.isfinite(row[key])]
        low, high = min(values + [0.0]), max(values + [1.0 if key == "kernel_response" else 0.1])
        img = np.full((height, width, 3), 255, np.uint8)
        to_xy = lambda it, v: (int(pad + (width - 2 * pad) * it / last),  # noqa: E731
                               int(height - pad - (height - 2 * pad) * (v - low) / (high - low or 1)))
        cv2.rectangle(img, (pad, pad), (width - pad, height - pad), (0, 0, 0), 1)
        cv2.line(img, to_xy(0, 0), to_xy(last, 0), (160, 160, 160), 1)
        for value in sorted({round(low, 2), 0.0, round(high, 2)}):
            cv2.putText(img, f"{value:.2f}", (2, to_xy(0, value)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
        cv2.putText(img, key, (pad, pad - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"iteration (0..{int(last)})", (width // 2 - 60, height - 14), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for colour, rows in zip(COLOURS * 3, curves.values()):
            points = np.array([to_xy(r["iteration"], r[key]) for r in rows if np.isfinite(r[key])], np.int32)
            if len(points):
                cv2.polylines(img, [points], False, colour, 2, cv2.LINE_AA)
        panels.append(img)
    figure = np.concatenate(panels, axis=1)
    legend = np.full((22 * ((len(curves) + 2) // 3) + 8, figure.shape[1], 3), 255, np.uint8)
    for i, (colour, name) in enumerate(zip(COLOURS * 3, curves)):
        x, y = 10 + (i % 3) * (figure.shape[1] // 3), 20 + 22 * (i // 3)
        cv2.line(legend, (x, y - 4), (x + 24, y - 4), colour, 3)
        cv2.putText(legend, name, (x + 30, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate([figure, legend]), cv2.COLOR_RGB2BGR))


def main(argv=None):
    args = parse_args(argv)
    arms = [parse_arm(text) for text in args.arm]
    if len({name for name, _ in arms}) != len(arms):
        raise KULNetError("--arm: two arms have the same name")
    opt = parse(args.opt, args.set, check_paths=False)
    base_name, root = opt["name"], opt["path"]["experiments_root"]
    curves, options = {}, {}
    for name, sets in arms:
        folder = os.path.join(root, f"{base_name}_{name}")
        if not args.plot_only:
            run_arm(args, name, sets, base_name)
        path = os.path.join(folder, "val_curve.csv")
        if not os.path.isfile(path):
            raise KULNetError(f"arm {name}: {path} not found (run the arm first, without --plot_only)")
        curves[name], options[name] = read_curve(path), [*args.set, *sets]
    os.makedirs(args.out, exist_ok=True)
    columns = sorted({key for rows in curves.values() for row in rows for key in row}, key=lambda k: (
        k not in ("iteration", "seconds"), k))
    with open(os.path.join(args.out, "curves.csv"), "w", encoding="utf-8") as handle:
        handle.write(",".join(["arm", *columns]) + "\n")
        for name, rows in curves.items():
            for row in rows:
                handle.write(",".join([name, *(f"{row.get(c, float('nan')):.6g}" for c in columns)]) + "\n")
    summary = {"options": args.opt, "iterations": args.iters, "every": args.every,
               "arms": {name: {"set": options[name], "last": curves[name][-1], "rows": curves[name]}
                        for name in curves}}
    with open(os.path.join(args.out, "curves.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    draw_curves(curves, os.path.join(args.out, "curves.png"))
    print(f"{'arm':<16} {'iter':>6} {'gain':>8} {'response':>9} {'kernel L1':>10} (constant guess: gain 0, "
          f"response 0, L1 {curves[arms[0][0]][-1].get('const_kernel_l1', float('nan')):.3f})")
    for name, rows in curves.items():
        last = rows[-1]
        print(f"{name:<16} {int(last['iteration']):>6} {last['kernel_gain']:>8.4f} {last['kernel_response']:>9.3f} "
              f"{last.get('kernel_l1', float('nan')):>10.3f}")
    print(f"curves: {os.path.join(args.out, 'curves.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
