"""Peak of live tensor memory during a forward pass, measured on the CPU: a stand-in for CUDA's
``max_memory_allocated`` where there is no GPU (no allocator rounding, no cuDNN workspaces).

    python codes/benchmarks/live_tensors.py --scale 4 --lr 256            # default speed/memory options
    python codes/benchmarks/live_tensors.py --scale 4 --lr 256 --plain    # every option off
    python codes/benchmarks/live_tensors.py --scale 4 --lr 256 --layout cpu   # channels-last U-Net, FFT blur

A ``TorchDispatchMode`` records the storage of every tensor an operator returns and a finaliser
drops it when the storage is freed; the peak is the largest sum of live storages, with the largest
of them at that moment. Inputs and parameters that exist before the call are not counted. The
default ``--layout gpu`` runs what runs on CUDA (direct blur, channels-last); prints, never asserts.
"""
import argparse
import os
import sys
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if CODES_DIR not in sys.path:
    sys.path.insert(0, CODES_DIR)

MIB = 2 ** 20


class LiveTensorPeak(TorchDispatchMode):
    """Context manager tracking the peak bytes of live CPU tensor storages created inside it.

    Attributes:
        peak (int): the largest sum of live bytes seen. current (int): live bytes now.
        at_peak (list[tuple]): (bytes, operator, shape) of the ``top`` largest live storages at the peak.
    """

    def __init__(self, top=8):
        super().__init__()
        self.top = top
        self.live = {}
        self.current = 0
        self.peak = 0
        self.at_peak = []

    def _free(self, key, nbytes):
        self.current -= nbytes
        self.live.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self.live:  # a view of, or the same, storage
                continue
            self.live[key] = (nbytes, str(func), tuple(tensor.shape))
            self.current += nbytes
            weakref.finalize(storage, self._free, key, nbytes)
        if self.current > self.peak:
            self.peak = self.current
            self.at_peak = sorted(self.live.values(), reverse=True)[: self.top]
        return out


def main(argv=None):
    from models.fast import accelerate
    from models.modules.kulnet import KULNet

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--lr", type=int, default=256, help="LR side")
    ap.add_argument("--plain", action="store_true", help="every speed/memory option off")
    ap.add_argument("--layout", choices=("gpu", "cpu"), default="gpu",
                    help="gpu: direct blur, channels-last (what runs on CUDA); cpu: the CPU defaults")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    net = KULNet(scale=args.scale).eval()
    if not args.plain:
        accelerate(net, blur_impl="direct" if args.layout == "gpu" else "auto",
                   channels_last=True if args.layout == "gpu" else None)
    lr = torch.rand(1, 3, args.lr, args.lr)
    with torch.no_grad(), LiveTensorPeak() as meter:
        net(lr)
    label = "plain path" if args.plain else f"default options, {args.layout} layout"
    print(f"x{args.scale}, LR {args.lr}x{args.lr}, fp32, {label}: peak live tensors {meter.peak / MIB:.0f} MiB")
    for nbytes, op, shape in meter.at_peak:
        print(f"  {nbytes / MIB:8.1f} MiB  {op}  {shape}")


if __name__ == "__main__":
    main()
