"""Operators dispatched per training step, by phase: a CPU-measurable proxy for the host overhead
that bounds a training step on a GPU whenever the GPU is busy for less of the step than its wall
time (the profiles of ``gpu_check.sh`` show the two).

    python codes/benchmarks/op_count.py --scale 4            # default speed/memory options
    python codes/benchmarks/op_count.py --scale 4 --plain    # every option off
    python codes/benchmarks/op_count.py --scale 4 --memory_options off   # channels-last, no memory options

A ``TorchDispatchMode`` counts every ATen operator of one step of the training wrapper
(``models.kulnet_model.KULNetModel``): the degradation, the forward, the three losses, the backward
and Adam, at the training crop (48·scale) and batch 2 (the count is the same for every batch > 1;
at batch 1 some reshapes are views instead of copies; the crop matters only through the U-Net's
padding and cropping). The network runs in the GPU's layout (direct blur, channels-last). Views
(``view``, ``detach``, ``slice``, ...) launch no GPU kernel and are counted apart, as are scalar
reads (``.item()``: a host sync on a GPU). Adam runs ``foreach`` here; on CUDA it is the fused
kernel. Prints, never asserts.
"""
import argparse
import collections
import os
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if CODES_DIR not in sys.path:
    sys.path.insert(0, CODES_DIR)

PHASES = ("degradation", "forward", "losses", "backward", "adam")


def op_kind(func):
    """'view' (no kernel), 'scalar' (a scalar read: a host sync on a GPU) or 'compute'."""
    if func.overloadpacket.__name__ == "_local_scalar_dense":
        return "scalar"
    return "view" if func.is_view else "compute"


class OpCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched inside it: ``counts[(kind, name)]``."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[(op_kind(func), func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))

    def total(self, kind):
        return sum(n for (k, _), n in self.counts.items() if k == kind)


def count_step(scale=4, plain=False, batch=2, gt_size=None, memory_options=True):
    """Operator counts of one training step, by phase.

    Args:
        scale (int): 2, 3 or 4. plain (bool): every speed/memory option off.
        memory_options (bool): False turns only the memory options off (``models.fast.accelerate``).
        batch (int), gt_size (int | None): the HR batch (default 48·scale pixels a side, as in training).

    Returns:
        dict: phase -> :class:`OpCounter`, phases in :data:`PHASES` order.
    """
    from models.fast import accelerate
    from models.fast import plain as literal
    from models.kulnet_model import KULNetModel
    from options.options import REPO_ROOT, parse

    gt_size = gt_size or 48 * scale
    opt = parse(os.path.join(REPO_ROOT, "options", "train", "train.yml"),
                [f"scale={scale}", f"datasets.train.GT_size={gt_size}", f"datasets.train.batch_size={batch}",
                 "train.precision=fp32", "device=cpu"], check_paths=False)
    torch.manual_seed(0)
    model = KULNetModel(opt, device=torch.device("cpu"))
    if plain:
        literal(model.net)
    else:  # a CUDA-like layout: channels-last everywhere, weights matched
        accelerate(model.net, blur_impl="direct", channels_last=True, memory_options=memory_options)
    hr = torch.rand(batch, 3, gt_size, gt_size)
    model.feed_data({"hr": hr})
    model.optimize_parameters(1)  # Adam's state exists from here on, as in a running training
    counters = {phase: OpCounter() for phase in PHASES}
    with counters["degradation"]:
        model.feed_data({"hr": hr})
    model.optimizer.zero_grad(set_to_none=True)
    with counters["forward"]:
        out = model.net_train(model.lr)
    with counters["losses"]:
        loss, _ = model.criterion(out, model.hr, model.kernel, model.lr_clean)
    with counters["backward"]:
        loss.backward()
    with counters["adam"]:
        model.optimizer.step()
    return counters


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    ap.add_argument("--plain", action="store_true", help="every speed/memory option off")
    ap.add_argument("--memory_options", default="on", choices=("on", "off"),
                    help="off: only the memory options off (models.fast.accelerate)")
    args = ap.parse_args(argv)
    counters = count_step(args.scale, args.plain, memory_options=args.memory_options == "on")
    label = ("plain path" if args.plain else
             f"GPU layout, memory options {args.memory_options}")
    print(f"x{args.scale} training step, {label}: ATen operators per phase")
    print(f"{'phase':12s} {'compute':>8s} {'views':>6s} {'scalar':>6s}  most frequent compute operators")
    totals = collections.Counter()
    for phase, counter in counters.items():
        row = {kind: counter.total(kind) for kind in ("compute", "view", "scalar")}
        totals.update(row)
        top = collections.Counter({name: n for (kind, name), n in counter.counts.items() if kind == "compute"})
        print(f"{phase:12s} {row['compute']:8d} {row['view']:6d} {row['scalar']:6d}  "
              + ", ".join(f"{name} {n}" for name, n in top.most_common(6)))
    print(f"{'total':12s} {totals['compute']:8d} {totals['view']:6d} {totals['scalar']:6d}")
    return counters


if __name__ == "__main__":
    main()
