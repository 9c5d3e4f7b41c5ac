"""The authors' option keys and where each one lives here: one table, kept as data.

The authors' KULNet code (built on MANet) reads three option files: ``test.yml`` (the synthetic
protocol), ``test_real.yml`` (real photos) and ``train.yml``. :data:`TABLE` has an entry per key of
those files (per file where the meaning differs): the key here that takes its meaning and a rule that
takes the value over with its meaning kept (units, defaults, the authors' quirks), or the reason it
is dropped. The translation of a whole file (:mod:`options.authors_layout`), the hint for an unknown
key in a file of either layout (:func:`moved_key_hint`) and the key table of ``--help-options``
(:func:`key_table`) all read this table.

A rule is ``rule(value, ctx) -> result``, called for a value that is not ``~`` (a ``~`` leaves the
default here): a plain value for the entry's key here; :class:`Set`, values for several keys here (or
none: the key is folded into another one, or its value is what happens here anyway), with a note;
or :class:`Drop`, no counterpart here (the run says so in a line). A value that cannot be honoured is
a one-line error (``ctx.bad``) naming the key and the value. ``ctx.get(key)`` reads another key of the
same file (``datasets.*.X``: of the same dataset), ``ctx.path(value, what)`` takes a path from
``codes/`` as the authors' scripts do.
"""
import difflib
import re
from dataclasses import dataclass
from typing import Callable

FILES = {"test": "test.yml", "real": "test_real.yml", "train": "train.yml"}
TESTS, ALL = ("test", "real"), ("test", "real", "train")
SYNTHETIC = "test_real.py restores real photos: no synthetic degradation"


@dataclass(frozen=True)
class Entry:
    """One key of the authors' files.

    Attributes:
        key: dotted path in their file; ``*`` stands for a dataset's phase (``test``, ``train``, ``val``).
        files: the files it belongs to (``test``, ``real``, ``train``).
        here: our key that takes it (``datasets[]`` is the test list's entry of that dataset); '' when dropped.
        how: one line: the meaning kept, or why it is dropped.
        rule: see the module docstring; None copies the value.
    """

    key: str
    files: tuple
    here: str
    how: str
    rule: Callable = None


@dataclass
class Set:
    """Values for keys here (possibly none), and a note for the run's line."""

    values: dict
    note: str = ""


@dataclass
class Drop:
    """No counterpart here, for the reason given."""

    reason: str


def _only(*allowed, note):
    """The value must be one of ``allowed`` (then it is what happens here anyway)."""
    def rule(value, ctx):
        if value not in allowed:
            ctx.bad(value, f"only {' or '.join(map(repr, allowed))} is supported here")
        return Set({}, note)
    return rule


def _drop(reason):
    return lambda value, ctx: Drop(reason)


def _to(convert):
    """A plain value converted by ``convert(value)`` (a ValueError or TypeError names the key and value)."""
    def rule(value, ctx):
        try:
            return convert(value)
        except (TypeError, ValueError):
            ctx.bad(value, f"expected {convert.__name__}")
    return rule


def integer(value):
    """An int; the authors write iteration counts as YAML floats (``!!float 5e3``)."""
    if isinstance(value, bool) or float(value) != int(float(value)):
        raise ValueError(value)
    return int(float(value))


def number(value):
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def integers(value):
    return [integer(v) for v in value]


def _folded(note):
    """A key that another key's rule reads (the value is taken over there)."""
    return lambda value, ctx: Set({}, note)


def _numbers(value):
    return [number(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def _path(what):
    """A path taken from codes/; ``what`` is 'dir', 'file' or 'any' (checked when paths are checked)."""
    return lambda value, ctx: Set({ctx.entry.here: ctx.path(value, what)}, "from codes/")


def _same(value):
    return value


def _gpu_ids(value, ctx):
    if ctx.world_size > 1:
        return Set({"device": "auto"}, "torchrun: each process its LOCAL_RANK GPU")
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                              for v in value):
        ctx.bad(value, "give a list of GPU indices, e.g. [0]")
    if len(value) > 1:
        ctx.bad(value, f"one process uses one GPU here; give one index, or launch torchrun --nproc_per_node "
                       f"{len(value)} codes/train.py --opt FILE --launcher pytorch")
    if not value:
        return "cpu"
    return "auto" if value[0] == 0 else f"cuda:{value[0]}"


def _isotropic(ctx):
    return ctx.get("rate_iso") == 1


def _sv_mode(ctx):
    return ctx.get("sv_mode") or 0


def _test_kernels(value, ctx):
    """sig1, sig2, theta (lists or one value each) -> kernels [[sig1, sig2, theta_degrees], ...]."""
    if _sv_mode(ctx):
        return Drop(f"sv_mode {_sv_mode(ctx)}: each block's kernel comes from the pattern")
    if _isotropic(ctx):
        return Drop("rate_iso 1: the isotropic kernel of sig is used instead")
    columns = [_numbers(v) if v is not None else [] for v in (value, ctx.get("sig2"), ctx.get("theta"))]
    if not len(columns[0]) == len(columns[1]) == len(columns[2]):
        ctx.bad(value, "sig1, sig2 and theta need one value per kernel each")
    return [list(k) for k in zip(*columns)]


def _with_sig1(value, ctx):
    if _sv_mode(ctx) or _isotropic(ctx):
        return _test_kernels(value, ctx)
    return Set({}, "with sig1 into kernels")


def _test_sig(value, ctx):
    if not _isotropic(ctx) or _sv_mode(ctx):
        return Drop("used only when rate_iso is 1")
    var = number(value) ** 2  # a standard deviation; kernels take variances
    return Set({"kernels": [[var, var, 0.0]]}, f"rate_iso 1: one isotropic kernel, sig1 = sig2 = {var:g}")


def _test_rate_iso(value, ctx):
    if value not in (0, 1):
        ctx.bad(value, "a test has one kind of kernel: 0 (anisotropic) or 1 (isotropic, with sig)")
    if value == 1 and ctx.get("sig") is None:
        ctx.bad(value, "rate_iso 1 needs 'sig', the isotropic kernel's standard deviation")
    return Set({}, "isotropic: sig" if value == 1 else "anisotropic")


def _test_noise(value, ctx):
    return [number(value) if ctx.get("test_noise") is not False else 0.0]


def _no_jpeg(value, ctx):
    if value:
        ctx.bad(value, "JPEG in the test and validation LR is not supported here; set it to False")
    return Set({}, "no JPEG")


def _val_kernel(key):
    def rule(value, ctx):
        if _isotropic(ctx):
            return Drop("rate_iso 1: the isotropic validation kernel of sig is used instead")
        return Set({f"datasets.val.{key}": number(value)}, "radians" if key == "theta" else "")
    return rule


def _val_sig(value, ctx):
    if not _isotropic(ctx):
        return Drop("used only when rate_iso is 1")
    var = number(value) ** 2
    return Set({"datasets.val.sig1": var, "datasets.val.sig2": var, "datasets.val.theta": 0.0},
               f"isotropic validation kernel, sig1 = sig2 = {var:g}")


def _val_noise(value, ctx):
    return number(value) if ctx.get("test_noise") is not False else 0.0


def _train_noise(value, ctx):
    if value is True:
        return Set({}, "noise level ~ U(0, noise_high)")
    return Set({"degradation.random_noise": False, "degradation.noise": 0.0}, "no training noise")


def _train_jpeg(value, ctx):
    if not value:
        return Set({}, "no JPEG")
    return Set({"degradation.jpeg_low": integer(ctx.get("jpeg_low"))}, "quality ~ U(jpeg_low, 100)")


def _jpeg_low(value, ctx):
    return Set({}, "with train_jpeg") if ctx.get("train_jpeg") else Drop("used only when train_jpeg is true")


def _debug(value_if_debug, convert=integer):
    """A frequency that a name containing 'debug' replaces, as in the authors' code."""
    return lambda value, ctx: value_if_debug if ctx.debug else convert(value)


def _per_gpu_workers(value, ctx):
    return integer(value) * ctx.world_size  # per GPU there, in total (split over the processes) here


def _lr_size(value, ctx):
    gt, scale = ctx.get("datasets.*.GT_size"), ctx.get("scale")
    if gt is None or scale is None or integer(value) * integer(scale) != integer(gt):
        ctx.bad(value, "the LR crop is always GT_size / scale here; remove LR_size")
    return Set({}, "GT_size / scale")


def _dataset_mode(wanted, why, note, here_value=None):
    def rule(value, ctx):
        if value != wanted:
            ctx.bad(value, why)
        return Set({"datasets.*.mode": here_value} if here_value else {}, note)
    return rule


def _copied_from_top(key):
    def rule(value, ctx):
        top = ctx.get(key)
        if top is not None and value != top:
            return Drop(f"the top-level {key} {top!r} is used, as their code copies it into every dataset")
        return Set({}, "the top-level value")
    return rule


def _test_dataroot(value, ctx):
    if isinstance(value, str) and value.rstrip("/").endswith("lmdb"):
        ctx.bad(value, "test.py reads a folder of HR images; give the image folder")
    return _path("dir")(value, ctx)


def _lr_scheme(value, ctx):
    schemes = {"MultiStepLR": "MultiStepLR", "CosineAnnealingLR_Restart": "CosineAnnealingRestartLR"}
    if value not in schemes:
        ctx.bad(value, f"the schedules here are {' and '.join(schemes)} (as {', '.join(schemes.values())})")
    return schemes[value]


def _cosine_only(value, ctx):
    if ctx.get("train.lr_scheme") != "CosineAnnealingLR_Restart":
        ctx.bad(value, "restarts of MultiStepLR are not supported here; set it to ~")


def _restarts(value, ctx):
    _cosine_only(value, ctx)
    periods = [integer(p) for p in ctx.get("train.T_period") or []]
    ends = [sum(periods[:n + 1]) for n in range(len(periods) - 1)]
    if [integer(v) for v in value] != ends:
        ctx.bad(value, f"the cycles here follow one another: restarts must be {ends} for T_period {periods}")
    return Set({}, "the ends of the T_period cycles")


def _restart_weights(value, ctx):
    _cosine_only(value, ctx)
    return [1.0] + _numbers(value)  # theirs weigh the restarted cycles; ours every cycle, the first at 1


def _warmup(value, ctx):
    return max(integer(value), 0)  # -1: no warm-up


def _network(value, ctx):
    if value != "BlindNet":
        ctx.bad(value, "their BlindNet (KULNet) is the only network here")
    return "KULNet"


def _strict_test(value, ctx):
    return Set({}, "always strict here") if value else Drop("the test scripts load every weight (strict)")


def _pixel(value, ctx):
    if value != "l1":
        ctx.bad(value, "the SR loss here is l1")
    return "l1"


def _kernel_loss(value, ctx):
    if value != "l1":
        ctx.bad(value, "the kernel loss here is their l1 (kernel_loss: authors) or our l1 distance")
    return "authors"


E = Entry
TABLE = (
    # ------------------------------------------------------------------ the top level, every file
    E("name", ALL, "name", "results/<name>/ (tests), experiments/<name>/ (training); in training a name "
      "containing 'debug' validates and saves every 8 iterations and prints every one, as theirs"),
    E("suffix", TESTS, "", "their suffix of saved image names; ours are named after the image",
      _drop("saved images are named after the image here")),
    E("model", ALL, "", "their model class: 'blind' (KULNet) is the only one here", _only("blind", note="KULNet")),
    E("distortion", ALL, "", "always 'sr'", _only("sr", note="always")),
    E("scale", ALL, "scale", "the SR scale", _to(integer)),
    E("crop_border", ("test",), "crop_border", "metric border; ~ = the scale", _to(integer)),
    E("crop_border", ("real",), "", SYNTHETIC + " (nothing is scored)", _drop(SYNTHETIC)),
    E("gpu_ids", ALL, "device", "[0]: auto (GPU 0 when CUDA is present, else the CPU); [k]: cuda:k; []: cpu; "
      "under torchrun each process takes its LOCAL_RANK GPU", _gpu_ids),
    E("kernel_size", ALL, "kernel_size", "the kernel size l", _to(integer)),
    E("sig1", ("test",), "kernels", "the test kernels: [sig1, sig2, theta] each, variances and degrees "
      "(radians as theta/180*3.14, their quirk)", _test_kernels),
    E("sig2", ("test",), "kernels", "with sig1", _with_sig1),
    E("theta", ("test",), "kernels", "with sig1; degrees", _with_sig1),
    E("sig", ("test",), "kernels", "rate_iso 1: one isotropic kernel of standard deviation sig "
      "(kernels [[sig^2, sig^2, 0]])", _test_sig),
    E("rate_iso", ("test",), "kernels", "0: anisotropic kernels; 1: the isotropic kernel of sig", _test_rate_iso),
    E("test_noise", ("test",), "noise", "False: noise [0]", _folded("with noise")),
    E("noise", ("test",), "noise", "the noise level, 8-bit units: noise [level]", _test_noise),
    E("sv_mode", ("test",), "sv_mode", "0: one kernel per image; 1-6: their spatially variant patterns",
      _to(integer)),
    E("test_jpeg", ("test", "train"), "", "False only: no JPEG in the test and validation LR here", _no_jpeg),
    E("jpeg", ("test", "train"), "", "used only with test_jpeg", _drop("used only when test_jpeg is true")),
    *(E(key, ("real",), "", SYNTHETIC, _drop(SYNTHETIC))
      for key in ("sig1", "sig2", "theta", "sig", "rate_iso", "test_noise", "noise", "sv_mode")),
    # ------------------------------------------------------------------ the top level of train.yml
    E("use_tb_logger", ("train",), "logger.use_tb_logger", "TensorBoard (off for a debug name)",
      _debug(False, _same)),
    E("sig_min", ("train",), "degradation.sig_min", "training kernel variances drawn from [sig_min, sig_max]",
      _to(number)),
    E("sig_max", ("train",), "degradation.sig_max", "", _to(number)),
    E("rate_iso", ("train",), "degradation.rate_iso", "the share of isotropic training kernels; 1 also makes "
      "the validation kernel isotropic (sig)", _to(number)),
    E("train_noise", ("train",), "degradation.random_noise", "True: noise level ~ U(0, noise_high); False: none",
      _train_noise),
    E("noise_high", ("train",), "degradation.noise_high", "8-bit units", _to(number)),
    E("train_jpeg", ("train",), "degradation.jpeg_low", "True: JPEG quality ~ U(jpeg_low, 100)", _train_jpeg),
    E("jpeg_low", ("train",), "degradation.jpeg_low", "with train_jpeg", _jpeg_low),
    E("sig1", ("train",), "datasets.val.sig1", "the validation kernel (a variance)", _val_kernel("sig1")),
    E("sig2", ("train",), "datasets.val.sig2", "", _val_kernel("sig2")),
    E("theta", ("train",), "datasets.val.theta", "radians in train.yml", _val_kernel("theta")),
    E("sig", ("train",), "datasets.val.sig1", "rate_iso 1: the isotropic validation kernel, sig1 = sig2 = sig^2",
      _val_sig),
    E("test_noise", ("train",), "datasets.val.noise", "False: validation noise 0", _folded("with noise")),
    E("noise", ("train",), "datasets.val.noise", "the validation noise level, 8-bit units", _val_noise),
    E("cal_lr_psnr", ("train",), "", "validation always reports the LR PSNR here",
      _drop("validation always reports the LR PSNR here")),
    # ------------------------------------------------------------------ datasets
    E("datasets.*.name", ("test",), "datasets[].name", "the dataset's label"),
    E("datasets.*.mode", ("test",), "", "GT only: HR images, the LR made from them",
      _dataset_mode("GT", "test.py makes the LR from HR images; LR photos go to test_real.py", "HR images")),
    E("datasets.*.dataroot_GT", ("test",), "datasets[].dataroot_HR", "a folder of HR images, from codes/",
      _test_dataroot),
    E("datasets.*.dataroot_LQ", ("test", "train"), "", "mode GT: the LR is made from the HR",
      _drop("mode GT: the LR is made from the HR")),
    E("datasets.*.name", ("real",), "", "outputs go to results/<name>/ here",
      _drop("outputs go to results/<name>/ here")),
    E("datasets.*.mode", ("real",), "", "LQ only: LR photos",
      _dataset_mode("LQ", "test_real.py restores LR photos", "LR photos")),
    E("datasets.*.dataroot_GT", ("real",), "", "real photos have no HR", _drop("real photos have no HR")),
    E("datasets.*.dataroot_LQ", ("real",), "input", "the folder of photos (or one photo), from codes/",
      _path("any")),
    E("datasets.*.scale", ALL, "scale", "their code copies the top-level scale into every dataset",
      _copied_from_top("scale")),
    E("datasets.*.kernel_size", ALL, "kernel_size", "their code copies the top-level kernel_size",
      _copied_from_top("kernel_size")),
    E("datasets.*.name", ("train",), "datasets.*.name", "the dataset's label"),
    E("datasets.*.mode", ("train",), "datasets.*.mode", "GT: HR images, the LR made on the device (HR here)",
      _dataset_mode("GT", "the LR is made from HR images here", "HR images", "HR")),
    E("datasets.*.dataroot_GT", ("train",), "datasets.*.dataroot_GT", "HR folder or LMDB, from codes/",
      _path("dir")),
    E("datasets.*.use_shuffle", ("train",), "datasets.*.use_shuffle", ""),
    E("datasets.*.n_workers", ("train",), "datasets.*.n_workers", "per GPU there, in total here",
      _per_gpu_workers),
    E("datasets.*.batch_size", ("train",), "datasets.*.batch_size", "in total, as theirs", _to(integer)),
    E("datasets.*.GT_size", ("train",), "datasets.*.GT_size", "the HR crop", _to(integer)),
    E("datasets.*.LR_size", ("train",), "", "always GT_size / scale here", _lr_size),
    E("datasets.*.use_flip", ("train",), "datasets.*.use_flip", ""),
    E("datasets.*.use_rot", ("train",), "datasets.*.use_rot", ""),
    E("datasets.*.color", ("train",), "", "RGB only: images are read as RGB",
      _only("RGB", note="images are read as RGB")),
    # ------------------------------------------------------------------ network and weights
    E("network_G.which_model_G", ALL, "network_G.which_model_G", "BlindNet: KULNet", _network),
    E("path.strict_load", TESTS, "", "true: the test scripts always load strictly", _strict_test),
    E("path.pretrain_model_G", TESTS, "checkpoint", "from codes/; ~ = pretrained/KULNet_x<scale>.pth",
      _path("file")),
    E("path.pretrain_model_K", TESTS, "", "the test scripts load one whole-network checkpoint (checkpoint)",
      _drop("the test scripts load one whole-network checkpoint (path.pretrain_model_G)")),
    E("path.strict_load", ("train",), "path.strict_load", ""),
    E("path.pretrain_model_G", ("train",), "path.pretrain_model_G", "from codes/", _path("file")),
    E("path.pretrain_model_K", ("train",), "path.pretrain_model_K", "the estimator's weights alone, from codes/",
      _path("file")),
    E("path.resume_state", ("train",), "path.resume_state", "a .state file, from codes/", _path("file")),
    # ------------------------------------------------------------------ train and logger
    *(E(f"train.{key}", ("train",), f"train.{key}", "", _to(convert)) for key, convert in (
        ("lr_G", number), ("beta1", number), ("beta2", number), ("weight_decay_G", number), ("niter", integer),
        ("lr_gamma", number), ("eta_min", number), ("pixel_weight", number), ("kernel_weight", number))),
    E("train.lr_steps", ("train",), "train.lr_steps", "MultiStepLR milestones", _to(integers)),
    E("train.T_period", ("train",), "train.T_period", "cosine cycle lengths", _to(integers)),
    E("train.lr_scheme", ("train",), "train.lr_scheme", "MultiStepLR; CosineAnnealingLR_Restart: "
      "CosineAnnealingRestartLR", _lr_scheme),
    E("train.warmup_iter", ("train",), "train.warmup_iter", "-1: no warm-up (0)", _warmup),
    E("train.restarts", ("train",), "train.T_period", "cosine: the ends of the T_period cycles", _restarts),
    E("train.restart_weights", ("train",), "train.restart_weights", "cosine: [1] + theirs (ours weigh every "
      "cycle)", _restart_weights),
    E("train.pixel_criterion", ("train",), "train.pixel_criterion", "l1", _pixel),
    E("train.kernel_criterion", ("train",), "train.kernel_loss", "l1: their kernel loss (kernel_loss authors)",
      _kernel_loss),
    E("train.manual_seed", ("train",), "train.manual_seed", "~: 0 here", _to(integer)),
    E("train.val_freq", ("train",), "train.val_freq", "iterations (8 for a debug name)", _debug(8)),
    E("logger.print_freq", ("train",), "logger.print_freq", "iterations (1 for a debug name)", _debug(1)),
    E("logger.save_checkpoint_freq", ("train",), "logger.save_checkpoint_freq",
      "iterations (8 for a debug name)", _debug(8)),
)


def entries(kind):
    """The entries of one file, keyed by their (``*``) key."""
    return {e.key: e for e in TABLE if kind in e.files}


def pattern(path):
    """A key path with its dataset phase or list index as ``*``: ``datasets[0].x`` / ``datasets.val.x``
    -> ``datasets.*.x``."""
    path = re.sub(r"^datasets\[\d+\]", "datasets.*", path)
    return re.sub(r"^datasets\.[^.*]+\.", "datasets.*.", path)


def _here_text(entry, path):
    """The entry's key here, with the dataset of ``path`` in place of ``[]`` / ``*``."""
    here = entry.here
    index, phase = re.match(r"^datasets\[\d+\]", path), re.match(r"^datasets\.[^.]+(?=\.)", path)
    if index:
        here = here.replace("datasets[]", index.group(0))
    if phase:
        here = here.replace("datasets.*", phase.group(0))
    return here


def _entry_line(entry, path):
    if entry.here:
        return f"'{path}' is '{_here_text(entry, path)}' here" + (f" ({entry.how})" if entry.how else "")
    return f"'{path}' has no counterpart here: {entry.how}"


def moved_key_hint(path, kind):
    """The hint for ``path``, unknown in a file of ours, when it is one of the authors' keys (or section).

    Args:
        path (str): the dotted key as written (``sig_min``, ``datasets[0].dataroot_LQ``, ``path``).
        kind (str): ``test``, ``real`` or ``train``: which file the user's file stands for.

    Returns:
        str | None: e.g. ``'sig_min' is 'degradation.sig_min' here (...)``; None when it is not theirs.
    """
    table = entries(kind)
    key = pattern(path)
    if key in table:
        return _entry_line(table[key], path)
    bare = [e for k, e in table.items() if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
    if bare:
        return _entry_line(bare[0], path)
    inside = [(k, e) for k, e in table.items() if k.startswith(key + ".")]
    if inside:
        return f"'{path}' is a section of their {FILES[kind]}: " + "; ".join(
            f"{k[len(key) + 1:]} is " + (f"'{e.here}' here" if e.here else f"dropped ({e.how})") for k, e in inside)
    return None


def close_key(key, valid):
    """The valid key that ``key`` is a near miss of (case aside), else None: a guess only when it is close."""
    lower = {str(v).lower(): v for v in valid}
    match = difflib.get_close_matches(str(key).lower(), list(lower), n=1, cutoff=0.75)
    return lower[match[0]] if match else None


def key_table():
    """The authors' keys and their places here, as a Markdown table (``--help-options``); neighbouring keys
    of the same files that are dropped for one reason, or kept as they are, share a row."""
    rows = []
    for e in TABLE:
        kind = "dropped" if not e.here else "same" if e.here == e.key else e.here
        last = rows[-1] if rows else None
        if last and kind in ("dropped", "same") and (last[1], last[2], last[3]) == (kind, e.files, e.how):
            last[0].append(e.key)
        else:
            rows.append(([e.key], kind, e.files, e.how))
    lines = ["| their key | in their | here | how |", "| --- | --- | --- | --- |"]
    for keys, kind, files, how in rows:
        here = {"dropped": "(dropped)", "same": "the same key"}.get(kind, f"`{kind}`")
        names = ", ".join(f"`{k}`" for k in keys)
        lines.append(f"| {names} | {', '.join(FILES[f] for f in files)} | {here} | {how} |")
    return "\n".join(lines)


def moved_keys_table():
    """The authors' keys that live under another name here, one row each (Markdown, for the README):
    their key, its place here, the files of theirs that hold it."""
    places = {}
    for e in TABLE:
        if e.here and e.here != e.key:
            files = places.setdefault((e.key, e.here), [])
            files += [FILES[f] for f in e.files if FILES[f] not in files]
    lines = ["| their key | here | in their |", "| --- | --- | --- |"]
    lines += [f"| `{key}` | `{here}` | {', '.join(files)} |" for (key, here), files in places.items()]
    return "\n".join(lines)

