"""Restoring with a trained KULNet as the scripts do: the checkpoint loaded into the network it
was trained as (literal, or its fast forms for the device), tiled for large inputs with one kernel
per image (:mod:`evaluation.tiling`), x8 self-ensembled on request (:mod:`evaluation.self_ensemble`),
in the chosen precision.

Public API:
    load_model, make_forward, run_flags, INFERENCE_PRECISIONS
"""
import torch

from evaluation.self_ensemble import self_ensemble
from evaluation.tiling import auto_tile, tiled_forward
from models.fast import accelerate
from models.networks import define_G, load_network, network_options_for_checkpoint, read_checkpoint
from options.inference_options import PRECISIONS
from utils.errors import KULNetError


def load_model(opt, device):
    """Build the network of ``opt`` (scale, kernel_size, network_G; the widths recorded in one of our
    checkpoints are used), load ``opt['checkpoint']``; ``opt['literal']`` runs the literal path
    (every speed option off), else the fast path for ``device``.

    Returns:
        tuple: (model in eval mode on ``device``, metadata dict from ``load_network``).
    """
    path = opt["checkpoint"]
    contents = read_checkpoint(path)  # read once (~11 MB), used twice
    model = define_G({**opt, "network_G": network_options_for_checkpoint(opt, path, contents)})
    meta = load_network(model, path, strict=True, expected_scale=opt["scale"], contents=contents)
    model = model.eval().to(device)
    return (model if opt.get("literal") else accelerate(model, device)), meta


def run_flags(opt):
    """The inference options that differ from the defaults, for a run's header line: `` | x8 | bf16``."""
    flags = [name for name, on in (("x8", opt["x8"]), ("literal", opt["literal"]),
                                   (opt["precision"], opt["precision"] != "fp32")) if on]
    return "".join(f" | {flag}" for flag in flags)


# autocast dtype of each precision name (None: float32, no autocast)
INFERENCE_PRECISIONS = dict(zip(PRECISIONS, (None, torch.bfloat16, torch.float16)))


def make_forward(model, scale, tile=None, overlap=32, x8=False, precision="fp32"):
    """The restoration function of the scripts: the model, tiled for large inputs (one kernel per
    image, :mod:`evaluation.tiling`), x8 self-ensembled on request (:mod:`evaluation.self_ensemble`).

    Args:
        precision (str): ``'fp32'`` (default: the reference numerics), or ``'bf16'`` / ``'fp16'``
            autocast (faster: bf16 is about 3x on CPUs with AMX; not the paper's numerics). fp16
            is refused on the CPU (slow there; use bf16).

    Returns:
        callable: ``forward(lr (B, 3, h, w), kernel=None) -> KULNetOutput`` with float32 tensors.
    """
    if precision not in INFERENCE_PRECISIONS:
        raise KULNetError(f"precision={precision!r}: choose one of {', '.join(INFERENCE_PRECISIONS)}")
    dtype = INFERENCE_PRECISIONS[precision]
    device_type = next(model.parameters()).device.type
    if dtype is torch.float16 and device_type == "cpu":
        raise KULNetError("precision fp16 on the CPU: use bf16 (fast on CPUs with AMX or AVX512-BF16) or fp32")

    def plain(lr, kernel=None):
        with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = tiled_forward(model, lr, kernel, scale, auto_tile(lr.shape, tile, scale), overlap)
        return type(out)(*[None if t is None else t.float() for t in out])

    if x8:
        return lambda lr, kernel=None: self_ensemble(plain, lr, scale, kernel)
    return plain
