"""The speed and memory forms of KULNet, applied to a built network in one call.

    net = define_G(opt)            # the literal network (models/modules: the paper's order of operations)
    accelerate(net, device)        # its fast forms for the device it runs on
    plain(net)                     # back to the literal network

Each fast form computes what the literal network computes, to float rounding; none adds a parameter,
a buffer or a state_dict key, so checkpoints are the same either way. :func:`accelerate` gives the
DLSM, its decoder and the kernel estimator the classes of :mod:`models.fast.dlsm` and
:mod:`models.fast.kernel_estimator`, which only override methods of the literal classes, sets their
options and stores the convolution weights in the memory format of the maps they convolve.
Apply it before wrapping the network (DDP, ``torch.compile``).
"""
import torch

from models.fast.dlsm import FastDecoding, FastDLSM
from models.fast.kernel_estimator import FastKernelEstimator
from models.fast.operators import BLUR_IMPLS
from models.modules.dlsm import DLSM, Decoding
from models.modules.kernel_estimator import KernelEstimator
from utils.errors import KULNetError

_FAST = ((lambda n: n.SR_net, DLSM, FastDLSM), (lambda n: n.SR_net.Decoding, Decoding, FastDecoding),
         (lambda n: n.kernel_extra, KernelEstimator, FastKernelEstimator))


def _swap(net, fast):
    for part, literal_cls, fast_cls in _FAST:
        module = part(net) if hasattr(net, "SR_net") and hasattr(net, "kernel_extra") else None
        if not isinstance(module, literal_cls):
            raise KULNetError(f"{type(net).__name__}: not a KULNet (no {literal_cls.__name__} where expected)")
        module.__class__ = fast_cls if fast else literal_cls


def accelerate(net, device=None, blur_impl="auto", channels_last=None, memory_options=True):
    """Give a KULNet its fast forms (in place; the same parameters).

    Args:
        net (KULNet): the network, unwrapped.
        device (torch.device | str | None): where it will run (default: where its parameters are);
            the memory formats are chosen for it.
        blur_impl (str): ``A``/``Aᵀ``'s blur, one of ``models.fast.operators.BLUR_IMPLS``.
        channels_last (bool | None): channels-last convolutions; None: the DLSM U-Net on the CPU and
            CUDA, the estimator on CUDA.
        memory_options (bool): the composed dense fusion, the split decoder concatenations and the
            banded estimator tail (lower inference memory; more operators per training step).

    Returns:
        KULNet: ``net``.
    """
    if blur_impl not in BLUR_IMPLS:
        raise KULNetError(f"blur_impl={blur_impl!r}: choose one of {BLUR_IMPLS}")
    _swap(net, fast=True)
    sr, estimator = net.SR_net, net.kernel_extra
    sr.blur_impl, sr.channels_last, estimator.channels_last = blur_impl, channels_last, channels_last
    sr.fused_dense = sr.Decoding.split_concat = bool(memory_options)
    estimator.tail_band_rows = None if memory_options else 0
    return match_weight_layout(net, device)


def plain(net):
    """The literal network again: the classes of ``models/modules`` and contiguous weights (in place).

    Returns:
        KULNet: ``net``.
    """
    _swap(net, fast=False)
    for obj in (net.SR_net, net.SR_net.Decoding, net.kernel_extra):
        for name in ("blur_impl", "channels_last", "fused_dense", "split_concat", "tail_band_rows"):
            obj.__dict__.pop(name, None)
    net.to(memory_format=torch.contiguous_format)
    return net


def is_accelerated(net):
    """bool: whether :func:`accelerate` was applied to ``net`` (and not undone by :func:`plain`)."""
    return isinstance(net.SR_net, FastDLSM)


def match_weight_layout(net, device=None):
    """Store each part's convolution weights in the memory format of the maps they convolve on
    ``device`` (channels-last where that part runs channels-last, contiguous elsewhere).

    With a weight in the other layout, autograd converts each of its gradients back to the
    parameter's layout, and cuDNN takes weights in the input's layout. Values, keys and shapes are
    unchanged (checkpoints are saved contiguous); the parameters stay the same objects.

    Returns:
        KULNet: ``net``.
    """
    device = torch.device(device) if device is not None else next(net.parameters()).device
    # the DLSM's ``conv`` and ``Den_con*`` act on 3-channel NCHW stage estimates (or are composed)
    parts = ((net.kernel_extra, (net.kernel_extra,)), (net.SR_net, (net.SR_net.Encoding, net.SR_net.Decoding)))
    for part, modules in parts:
        fast = getattr(part, "use_channels_last", None)
        layout = torch.channels_last if fast is not None and fast(device) else torch.contiguous_format
        for module in modules:
            module.to(memory_format=layout)
    return net
