"""Render the generated tables of the repository's README from their records, so that none is typed
by hand: the quick start's table and time (``codes/benchmarks/results/quick_start_cpu.json``), the
shipped models (``pretrained/manifest.json``), the speed of the authors' code against
ours (``codes/benchmarks/results``) and the authors' option keys that live under another name here
(the translation table of ``options/authors_table.py``).

    python codes/scripts/render_readme.py [--check]

``--check`` changes nothing and fails when the README is not what the records give.
"""
import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: put codes/ on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.render_tables import readme_quick_start, readme_speed_table, replace_between  # noqa: E402
from evaluation.shipped import MANIFEST, load_manifest, render_readme_table  # noqa: E402
from options.authors_table import moved_keys_table  # noqa: E402
from options.options import REPO_ROOT  # noqa: E402
from utils.atomic_save import atomic_write_text  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402

README = os.path.join(REPO_ROOT, "README.md")


def rendered(text, path=README):
    """``text`` with every generated table replaced by what its record gives."""
    for name, body in (("quick-start", readme_quick_start()),
                       ("shipped-results", render_readme_table(load_manifest(MANIFEST))),
                       ("speed", readme_speed_table()), ("authors", moved_keys_table())):
        text = replace_between(text, name, body, path)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", default=README)
    ap.add_argument("--check", action="store_true", help="fail when the README differs from its records")
    args = ap.parse_args(argv)
    with open(args.readme, encoding="utf-8") as handle:
        text = handle.read()
    new = rendered(text, args.readme)
    if args.check:
        if new != text:
            raise KULNetError(f"{args.readme}: its generated tables differ from their records; run "
                              f"python codes/scripts/render_readme.py")
        return 0
    atomic_write_text(args.readme, new)
    print(f"wrote {args.readme}")
    return 0


if __name__ == "__main__":
    run_cli(main)
