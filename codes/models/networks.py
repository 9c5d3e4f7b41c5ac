"""Build networks from options and save/load their weights (our format and the authors' raw files).

Our checkpoint file: ``{'format': 'kulnet', 'params': state_dict, 'meta': {'scale', 'kernel_size',
'model', 'code_version', 'iteration', ...}}``, written atomically, keys without ``module.``.
The authors' ``latest_G.pth`` is a raw state_dict (the same keys), possibly with a ``module.`` prefix
or wrapped under ``'params'``/``'state_dict'``.
"""
import functools
import inspect
import json
import logging
import os
import re

import torch

from models.modules.kulnet import KULNet
from utils.atomic_save import atomic_torch_save
from utils.errors import KULNetError
from utils.git_info import git_commit

PACKAGE_VERSION = "0.1.0"
NETWORKS = {"KULNet": KULNet}
TOP_LEVEL_ARGS = ("scale", "kernel_size")  # network arguments set at the top level of the options
_PREFIXES = ("module.", "_orig_mod.")

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def code_version():
    """str: the short git commit of this checkout (``+dirty`` not tracked; ``$KULNET_CODE_VERSION``
    overrides it, see :func:`utils.git_info.git_commit`), else ``PACKAGE_VERSION``."""
    return git_commit(short=True) or PACKAGE_VERSION


def define_G(opt):
    """Build the generator from parsed options.

    Args:
        opt (dict): ``scale`` (required), ``kernel_size`` (default 21) and an optional
            ``network_G`` block: ``which_model_G`` (default ``'KULNet'``) plus constructor arguments
            of that network (for KULNet: in_nc, est_nf, sr_nf, n_stages, sample_at_eval).
            ``{'scale': 4}`` is enough.

    Returns:
        nn.Module: the network (on the CPU, in train mode).

    Raises:
        KULNetError: missing scale, unknown network name or unknown/conflicting key.
    """
    if not isinstance(opt, dict) or "scale" not in opt:
        raise KULNetError("options: 'scale' is missing; set scale: 2, 3 or 4")
    net_opt = dict(opt.get("network_G") or {})
    name = net_opt.pop("which_model_G", "KULNet")
    if name not in NETWORKS:
        raise KULNetError(f"network_G.which_model_G={name!r}: unknown network; choose one of {sorted(NETWORKS)}")
    constructor = NETWORKS[name]
    kwargs = {"scale": opt["scale"], "kernel_size": opt.get("kernel_size", 21)}
    for key in TOP_LEVEL_ARGS:
        if key in net_opt and net_opt.pop(key) != kwargs[key]:
            raise KULNetError(f"network_G.{key}: differs from the top-level {key}={kwargs[key]!r}; "
                              f"set it in one place only")
    allowed = set(inspect.signature(constructor).parameters) - set(TOP_LEVEL_ARGS)
    for key in net_opt:
        if key not in allowed:
            raise KULNetError(f"network_G.{key}: unknown option for {name}; allowed: {sorted(allowed)}")
    kwargs.update(net_opt)
    net = constructor(**kwargs)
    net.network_G = {"which_model_G": name, **net_opt}  # recorded in our checkpoints
    return net


# fixed by the weights, unlike sample_at_eval (estimator_input: the weights are trained for one input)
ARCHITECTURE_KEYS = ("in_nc", "est_nf", "sr_nf", "n_stages", "estimator_input")


def network_options_for_checkpoint(opt, path, contents=None):
    """``opt['network_G']`` completed with the architecture recorded in our checkpoint at ``path``.

    A checkpoint of ours records the widths it was trained with, so a user need not repeat them in
    the test options. An explicit option that differs from both the default and the checkpoint is
    an error; the authors' files record nothing, and ``opt`` is returned unchanged for them.
    ``contents``: the file as :func:`read_checkpoint` returned it (saves reading it again).

    Returns:
        dict: the network_G block to build the network with.
    """
    net_opt = dict(opt.get("network_G") or {})
    saved = ((contents or read_checkpoint(path))[2].get("network_G") or {})
    constructor = NETWORKS.get(net_opt.get("which_model_G", "KULNet"), KULNet)
    defaults = {k: p.default for k, p in inspect.signature(constructor).parameters.items()}
    for key in ARCHITECTURE_KEYS:
        if key not in saved:
            continue
        given = net_opt.get(key, defaults.get(key))
        if given != saved[key] and given != defaults.get(key):
            raise KULNetError(f"{path}: trained with network_G.{key} = {saved[key]}, the options say {given}; "
                              f"remove network_G.{key} from the options or use another checkpoint")
        net_opt[key] = saved[key]
    return net_opt


def _bare(net):
    """Unwrap DataParallel/DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(net, "_orig_mod"):
            net = net._orig_mod
        elif isinstance(net, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            net = net.module
        else:
            return net


def _strip_prefixes(state_dict):
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def save_network(net, path, meta=None, dtype=None):
    """Save the weights with metadata, atomically (temporary file + ``os.replace``).

    Args:
        net (nn.Module): the network (wrappers and ``module.`` prefixes are removed).
        path (str): destination ``.pth`` file; folders are created.
        meta (dict | None): extra plain-Python metadata (e.g. ``iteration``), merged over the defaults
            ``scale``, ``kernel_size``, ``model``, ``code_version``, ``iteration`` (None) and
            ``network_G`` (the block :func:`define_G` built the network from, if it did).
        dtype (torch.dtype | None): store the floating-point tensors in this type (the shipped
            models use float16: half the size; :func:`load_network` casts back to the network's
            float32); None keeps the network's. Recorded as ``meta['stored_dtype']``.
    """
    bare = _bare(net)
    info = {"scale": getattr(bare, "scale", None), "kernel_size": getattr(bare, "kernel_size", None),
            "model": type(bare).__name__, "code_version": code_version(), "iteration": None,
            "network_G": getattr(bare, "network_G", None)}
    info.update(meta or {})
    if dtype is not None:
        info["stored_dtype"] = str(dtype).replace("torch.", "")
    try:
        json.dumps(info)
    except (TypeError, ValueError) as err:
        raise KULNetError(f"save_network meta: {err}; use plain Python values (int, float, str, lists, dicts)")
    # contiguous: weights kept channels-last for speed (models.fast.match_weight_layout) are saved plain
    params = {k: v.detach().cpu().contiguous() for k, v in _strip_prefixes(bare.state_dict()).items()}
    if dtype is not None:
        params = {k: v.to(dtype) if v.is_floating_point() else v for k, v in params.items()}
    atomic_torch_save({"format": "kulnet", "params": params, "meta": info}, path)


def _is_state_dict(obj):
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


_SCALE_IN_NAME = re.compile(r"(?:^|[^a-z0-9])(?:x([1-9])(?![0-9])|([1-9])x(?![a-z0-9]))")


def scale_from_name(path):
    """Scale hinted by the file or its two parent folders (``x2``, ``_X4_``, ``models_2x``...), else None."""
    parts = os.path.abspath(path).split(os.sep)[-3:]
    hints = {int(a or b) for part in parts for a, b in _SCALE_IN_NAME.findall(part.lower())}
    return hints.pop() if len(hints) == 1 else None


def read_checkpoint(path):
    """torch.load on the CPU with weights_only; returns (format ``'kulnet'``/``'authors'``,
    state_dict, meta dict). Unreadable files and files without weights raise KULNetError."""
    if not os.path.isfile(path):
        raise KULNetError(f"{path}: checkpoint not found; check the path (or download the pretrained file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, not a torch file, or pickled objects
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise KULNetError(f"{path}: cannot read the checkpoint ({type(err).__name__}: {reason}); "
                          f"the file is truncated, corrupt or not a PyTorch weights file, copy it again")
    if isinstance(obj, dict) and obj.get("format") == "kulnet" and _is_state_dict(obj.get("params")):
        return "kulnet", obj["params"], dict(obj.get("meta") or {})
    for key in ("params", "params_ema", "state_dict"):
        if isinstance(obj, dict) and _is_state_dict(obj.get(key)):
            return "authors", obj[key], {}
    if _is_state_dict(obj):
        return "authors", obj, {}
    keys = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
    raise KULNetError(f"{path}: holds no network weights (found {keys}); pass a *_G.pth weights file, "
                      f"not a training state")


def check_checkpoint_scale(bare, path, fmt, meta, expected_scale=None):
    """The scale of a checkpoint (any part of the network), checked against ``expected_scale`` and the
    network's: from our metadata, else from a scale in the file or folder name (``..._x2...``,
    ``models_2x``), else taken to be the expected one, with a warning that it could not be checked.

    Returns:
        int | None: the checkpoint's scale.

    Raises:
        KULNetError: the checkpoint's scale differs from the expected or the network's.
    """
    net_scale = getattr(bare, "scale", None)
    file_scale, source = (meta.get("scale"), "its metadata") if fmt == "kulnet" else (None, "")
    if file_scale is None:
        file_scale, source = scale_from_name(path), "its file name"
    if file_scale is None:  # nothing to check against: taken to be what the caller expects
        file_scale, source = expected_scale, "expected_scale"
        logger.warning("%s: its file, folders and contents name no scale: its scale could not be checked "
                       "(taken to be x%s); a name with x<scale> (e.g. models_x%s/) is checked", path,
                       expected_scale or net_scale, expected_scale or net_scale)
    if expected_scale is not None and file_scale is not None and file_scale != expected_scale:
        raise KULNetError(f"{path}: checkpoint is x{file_scale} ({source}) but x{expected_scale} was expected; "
                          f"use the x{expected_scale} checkpoint")
    if file_scale is not None and net_scale is not None and file_scale != net_scale:
        raise KULNetError(f"{path}: checkpoint is x{file_scale} ({source}) but the network is x{net_scale}; "
                          f"use the x{net_scale} checkpoint or set scale: {file_scale}")
    return file_scale


def load_network(net, path, strict=True, expected_scale=None, contents=None, estimator_follows=False):
    """Load weights into ``net``, detecting our format or the authors' raw state_dict.

    The authors' files hold no metadata, and their tensors are identical in shape at x2, x3 and x4,
    so their scale cannot be read from the tensors: a scale written in the file or folder name
    (``..._x2...``, ``models_2x``) is checked against ``expected_scale`` and the network's scale; without
    one the file is taken to be of ``expected_scale`` (checked against the network), with a warning that
    its scale could not be checked.

    Args:
        net (nn.Module): target network (wrappers allowed).
        path (str): checkpoint file.
        strict (bool): every key of the network must be in the file and vice versa.
        expected_scale (int | None): the scale the caller expects the checkpoint to have.
        contents (tuple | None): the file as :func:`read_checkpoint` returned it (not read again).
        estimator_follows (bool): the estimator's weights are loaded from another file next, so its input
            (``network_G.estimator_input``) is not checked against this one's.

    Returns:
        dict: the metadata (``format`` 'kulnet' or 'authors', ``scale`` (None if unknown),
        ``missing_keys``, ``unexpected_keys`` and, for our files, everything saved).

    Raises:
        KULNetError: missing/truncated/corrupt file, another network's weights, scale or kernel-size
            mismatch.
    """
    bare = _bare(net)
    fmt, params, meta = contents or read_checkpoint(path)
    meta = dict(meta)
    params = _strip_prefixes(params)
    if fmt == "kulnet" and meta.get("model") not in (None, type(bare).__name__):
        raise KULNetError(f"{path}: a {meta.get('model')} checkpoint, the network is {type(bare).__name__}; "
                          f"use a checkpoint of this network")
    file_scale = check_checkpoint_scale(bare, path, fmt, meta, expected_scale)
    if fmt == "kulnet" and meta.get("kernel_size") not in (None, getattr(bare, "kernel_size", None)):
        raise KULNetError(f"{path}: kernel_size {meta['kernel_size']} in the checkpoint, "
                          f"{getattr(bare, 'kernel_size', None)} in the network; set kernel_size to match")

    if not estimator_follows:
        _check_estimator_input(bare.kernel_extra if hasattr(bare, "kernel_extra") else bare, meta, path)
    own = bare.state_dict()
    missing = [k for k in own if k not in params]
    unexpected = [k for k in params if k not in own]
    common = [k for k in own if k in params]
    if not common or (strict and (missing or unexpected)):
        raise KULNetError(f"{path}: not a checkpoint of this {type(bare).__name__} ({len(missing)} missing keys "
                          f"e.g. {missing[:2]}, {len(unexpected)} unexpected e.g. {unexpected[:2]}); "
                          f"use a matching checkpoint or strict=False")
    for key in common:
        if params[key].shape != own[key].shape:
            raise KULNetError(f"{path}: {key} has shape {tuple(params[key].shape)} in the checkpoint, "
                              f"{tuple(own[key].shape)} in the network; check kernel_size and network_G widths")
    bare.load_state_dict({k: params[k] for k in common}, strict=False)
    if missing or unexpected:
        logger.warning("%s: %d missing keys %s, %d unexpected keys %s", path, len(missing), missing[:5],
                       len(unexpected), unexpected[:5])
    meta.update(format=fmt, scale=file_scale, missing_keys=missing, unexpected_keys=unexpected)
    return meta


ESTIMATOR_PREFIX = "kernel_extra."


def _check_estimator_input(estimator, meta, path):
    """A checkpoint whose estimator was trained on another input (``network_G.estimator_input``) is
    refused: the weights would load and estimate nonsense. Files without the record took the image."""
    mine = getattr(estimator, "estimator_input", None)
    theirs = ((meta or {}).get("network_G") or {}).get("estimator_input", "image")
    if mine is not None and theirs != mine:
        raise KULNetError(f"{path}: its kernel estimator was trained with network_G.estimator_input = {theirs}, "
                          f"this network's is {mine}; set network_G.estimator_input: {theirs}")


def load_estimator(net, path, expected_scale=None):
    """Load the kernel estimator's weights alone (``path.pretrain_model_K``): the ``kernel_extra.*``
    tensors of a whole-network checkpoint (ours or the authors'), or a file of the estimator's own
    state_dict. Every estimator key must be there with its shape; the scale is checked as
    :func:`load_network` checks it (the estimator's tensors are alike at every scale).

    Returns:
        dict: ``format`` and ``source`` (``'whole network'`` or ``'estimator'``), ``n_tensors``, and
        ``missing_keys``/``unexpected_keys`` (empty: a mismatch raises).

    Raises:
        KULNetError: unreadable file, a checkpoint of another scale, or not the weights of this estimator.
    """
    estimator = _bare(net).kernel_extra
    fmt, params, meta = read_checkpoint(path)
    _check_estimator_input(estimator, meta, path)
    check_checkpoint_scale(_bare(net), path, fmt, meta, expected_scale)
    params = _strip_prefixes(params)
    nested = {k[len(ESTIMATOR_PREFIX):]: v for k, v in params.items() if k.startswith(ESTIMATOR_PREFIX)}
    weights, source = (nested, "whole network") if nested else (params, "estimator")
    own = estimator.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    wrong = [k for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise KULNetError(f"{path}: not the weights of this kernel estimator ({len(missing)} missing keys e.g. "
                          f"{missing[:2]}, {len(unexpected)} unexpected e.g. {unexpected[:2]}, {len(wrong)} of "
                          f"another shape e.g. {wrong[:2]}); give a checkpoint of KULNet or of its kernel_extra")
    estimator.load_state_dict(weights)
    return {"format": fmt, "source": source, "n_tensors": len(weights), "missing_keys": [], "unexpected_keys": []}
