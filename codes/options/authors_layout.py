"""Option files in the authors' layout (KULNet's code, built on MANet): recognised by their shape and
translated, key by key, through :data:`options.authors_table.TABLE` into our layout.

A file is the authors' when it says ``model: blind``, ``distortion: ...``, ``gpu_ids: ...`` or
``network_G: {which_model_G: BlindNet}``. Its relative paths are taken from ``codes/``, as their
scripts (run from ``codes/``) take them, and come out relative to the repository root, as ours are.
A key of our layout at the same place is kept as it is (``device: cpu`` in their test.yml, say). The
run reports the translation in one note and every ignored key in a note of its own, each wrapped to
100 characters (:meth:`Translation.lines`); :func:`our_layout_yaml` writes the equivalent file in our layout.

Public API: is_authors_layout, translate, Translation, our_layout_yaml, add_layout_flags
"""
import argparse
import os
import textwrap
from dataclasses import dataclass, field

import yaml

from options.authors_table import FILES, Drop, Set, close_key, entries, key_table, pattern
from options.schema import options_reference
from utils.errors import KULNetError

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(CODES_DIR)
REPORT_WIDTH = 100  # characters a line of the translation's report takes at most


def is_authors_layout(raw):
    """Whether a parsed option file has the shape of the authors' files."""
    net = raw.get("network_G") if isinstance(raw.get("network_G"), dict) else {}
    return (raw.get("model") == "blind" or net.get("which_model_G") == "BlindNet"
            or "distortion" in raw or "gpu_ids" in raw)


@dataclass
class Translation:
    """The options in our layout and what became of every key of the authors' file."""

    raw: dict
    src: str
    kind: str
    translated: list = field(default_factory=list)  # (key, what became of it)
    ignored: list = field(default_factory=list)  # (key, value, reason)
    empty: list = field(default_factory=list)  # keys given as ~ (the default here applies)

    def lines(self, width=REPORT_WIDTH):
        """A note for the translation, then one per ignored key, each wrapped to ``width`` characters
        (continuation lines start with two spaces)."""
        first = (f"{self.src}: the authors' layout (their {FILES[self.kind]}); translated "
                 f"{', '.join(text for _, text in self.translated) or 'nothing'}")
        if self.empty:
            first += f"; ~ (the default here): {', '.join(self.empty)}"
        first += f"; relative paths taken from codes/ ({CODES_DIR}), as their scripts take them"
        notes = [first] + [f"{self.src}: ignored {key} = {value!r}: {reason}" for key, value, reason in self.ignored]
        return [line for note in notes for line in textwrap.wrap(note, width, subsequent_indent="  ",
                                                                 break_long_words=False, break_on_hyphens=False)]


def _leaves(raw, prefix=""):
    """(dotted key, value) of every value that is not a section."""
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        else:
            yield path, value


def _in_schema(path, schema):
    """Whether ``path`` names a key of our ``schema`` (a nested dict of keys and sections)."""
    node = schema
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return not isinstance(node, dict)


class _Context:
    """What a rule sees: the file's other keys, its kind, and path and error helpers."""

    def __init__(self, flat, kind, src, check_paths, overridden):
        self.flat, self.kind, self.src, self.check_paths = flat, kind, src, check_paths
        self.overridden = tuple(overridden)
        self.world_size = max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
        self.debug = kind == "train" and "debug" in str(flat.get("name", ""))
        self.key, self.phase, self.entry = "", None, None

    def get(self, key, default=None):
        """The value of another key of the file (``datasets.*.X``: of the dataset being translated)."""
        if key.startswith("datasets.*.") and self.phase is not None:
            key = f"datasets.{self.phase}.{key[len('datasets.*.'):]}"
        return self.flat.get(key, default)

    def bad(self, value, why):
        raise KULNetError(f"{self.src}: {self.key} = {value!r}: {why}")

    def path(self, value, what):
        """A path of the file taken from codes/; relative to the repository root when inside it."""
        if not isinstance(value, str) or not value:
            self.bad(value, "give a path")
        full = os.path.normpath(os.path.join(CODES_DIR, os.path.expanduser(value)))
        exists = {"dir": os.path.isdir, "file": os.path.isfile, "any": os.path.exists}[what]
        here = self.entry.here.replace("datasets[].", "datasets.").replace("*", str(self.phase))
        replaced = any(here == key or here.startswith(key + ".") for key in self.overridden)
        if self.check_paths and not replaced and not exists(full):
            thing = {"dir": "folder", "file": "file", "any": "file or folder"}[what]
            raise KULNetError(f"{self.src}: {self.key} = {value!r}: {thing} {full} does not exist (a relative path "
                              f"in a file of the authors' layout is taken from codes/, as their scripts take "
                              f"it); put the {thing} there or change the key")
        inside = os.path.relpath(full, REPO_ROOT)
        return full if inside.startswith("..") else inside


def _assign(raw, key, value, phase):
    """Set our ``key`` (dotted; ``datasets[]``: the test list's entry of ``phase``) in ``raw``."""
    if key.startswith("datasets[]."):
        entries_ = raw.setdefault("datasets", [])
        entry = next((d for d in entries_ if d.get("_phase") == phase), None)
        if entry is None:
            entry = {"_phase": phase}
            entries_.append(entry)
        entry[key[len("datasets[]."):]] = value
        return
    parts = key.replace("datasets.*", f"datasets.{phase}").split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _unknown(path, kind, src):
    table = entries(kind)
    guess = close_key(pattern(path), list(table))
    hint = (f"did you mean '{guess}'?" if guess else
            f"their {FILES[kind]} keys are: {', '.join(sorted(table))}")
    raise KULNetError(f"{src}: unknown key '{path}' in a file of the authors' layout (neither theirs nor ours at "
                      f"that place); {hint}")


def _short(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + " ...]"


def _describe(path, value, entry, result):
    """The text of one translated key for the run's line."""
    values = result.values if isinstance(result, Set) else {entry.here: result}
    text = path
    for here, new in values.items():
        here = here.replace("datasets.*", path.rsplit(".", 1)[0])
        if here != path:
            text += f" -> {here}"
        if new != value and not (isinstance(result, Set) and result.note == "from codes/"):
            text += f": {_short(new)}"
    note = result.note if isinstance(result, Set) else ""
    return f"{text} ({note})" if note else text


def translate(raw, kind, src, schema, check_paths=True, overridden=()):
    """Translate an option file of the authors' layout into ours.

    Args:
        raw (dict): the file's contents. kind (str): ``test``, ``real`` or ``train``.
        src (str): the file's name in messages. schema (dict): our schema of that file (keys of ours
            kept as they are). check_paths (bool): check that the files and folders named exist, but for
            those under ``overridden``, our keys that the command line sets (``checkpoint``, ``datasets``).

    Returns:
        Translation: ``raw`` in our layout and the report.

    Raises:
        KULNetError: an unknown key, or a value we cannot honour, in one line naming it.
    """
    table = entries(kind)
    flat = dict(_leaves(raw))
    ctx = _Context(flat, kind, src, check_paths, overridden)
    out = Translation({}, src, kind)
    for path, value in flat.items():
        key = pattern(path)
        ctx.key, ctx.phase = path, path.split(".")[1] if key != path else None
        if kind == "train" and ctx.phase not in (None, "train", "val"):
            ctx.bad(value, "their training datasets are 'train' and 'val'")
        entry = table.get(key)
        if entry is None:
            if not _in_schema(path, schema):
                _unknown(path, kind, src)
            _assign(out.raw, path, value, None)
            out.translated.append((path, f"{path} (ours)"))
            continue
        if value is None:
            out.empty.append(path)
            continue
        ctx.entry = entry
        try:
            result = entry.rule(value, ctx) if entry.rule else value
        except (TypeError, ValueError):
            ctx.bad(value, "not a value of the expected type (see --help-options)")
        if isinstance(result, Drop):
            out.ignored.append((path, value, result.reason))
            continue
        for here, new in (result.values if isinstance(result, Set) else {entry.here: result}).items():
            _assign(out.raw, here, new, ctx.phase)
        out.translated.append((path, _describe(path, value, entry, result)))
    for dataset in out.raw.get("datasets", []) if kind == "test" else ():
        dataset.setdefault("name", dataset.pop("_phase"))  # a dataset without a name takes its phase's
        dataset.pop("_phase", None)
    return out


def _ordered(raw, schema):
    """``raw`` with its keys in the order of our ``schema`` (unknown keys last)."""
    keys = [k for k in schema if k in raw] + [k for k in raw if k not in schema]
    return {k: _ordered(raw[k], schema.get(k, {})) if isinstance(raw[k], dict) and isinstance(schema.get(k), dict)
            else raw[k] for k in keys}


def our_layout_yaml(raw, schema, notes, src):
    """The text of an option file in our layout with the options ``raw`` (``--print_options``)."""
    header = [f"# {src} in our layout; relative paths are taken from the repository root"]
    header += [f"# {line}" for line in notes]
    body = yaml.safe_dump(_ordered(raw, schema), sort_keys=False, default_flow_style=None)
    return "\n".join(header) + "\n" + body


class _KeyTable(argparse.Action):
    def __init__(self, option_strings, dest, schema=None, **kwargs):
        self.schema = schema
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=kwargs.get("help"))

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"# The keys of {parser.prog}'s option files\n\n{options_reference(self.schema)}\n\n"
              f"# The authors' keys and their places here\n\n{key_table()}")
        parser.exit()


def add_layout_flags(parser, schema):
    """The flags about option files that the three scripts share: ``--print_options``, ``--help-options``
    (the keys of ``schema``, then the authors' keys and their places here)."""
    parser.add_argument("--print_options", action="store_true",
                        help="write the option file in our layout (translated when it is in the authors' "
                             "layout) to stdout, and stop")
    parser.add_argument("--help-options", action=_KeyTable, schema=schema,
                        help="every option key with its default and help, then the authors' keys and where each "
                             "lives here (Markdown tables), and stop")
