"""Read and check the option files of ``test.py`` and ``test_real.py`` (options/test/*.yml).

Every key is checked before any work starts: an unknown key is a one-line :class:`KULNetError` naming
it and the nearest valid key, a wrong type names the key and the value, and a missing dataset folder
or checkpoint is reported in one line by :func:`check_test_paths` / :func:`check_real_paths`.
The checks of scalar keys, of ``device``, of ``kernel_size`` and of ``network_G`` are those of the
training options (:mod:`options.options`); the lists this file adds (``datasets``, ``kernels``)
are checked here.
Relative paths in a YAML file are taken from the repository root, as in the training options;
paths given on the command line are taken from the current directory (the scripts do that).

Public API:
    TEST_SCHEMA, REAL_SCHEMA, DATASET_KEYS, validate_test_options,
    validate_real_options, check_test_paths, check_real_paths, checkpoint_hint, apply_scale,
    shipped_scale
"""
import os
import re

from options.options import (
    check_device,
    check_kernel_size,
    check_run_name,
    reject_unknown_keys,
    resolve_path,
    validate,
)
from options.schema import NETWORK_G, Key
from utils.errors import KULNetError, short

# inference precisions: fp32 (the reference numerics), then autocast in bfloat16 or float16
PRECISIONS = ("fp32", "bf16", "fp16")

_DEVICES = "auto, cpu, cuda or cuda:N"
DEFAULT_CHECKPOINT = "pretrained/KULNet_x4.pth"

SHIPPED_NAME = re.compile(r"KULNet_x\d+")
# the training option file of each scale (train.yml is the authors' x2 setting)
TRAIN_OPTIONS = {2: "options/train/train.yml", 3: "options/train/train_x3.yml", 4: "options/train/train_x4.yml"}


def shipped_scale(path):
    """int | None: N if ``path`` is one of our shipped files ``pretrained/KULNet_x<N>.pth``."""
    folder, base = os.path.split(str(path))
    match = re.fullmatch(r"KULNet_x(\d+)\.pth", base)
    return int(match.group(1)) if match and resolve_path(folder) == resolve_path("pretrained") else None


def apply_scale(raw, scale):
    """A ``--scale`` on the command line: set ``raw['scale']`` and move the shipped defaults with it.

    A checkpoint that is (or defaults to) one of our shipped files ``pretrained/KULNet_x<N>.pth``
    becomes ``pretrained/KULNet_x<scale>.pth``, and a name ``KULNet_x<N>_...`` becomes
    ``KULNet_x<scale>_...``; any other checkpoint or name is the user's and is left as it is (a
    checkpoint of another scale is then reported when it is loaded).

    Args:
        raw (dict): YAML contents, changed in place.
        scale (int): the scale asked for.

    Raises:
        KULNetError: a scale below 1 (the line names the flag).
    """
    if scale < 1:
        raise KULNetError(f"--scale {scale}: give a positive scale (the shipped models are x2, x3 and x4)")
    raw["scale"] = scale
    if shipped_scale(raw.get("checkpoint") or DEFAULT_CHECKPOINT) is not None:
        raw["checkpoint"] = os.path.join("pretrained", f"KULNet_x{scale}.pth")
    name = raw.get("name")
    if name is None or SHIPPED_NAME.match(name):
        raw["name"] = SHIPPED_NAME.sub(f"KULNet_x{scale}", name or "KULNet_x4_test", count=1)


SHIPPED_HELP = "weights file; ~ = pretrained/KULNet_x<scale>.pth"


def complete_checkpoint(opt):
    """An option file without a checkpoint takes the shipped model of its scale, ``pretrained/KULNet_x<scale>.pth``."""
    if opt["checkpoint"] is None:
        opt["checkpoint"] = resolve_path(os.path.join("pretrained", f"KULNet_x{opt['scale']}.pth"))


PRECISION = Key("str", "fp32", choices=PRECISIONS,
                help="inference autocast; fp32 = the paper's numerics, bf16 about 3x faster on AMX CPUs")

# The keys test.py and test_real.py share (the network, the checkpoint and how it runs)
SHARED_SCHEMA = {
    "scale": Key("int", 4, minimum=1, help="SR scale"),
    "kernel_size": Key("int", 21, minimum=1, help="blur kernel size l"),
    "device": Key("str", "auto", help=_DEVICES),
    "checkpoint": Key("path", None, nullable=True, help=SHIPPED_HELP),
    "network_G": NETWORK_G,
    "x8": Key("bool", False, help="x8 self-ensemble (flips and transposes)"),
    "literal": Key("bool", False, help="the network's literal path, in the authors' order of operations "
                   "(their outputs to the bit on the CPU; slower); false: the fast path, equal to float rounding"),
    "precision": PRECISION,
    "tile": Key("int", None, nullable=True, minimum=0, help="LR tile size for the SR part; ~/0 = automatic"),
    "tile_overlap": Key("int", 32, minimum=0, help="LR pixels of context around each tile"),
    "out": Key("path", None, nullable=True, help="the output folder; default results/<name>"),
}

# Scalar keys and sections of options/test/test.yml; 'datasets' and 'kernels' are checked below.
TEST_SCHEMA = {
    "name": Key("str", "KULNet_x4_test", help="results go to <out> (default results/<name>)"),
    **SHARED_SCHEMA,
    "seed": Key("int", 0, help="noise seed, reset for every dataset x noise x kernel"),
    "kernel_file": Key("path", None, nullable=True, help=".npy (N, l, l) kernels instead of 'kernels'"),
    "sv_mode": Key("int", 0, choices=(0, 1, 2, 3, 4, 5, 6),
                   help="0: one kernel per image; 1-6: the authors' spatially variant patterns (MANet's), a "
                        "kernel per 40x40 HR block, instead of 'kernels'"),
    "noise": Key("float_list", [0.0], help="noise levels, 0..255 units"),
    "crop_border": Key("int", None, nullable=True, minimum=0, help="metric border; default: the scale"),
    "baselines": {
        "bicubic": Key("bool", True, help="bicubic upsampling of the same LR"),
        "non_blind": Key("bool", True, help="the SR part given the true kernel"),
    },
    "save_images": Key("bool", True, help="SR images and kernel figures under <out>/images"),
}

# One entry of the 'datasets' list: a folder of HR images or photographs from scikit-image.
DATASET_KEYS = ("name", "dataroot_HR", "skimage", "center_crop", "max_images")

REAL_SCHEMA = {
    "name": Key("str", "KULNet_x4_real", help="results go to <out> (default results/<name>)"),
    **SHARED_SCHEMA,
    "input": Key("path", "datasets/historical", help="a folder of LR images or one image"),
    "border": Key("bool", True, help="the authors' blurred border, cropped from the SR afterwards"),
}


def apply_shared_flags(raw, args, paths=("checkpoint", "out")):
    """Put the command-line flags that test.py and test_real.py share over the option file's values.

    Args:
        raw (dict): YAML contents, changed in place.
        args (argparse.Namespace): ``device``, ``precision``, ``x8``, ``literal``, ``tile`` and the
            ``paths`` (taken from the current folder).
    """
    for key in paths:
        if getattr(args, key):
            raw[key] = os.path.abspath(getattr(args, key))
    for key in ("device", "precision"):
        if getattr(args, key):
            raw[key] = getattr(args, key)
    for key in ("x8", "literal"):
        if getattr(args, key):
            raw[key] = True
    if args.tile is not None:
        raw["tile"] = args.tile


def _validate_datasets(raw, src):
    if raw is None:
        raw = [{"name": "Set5", "dataroot_HR": "datasets/Set5/HR"}]
    if not isinstance(raw, list) or not raw:
        raise KULNetError(f"{src}: datasets must be a list of entries like "
                          f"'- {{name: Set5, dataroot_HR: datasets/Set5/HR}}'")
    out, names = [], set()
    for i, entry in enumerate(raw):
        where = f"datasets[{i}]"
        if not isinstance(entry, dict):
            raise KULNetError(f"{src}: {where} = {short(entry)}: give name and dataroot_HR (or skimage)")
        reject_unknown_keys(entry, DATASET_KEYS, where, src, "test")
        has_root, has_sk = entry.get("dataroot_HR") is not None, entry.get("skimage") is not None
        if has_root == has_sk:
            raise KULNetError(f"{src}: {where}: give exactly one of dataroot_HR (a folder of HR "
                              f"images) or skimage (a list of scikit-image photograph names)")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise KULNetError(f"{src}: {where}.name must be a non-empty string")
        if name in names:
            raise KULNetError(f"{src}: {where}.name = {short(name)} is used twice; names must differ")
        names.add(name)
        item = {"name": name, "dataroot_HR": None, "skimage": None}
        if has_root:
            if not isinstance(entry["dataroot_HR"], str):
                raise KULNetError(f"{src}: {where}.dataroot_HR must be a folder path")
            item["dataroot_HR"] = resolve_path(entry["dataroot_HR"])
        else:
            photos = entry["skimage"]
            if not isinstance(photos, list) or not photos or not all(isinstance(p, str) for p in photos):
                raise KULNetError(f"{src}: {where}.skimage must be a list of names, e.g. [astronaut, coffee]")
            item["skimage"] = list(photos)
        for key in ("center_crop", "max_images"):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise KULNetError(f"{src}: {where}.{key} = {short(value)} must be a positive integer or ~")
            item[key] = value
        out.append(item)
    return out


def _validate_kernels(raw, src):
    """'paper' (the nine kernels of the paper tables) or a list of [sig1, sig2, theta_degrees]."""
    if raw is None or raw == "paper":
        return "paper"
    if not isinstance(raw, list) or not raw:
        raise KULNetError(f"{src}: kernels = {short(raw)}; use 'paper' or a list of [sig1, sig2, theta_degrees]")
    out = []
    for i, k in enumerate(raw):
        ok = isinstance(k, (list, tuple)) and len(k) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in k)
        if not ok or k[0] <= 0 or k[1] <= 0:
            raise KULNetError(f"{src}: kernels[{i}] = {short(k)}; give [sig1, sig2, theta_degrees] "
                              f"with variances sig1, sig2 > 0")
        out.append(tuple(float(v) for v in k))
    return out


def _with_sections(raw, schema):
    """Give every section of ``schema`` a (possibly empty) dict so that absent ones take defaults."""
    raw = dict(raw)
    for key, spec in schema.items():
        if isinstance(spec, dict) and raw.get(key) is None:
            raw[key] = {}
    return raw


MIN_TILE = 8  # LR pixels: smaller cores multiply whole-patch passes (a 1-pixel tile: one per pixel)


def check_tile(opt, src):
    """``tile`` (LR pixels) is 0/None (automatic) or at least :data:`MIN_TILE`."""
    if opt["tile"] and opt["tile"] < MIN_TILE:
        raise KULNetError(f"{src}: tile = {opt['tile']} LR pixels is too small (each core is restored from a "
                          f"patch {opt['tile_overlap']} pixels larger on every side); give tile >= {MIN_TILE}, "
                          f"or 0 for automatic")


def validate_test_options(raw, src="options"):
    """Check and complete the options of ``test.py``.

    Args:
        raw (dict): the YAML contents (and command-line overrides), plain values.
        src (str): the file name used in messages.

    Returns:
        dict: every key of :data:`TEST_SCHEMA` plus ``datasets`` (list of dicts with
        ``name, dataroot_HR, skimage, center_crop, max_images``) and ``kernels`` ('paper' or a list of
        (sig1, sig2, theta_degrees)); paths absolute.

    Raises:
        KULNetError: one line naming the key at fault.
    """
    raw = dict(raw)
    datasets = _validate_datasets(raw.pop("datasets", None), src)
    kernels = _validate_kernels(raw.pop("kernels", None), src)
    opt = dict(validate(_with_sections(raw, TEST_SCHEMA), TEST_SCHEMA, "", src, "test"))
    opt["datasets"], opt["kernels"] = datasets, kernels
    check_device(opt, src)
    check_kernel_size(opt, src)
    check_tile(opt, src)
    if any(n < 0 for n in opt["noise"]) or not opt["noise"]:
        raise KULNetError(f"{src}: noise = {short(opt['noise'])}; give a list of levels >= 0 (0..255 units)")
    if opt["sv_mode"] and (kernels != "paper" or opt["kernel_file"]):
        raise KULNetError(f"{src}: sv_mode = {opt['sv_mode']} takes each block's kernel from the pattern; "
                          f"remove 'kernels' / 'kernel_file' or set sv_mode: 0")
    check_run_name(opt["name"], src, "results")
    complete_checkpoint(opt)
    if opt["crop_border"] is None:
        opt["crop_border"] = opt["scale"]
    if opt["out"] is None:
        opt["out"] = resolve_path(os.path.join("results", opt["name"]))
    return opt


def validate_real_options(raw, src="options"):
    """Check and complete the options of ``test_real.py`` (keys of :data:`REAL_SCHEMA`)."""
    opt = dict(validate(_with_sections(raw, REAL_SCHEMA), REAL_SCHEMA, "", src, "real"))
    check_run_name(opt["name"], src, "results")
    complete_checkpoint(opt)
    check_device(opt, src)
    check_kernel_size(opt, src)
    check_tile(opt, src)
    if opt["out"] is None:
        opt["out"] = resolve_path(os.path.join("results", opt["name"]))
    return opt


def checkpoint_hint(path):
    """The one-line message for a checkpoint file that does not exist."""
    scale = shipped_scale(os.path.abspath(path))
    if scale is not None and scale not in TRAIN_OPTIONS:
        return (f"pretrained/KULNet_x{scale}.pth: we ship no x{scale} model, and train.py trains x2, x3 and x4; "
                f"pass --checkpoint PATH of an x{scale} model (ours or the authors' latest_G.pth)")
    if scale is not None:
        shipped = f"pretrained/KULNet_x{scale}.pth"
        train = TRAIN_OPTIONS[scale]
        return (f"{shipped}: not in this checkout (pretrained/MANIFEST.md lists the models we ship; "
                f"'git checkout -- pretrained' restores them); train one with "
                f"'python codes/train.py -opt {train}' and copy "
                f"experiments/<name>/models/latest_G.pth to {shipped}, or pass --checkpoint PATH "
                f"(the authors' latest_G.pth loads too)")
    return (f"{path}: checkpoint not found; check the path (pass --checkpoint PATH or set "
            f"'checkpoint' in the option file)")


def _check_checkpoint(path):
    if not os.path.isfile(path):
        raise KULNetError(checkpoint_hint(path))


def check_test_paths(opt):
    """Check the checkpoint, the kernel file and every dataset folder before any work starts.

    Raises:
        KULNetError: one line for the first missing item.
    """
    _check_checkpoint(opt["checkpoint"])
    if opt["kernel_file"] is not None and not os.path.isfile(opt["kernel_file"]):
        raise KULNetError(f"{opt['kernel_file']}: kernel file not found; give a .npy of (N, l, l) kernels")
    for ds in opt["datasets"]:
        root = ds["dataroot_HR"]
        if root is not None and not os.path.isdir(root):
            raise KULNetError(f"{root}: HR folder of dataset '{ds['name']}' does not exist; put the images "
                              f"there (see datasets/README.md) or change dataroot_HR")


def check_real_paths(opt):
    """Check the checkpoint and the input before any work starts (one-line KULNetError)."""
    _check_checkpoint(opt["checkpoint"])
    if not os.path.exists(opt["input"]):
        raise KULNetError(f"{opt['input']}: input not found; give a folder of LR images or one image")
