"""Render the tables of ``codes/benchmarks/README.md`` from benchmark JSON, so that no figure there is
typed by hand.

    python codes/benchmarks/render_tables.py [GPU_CHECK_DIR] [--readme codes/benchmarks/README.md]

Four tables, each between its markers in the README (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``):

- ``blur-rule``: the rules of ``blur_impl: auto`` (``models.modules.operators.BLUR_RULES``) with the
  figures behind each, from ``codes/benchmarks/results/*.json`` (each file says which rule it supports);
- ``authors-vs-ours``: the authors' code against ours on one GPU (``results/authors_vs_ours_*.json``);
- ``gpu-check``: the runs of ``gpu_check.sh`` in GPU_CHECK_DIR (omitted: the table is left as it is);
- ``history``: earlier measurements recorded in ``results/history.json``.

The repository README's speed table (:func:`readme_speed_table`) and quick-start table
(:func:`readme_quick_start`) are rendered by ``codes/scripts/render_readme.py``.
"""
import argparse
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models.fast.operators import BLUR_RULES  # noqa: E402
from utils.atomic_save import atomic_write_text  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
# gpu_check.sh's runs, in table order: file stem -> what differs from the defaults
GPU_RUNS = {
    "x4_defaults": "defaults (fp16, compile auto, blur auto)",
    "x4_eager": "compile eager",
    "x4_blur_direct": "compile eager, blur direct",
    "x4_channels_last_off": "compile eager, channels-last off",
    "x4_memory_options_off": "compile eager, memory options off",
    "x4_bf16": "compile eager, bf16",
    "x4_plain": "compile eager, the literal path",
    "x2_eager": "x2, compile eager",
    "x3_eager": "x3, compile eager",
}


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise KULNetError(f"{path}: cannot read it as JSON ({err})") from None


def table(header, rows):
    """A markdown table: ``header`` (list of str), ``rows`` (lists of cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _ms(value):
    return "" if value is None else f"{value:.1f}"


def _blur_figures(report):
    """One line of a benchmark report's blur part: direct / FFT ms per HR side, training and inference."""
    cells = [f"HR {d['hr_size']} (B{d['batch']}): training {d['train_direct_ms']:.2f} / {d['train_fft_ms']:.2f}, "
             f"inference {d['infer_direct_ms']:.2f} / {d['infer_fft_ms']:.2f}" for d in report["results"]["blur"]]
    return f"{report['device_name']}, direct / FFT ms: " + "; ".join(cells)


def blur_rule_table(results_dir=RESULTS):
    """The rules of 'auto' with their evidence: the blur part of every benchmark report in
    ``results_dir`` (for the rules of its device type) and the figures a record names for a rule."""
    evidence = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        record = read_json(path)
        for rule_index, text in record.get("blur_rule_evidence", {}).items():
            evidence.setdefault(int(rule_index), []).append(f"{text} ({os.path.basename(path)})")
        if "blur" in record.get("results", {}):
            device_type = record["device"].split(":")[0]
            for i, rule in enumerate(BLUR_RULES):
                if rule.device_type == device_type:
                    evidence.setdefault(i, []).append(f"{_blur_figures(record)} ({os.path.basename(path)})")
    rows = []
    for i, rule in enumerate(BLUR_RULES):
        when = {None: "training and inference", True: "training", False: "inference"}[rule.training]
        side = int(rule.min_pixels ** 0.5)
        rows.append([rule.device_type, when, f"{side}x{side}", rule.impl, "; ".join(evidence.get(i, ["-"]))])
    rows.append(["anything else", "", "", "direct", "not measured yet, or direct won"])
    return table(["device", "when", "HR maps from", "blur", "measured"], rows)


def authors_table(results_dir=RESULTS):
    """The authors' code against ours, one row per figure, from ``authors_vs_ours_*.json``."""
    blocks = []
    for path in sorted(glob.glob(os.path.join(results_dir, "authors_vs_ours_*.json"))):
        record = read_json(path)
        rows = [[r["figure"], _ms(r.get("authors_ms")), _ms(r["ours_ms"]), r.get("ours_settings", "")]
                for r in record["rows"]]
        blocks.append(f"{record['conditions']} ({os.path.basename(path)}):\n\n"
                      + table(["figure", "authors' code, ms", "ours, ms", "our settings"], rows))
    return "\n\n".join(blocks) or "(no measurement recorded)"


def history_table(path=os.path.join(RESULTS, "history.json")):
    """The earlier measurements, as recorded in ``history.json``: a table and its notes."""
    if not os.path.exists(path):
        return "(no earlier measurement recorded)"
    record = read_json(path)
    return "\n\n".join([f"{record['conditions']}:", table(record["columns"], record["rows"])]
                       + [f"- {note}" for note in record.get("notes", [])])


def readme_speed_table(results_dir=RESULTS):
    """The top-level README's one speed table: each figure the authors' code was measured on, theirs
    against ours (the fastest of our settings recorded for it)."""
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "authors_vs_ours_*.json"))):
        record = read_json(path)
        for figure in dict.fromkeys(r["figure"] for r in record["rows"]):
            same = [r for r in record["rows"] if r["figure"] == figure]
            authors = next((r["authors_ms"] for r in same if r.get("authors_ms")), None)
            best = min(same, key=lambda r: r["ours_ms"])
            if authors:
                rows.append([figure, _ms(authors), _ms(best["ours_ms"]), f"{authors / best['ours_ms']:.1f}x",
                             best["ours_settings"]])
    return table(["on one H200", "authors' code, ms", "ours, ms", "speed-up", "our settings"], rows)


def readme_quick_start(path=os.path.join(RESULTS, "quick_start_cpu.json")):
    """The table ``python codes/test.py`` prints with no arguments, and the time it took on what, from
    the record of ``codes/benchmarks/quick_start.py``."""
    record = read_json(path)
    if record["device"].startswith("cuda"):
        machine = record["device_name"]
    else:
        machine = f"a {record['usable_cores']}-core CPU ({record['device_name']})"
    note = f", {record['note']}" if record.get("note") else ""
    return (f"{record['table']}\n\nIt printed this in {record['wall_s']:.0f} s ({record['cpu_s']:.0f} s of CPU time) "
            f"on {machine}{note} (load average {record['load_average_before'][0]:.1f} as it started), "
            f"torch {record['torch']} (`codes/benchmarks/quick_start.py`).")


def gpu_check_tables(folder):
    """The training-step, inference, degradation and profile tables of one gpu_check.sh run."""
    env = read_json(os.path.join(folder, "env.json")) if os.path.exists(os.path.join(folder, "env.json")) else {}
    runs = {stem: read_json(os.path.join(folder, f"{stem}.json")) for stem in GPU_RUNS
            if os.path.exists(os.path.join(folder, f"{stem}.json"))}
    if not runs:
        raise KULNetError(f"{folder}: no gpu_check.sh results (x4_defaults.json, ...) found there")
    head = (f"{env.get('device_name', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '-')} "
            f"(`{os.path.relpath(folder)}`)")
    base = runs.get("x4_defaults", {}).get("results", {}).get("train", {}).get("ms")
    train_rows = []
    for stem, what in GPU_RUNS.items():
        t = runs.get(stem, {}).get("results", {}).get("train")
        if t is None:
            train_rows.append([what, "not run", "", "", ""])
            continue
        rel = f"{t['ms'] / base:.2f}x" if base and stem.startswith("x4") else ""
        train_rows.append([what, _ms(t["ms"]), f"{t['it_per_s']:.1f}", f"{t['peak_mem_mib']:.0f}", rel])
    parts = [head, "Training step (batch 16, GT 48·scale):",
             table(["run", "ms", "it/s", "peak MiB", "vs defaults"], train_rows)]
    infer = [[f"{d['lr_size']}x{d['lr_size']}", d["precision"], _ms(d["ms"]), f"{d['peak_mem_mib']:.0f}", stem]
             for stem in ("x4_defaults", "x4_plain") for d in runs.get(stem, {}).get("results", {}).get("infer", [])]
    if infer:
        parts += ["x4 inference (batch 1):", table(["LR", "precision", "ms", "peak MiB", "run"], infer)]
    degrade = runs.get("x4_defaults", {}).get("results", {}).get("degrade")
    if degrade:
        parts.append(f"Degradation of one training batch (B{degrade['batch']}, GT {degrade['gt_size']}): "
                     f"{degrade['ms']:.2f} ms.")
    profile_path = os.path.join(folder, "x4_profile.json")
    if os.path.exists(profile_path):
        prof = read_json(profile_path)
        rows = [[r["name"], f"{r['self_ms']:.2f}", f"{100 * r['share']:.1f}%", f"{r['calls']:g}"] for r in prof["top"]]
        busy = f", device busy {prof['device_busy_ms']:.1f} ms" if "device_busy_ms" in prof else ""
        parts += [f"Profile of the x4 step at the defaults ({prof['time']} time per step{busy}):",
                  table(["operator", "self ms", "share", "calls"], rows)]
    return "\n\n".join(parts)


def replace_between(text, name, body, path):
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise KULNetError(f"{path}: markers {start} ... {end} not found; add them where the table goes")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gpu_check", nargs="?", help="an output folder of gpu_check.sh")
    ap.add_argument("--readme", default=os.path.join(HERE, "README.md"))
    args = ap.parse_args(argv)
    with open(args.readme, encoding="utf-8") as handle:
        text = handle.read()
    text = replace_between(text, "blur-rule", blur_rule_table(), args.readme)
    text = replace_between(text, "authors-vs-ours", authors_table(), args.readme)
    text = replace_between(text, "history", history_table(), args.readme)
    if args.gpu_check:
        text = replace_between(text, "gpu-check", gpu_check_tables(args.gpu_check), args.readme)
    atomic_write_text(args.readme, text)
    print(f"wrote {args.readme}")
    return 0


if __name__ == "__main__":
    run_cli(main)
