"""Read, check and complete a YAML option file (training).

``parse(path, overrides)`` returns an :class:`OptionDict` (a dict whose missing keys raise a
:class:`KULNetError` instead of returning None). Every problem (unknown or misspelt key, missing
required key, wrong type, bad scale, GT size not divisible by the scale, missing dataset folder)
is reported as one line before any work starts. Relative paths are resolved against the repository
root (the folder that holds ``codes/``), so ``datasets/DF2K/HR`` means ``<repo>/datasets/DF2K/HR``.
"""
import copy
import math
import os

import yaml

from options.authors_layout import is_authors_layout, translate
from options.authors_table import close_key, moved_key_hint
from options.schema import OPTIONAL_SECTIONS, REQUIRED, TRAIN_SCHEMA, Key
from options.yaml_loader import load_yaml
from utils.errors import KULNetError, short
from utils.lmdb_layout import detect_data_type

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class OptionDict(dict):
    """A dict of options; a missing key raises KULNetError naming its path (never returns None)."""

    def __init__(self, *args, _path="", **kwargs):
        super().__init__(*args, **kwargs)
        self._path = _path

    def __missing__(self, key):
        where = f"{self._path}.{key}" if self._path else str(key)
        raise KULNetError(f"options: key '{where}' is not set; add it to the option file "
                          f"or pass --set {where}=<value>")

    def __deepcopy__(self, memo):
        return OptionDict({k: copy.deepcopy(v, memo) for k, v in self.items()}, _path=self._path)

    def __reduce__(self):  # picklable (spawned DDP workers receive options)
        return (_rebuild, (dict(self), self._path))


def _rebuild(items, path):
    return OptionDict(items, _path=path)


def resolve_path(path):
    """Absolute path: ``~`` expanded, relative paths taken from the repository root."""
    path = os.path.expanduser(str(path))
    if not os.path.isabs(path):
        path = os.path.join(REPO_ROOT, path)
    return os.path.normpath(path)


def _join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def nearest_key(key, valid, prefix, kind=None):
    """The hint for an unknown ``key``: where it lives here when it is one of the authors' keys of the
    ``kind`` of file (``test``, ``real``, ``train``), else a valid key when one is close, else the list."""
    moved = moved_key_hint(_join(prefix, key), kind) if kind else None
    if moved:
        return moved
    match = close_key(key, valid)
    if match is not None:
        return f"did you mean '{_join(prefix, match)}'?"
    return "valid keys here: " + ", ".join(sorted(map(str, valid)))


def reject_unknown_keys(section, valid, prefix, src, kind=None):
    """Raise a one-line error naming the first key of ``section`` not in ``valid``, with its hint."""
    for key in section:
        if key not in valid:
            raise KULNetError(f"{src}: unknown key '{_join(prefix, key)}'; {nearest_key(key, valid, prefix, kind)}")


def _coerce(value, spec: Key, where, src):
    """Check/convert one value; returns the converted value."""
    if value is None:
        if spec.nullable:
            return None
        raise KULNetError(f"{src}: {where} must not be empty (~); give a {spec.type} value")

    def bad(expected):
        return KULNetError(f"{src}: {where} = {short(value)} ({type(value).__name__}) is not {expected}; "
                           f"fix the value in the option file or its command-line override")

    def as_float(v):
        if isinstance(v, bool):
            raise bad("a number")
        f = None
        if isinstance(v, (int, float)):
            f = float(v)
        elif isinstance(v, str):  # YAML 1.1 reads '2e-4' (no dot) as a string
            try:
                f = float(v)
            except ValueError:
                pass
        if f is None:
            raise bad("a number")
        if not math.isfinite(f):
            raise bad("a finite number")
        return f

    def as_int(v):
        if isinstance(v, bool):
            raise bad("an integer")
        if isinstance(v, int):
            return v
        try:
            f = as_float(v)  # accepts 5e3 / '5e3' when integral (authors write !!float 5e3)
        except KULNetError:
            raise bad("an integer") from None
        if not math.isfinite(f) or f != int(f):
            raise bad("an integer")
        return int(f)

    t = spec.type
    if t == "int":
        out = as_int(value)
    elif t == "float":
        out = as_float(value)
    elif t == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        out = value
    elif t in ("str", "path"):
        if not isinstance(value, str):
            if isinstance(value, bool) and spec.choices:  # YAML reads off/on/no/yes as booleans
                raise bad(f"one of {list(spec.choices)} (YAML reads off/on/no/yes as true/false)")
            raise bad("a string")
        out = resolve_path(value) if t == "path" else value
    elif t in ("int_list", "float_list"):
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        conv = as_int if t == "int_list" else as_float
        out = [conv(v) for v in value]
    else:  # pragma: no cover - schema error
        raise AssertionError(t)
    if spec.choices is not None and out not in spec.choices:
        raise KULNetError(f"{src}: {where} = {short(value)} is not one of {list(spec.choices)}")
    if spec.minimum is not None and t in ("int", "float") and out < spec.minimum:
        raise KULNetError(f"{src}: {where} = {short(value)} must be >= {spec.minimum}")
    return out


def validate(raw, schema, prefix, src, kind=None):
    """Recursively check ``raw`` against ``schema``; returns a completed OptionDict. ``kind`` (``test``,
    ``real``, ``train``) names the authors' file whose keys an unknown key is looked up in."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise KULNetError(f"{src}: '{prefix}' must be a section (key: value lines), got {short(raw)}")
    reject_unknown_keys(raw, schema, prefix, src, kind)
    out = OptionDict(_path=prefix)
    for key, spec in schema.items():
        where = _join(prefix, key)
        if isinstance(spec, dict):
            if key not in raw and where not in OPTIONAL_SECTIONS:
                raise KULNetError(f"{src}: section '{where}' is missing; add it (see options/train/train.yml)")
            if key not in raw and where == "datasets.val":
                out[key] = None  # no validation
                continue
            out[key] = validate(raw.get(key), spec, where, src, kind)
        elif key in raw:
            out[key] = _coerce(raw[key], spec, where, src)
        elif spec.default is REQUIRED:
            raise KULNetError(f"{src}: required key '{where}' is missing; add it to the option file")
        else:
            out[key] = copy.deepcopy(spec.default)
            if spec.type == "path" and out[key] is not None:
                out[key] = resolve_path(out[key])
    return out


def _apply_override(raw, item, src):
    """Apply one ``a.b=value`` override (value parsed as YAML) to the raw option dict."""
    if "=" not in item:
        raise KULNetError(f"--set {short(item)}: expected key.path=value, e.g. --set train.niter=1000")
    path, value = item.split("=", 1)
    keys = path.strip().split(".")
    try:
        value = load_yaml(value, f"--set {short(path)}") if value.strip() else None
    except yaml.YAMLError:
        pass  # keep the text as a string
    schema, node = TRAIN_SCHEMA, raw
    for i, key in enumerate(keys):
        prefix = ".".join(keys[:i])
        if not isinstance(schema, dict) or key not in schema:
            valid = schema if isinstance(schema, dict) else {}
            raise KULNetError(f"--set {path}: unknown key '{_join(prefix, key)}'; "
                              f"{nearest_key(key, valid, prefix, 'train')}")
        if i == len(keys) - 1:
            node[key] = value
        else:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node, schema = node[key], schema[key]
    return raw


def check_run_name(name, src, parent):
    """A run ``name`` is one folder name inside ``parent`` (the experiments or results folder): no
    separator, no ``..``, not absolute, so that a run never writes outside it nor moves another folder."""
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\")) or os.path.isabs(name):
        raise KULNetError(f"{src}: name = {short(name)} must be a folder name inside {parent} (the run's "
                          f"folder): leave out '/', '\\' and '..'")


def _check_semantics(opt, src, check_paths=True):
    check_run_name(opt["name"], src, "path.experiments_root")
    scale = opt["scale"]
    tr = opt["datasets"]["train"]
    if tr["GT_size"] is None:
        tr["GT_size"] = 48 * scale  # the authors' crop: 96 / 144 / 192
    if tr["GT_size"] % scale:
        raise KULNetError(f"{src}: datasets.train.GT_size = {tr['GT_size']} is not divisible by "
                          f"scale {scale}; use a multiple of {scale} (authors: {48 * scale})")
    if check_paths:
        _check_paths(opt, src)
    deg = opt["degradation"]
    if deg["sig_min"] > deg["sig_max"]:
        raise KULNetError(f"{src}: degradation.sig_min {deg['sig_min']} > sig_max {deg['sig_max']}")
    if not deg["random_kernel"] and None in (deg["sig1"], deg["sig2"], deg["theta"]):
        raise KULNetError(f"{src}: degradation.random_kernel is false: set degradation.sig1, sig2 "
                          f"and theta")
    check_kernel_size(opt, src)
    t = opt["train"]
    if t["lr_scheme"] == "CosineAnnealingRestartLR":
        if not t["T_period"]:
            raise KULNetError(f"{src}: train.T_period is needed for CosineAnnealingRestartLR, "
                              f"e.g. [250000, 250000]")
        if t["restart_weights"] and len(t["restart_weights"]) != len(t["T_period"]):
            raise KULNetError(f"{src}: train.restart_weights must have one entry per T_period")
    check_device(opt, src)


def check_kernel_size(opt, src):
    """``opt['kernel_size']`` must be odd and at least ``opt['scale']`` (training and test options)."""
    if opt["kernel_size"] < opt["scale"] or opt["kernel_size"] % 2 == 0:
        raise KULNetError(f"{src}: kernel_size = {opt['kernel_size']} must be odd and >= scale")


def check_device(opt, src):
    """``opt['device']`` must name auto, cpu, cuda or cuda:N (training and test options)."""
    dev = opt["device"]
    if dev not in ("auto", "cpu", "cuda") and not dev.startswith("cuda:"):
        raise KULNetError(f"{src}: device = {short(dev)}; use auto, cpu, cuda or cuda:N")


def _check_paths(opt, src):
    for phase in ("train", "val"):
        ds = opt["datasets"][phase]
        if ds is None:
            continue
        if not os.path.isdir(ds["dataroot_GT"]):
            raise KULNetError(f"{src}: datasets.{phase}.dataroot_GT: folder {ds['dataroot_GT']} "
                              f"does not exist; put the images there or set the key to your folder")
        try:
            detect_data_type(ds["dataroot_GT"], ds["data_type"])
        except KULNetError as err:
            raise KULNetError(f"{src}: datasets.{phase}.dataroot_GT: {err}") from None
    for key in ("pretrain_model_G", "pretrain_model_K", "resume_state"):
        p = opt["path"][key]
        if p is not None and not os.path.isfile(p):
            raise KULNetError(f"{src}: path.{key}: file {p} does not exist")


def read_yaml(path, src=None):
    """Read a YAML option file into a dict (an empty file gives ``{}``).

    Args:
        path (str): the file. src (str | None): how to name it in messages (default: ``path``).

    Raises:
        KULNetError: missing file, invalid YAML (with the line), or not a mapping at the top level.
    """
    src = src or path
    if not os.path.isfile(path):
        raise KULNetError(f"{src}: option file not found; check the path given to -opt")
    try:
        with open(path, encoding="utf-8") as handle:
            raw = load_yaml(handle, src)
    except UnicodeDecodeError as err:
        raise KULNetError(f"{src}: not a UTF-8 text file (byte 0x{err.object[err.start]:02x} at offset "
                          f"{err.start}); give a YAML option file saved as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KULNetError(f"{src}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise KULNetError(f"{src}: expected 'key: value' lines at the top level")
    return raw


def locate_option_file(path):
    """The option file ``path``: from the current folder, else from the repository root, so that the
    authors' launch (``cd codes && python test.py --opt options/test/test.yml``) finds it as ours does.

    Raises:
        KULNetError: neither exists (the line names both places tried).
    """
    if os.path.isfile(path) or os.path.isabs(path):
        return path
    from_root = os.path.join(REPO_ROOT, path)
    if os.path.isfile(from_root):
        return from_root
    tried = " and ".join(dict.fromkeys((os.path.abspath(path), os.path.normpath(from_root))))
    raise KULNetError(f"{path}: option file not found (tried {tried}); check the path given to --opt")


def source_name(path):
    """How an option file is named in messages: relative to the current folder when below it."""
    src = os.path.relpath(path) if os.path.exists(path) else path
    return os.path.abspath(path) if src.startswith("..") else src


def read_options(path, kind, schema, check_paths=True, overridden=()):
    """Read an option file of either layout: a file of the authors' layout is translated into ours.

    Args:
        path (str): the file (see :func:`locate_option_file`). kind (str): ``test``, ``real`` or ``train``.
        schema (dict): our schema of that kind of file. check_paths (bool): check the authors' paths, but
        for those under ``overridden`` (our keys that the command line sets).

    Returns:
        tuple: (the options in our layout (dict), the lines that report a translation: empty for ours).
    """
    src = source_name(path)
    raw = read_yaml(path, src)
    if not is_authors_layout(raw):
        return raw, []
    translation = translate(raw, kind, src, schema, check_paths, overridden)
    return translation.raw, translation.lines()


def load_raw(opt_path, overrides=(), check_paths=True):
    """A training option file in our layout (translated when it is the authors'), ``--set`` overrides applied.

    Returns:
        tuple: (options (dict, not validated), lines reporting a translation, the file's path).
    """
    opt_path = locate_option_file(opt_path)
    set_keys = [item.split("=", 1)[0].strip() for item in overrides or ()]
    raw, notes = read_options(opt_path, "train", TRAIN_SCHEMA, check_paths, set_keys)
    for item in overrides or ():
        raw = _apply_override(raw, item, source_name(opt_path))
    return raw, notes, opt_path


def parse(opt_path, overrides=(), check_paths=True):
    """Read a training option file (of our layout or the authors'), apply ``--set`` overrides (keys of
    our layout), validate and complete it.

    Args:
        opt_path (str): YAML file (from the current folder, else from the repository root).
        overrides (Iterable[str]): ``key.path=value`` strings, values parsed as YAML.
        check_paths (bool): check that dataset folders / files exist (False for unit tests).

    Returns:
        OptionDict: every schema key present (defaults filled in), paths absolute; ``opt_path`` (the
        file) and ``layout_notes`` (the lines reporting a translation from the authors' layout) added.

    Raises:
        KULNetError: one line naming the file, key and the fix.
    """
    raw, notes, opt_path = load_raw(opt_path, overrides, check_paths)
    src = source_name(opt_path)
    opt = validate(raw, TRAIN_SCHEMA, "", src, "train")
    _check_semantics(opt, src, check_paths)
    opt["opt_path"] = os.path.abspath(opt_path)
    opt["layout_notes"] = notes
    return opt


ADDED_KEYS = ("opt_path", "layout_notes")  # added by parse, not options


def to_plain(opt):
    """Nested plain dicts/lists (for YAML dumping and pickling)."""
    if isinstance(opt, dict):
        return {k: to_plain(v) for k, v in opt.items()}
    if isinstance(opt, (list, tuple)):
        return [to_plain(v) for v in opt]
    return opt


def dump(opt, path):
    """Write the completed options as YAML (the copy kept in the experiment folder)."""
    plain = {k: v for k, v in to_plain(opt).items() if k not in ADDED_KEYS}  # re-parseable
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(plain, f, sort_keys=False)
