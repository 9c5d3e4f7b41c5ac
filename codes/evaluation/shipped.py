"""The models shipped in ``pretrained/`` as their manifest describes them, and its tables (``pretrained/manifest.json``,
written by ``codes/scripts/ship_model.py``).

Public API:
    MANIFEST, LOW_RESPONSE, LOW_GAIN, load_manifest, shipped_entry, low_response_note, render_results_table,
    render_readme_table, render_manifest_md
"""
import json
import os

from evaluation.results import format_number, sha256_file
from options.options import REPO_ROOT
from utils.errors import KULNetError

MANIFEST = os.path.join(REPO_ROOT, "pretrained", "manifest.json")
LOW_RESPONSE = 0.5  # a kernel response under this: the estimate does not move with the blur
LOW_GAIN = 0.5  # a kernel gain under this: it moves less than half as far as the blur does


def load_manifest(path=MANIFEST):
    """dict ``{'files': {name: entry}}``; empty when the file does not exist yet."""
    if not os.path.exists(path):
        return {"files": {}}
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as err:
        raise KULNetError(f"{path}: cannot read the manifest ({err}); restore it from git")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise KULNetError(f"{path}: not a manifest (no 'files' object); restore it from git")
    return manifest


def shipped_entry(checkpoint, manifest=MANIFEST):
    """(name, entry) of the shipped file whose sha256 is ``checkpoint``'s, else None."""
    if not os.path.isfile(checkpoint) or not os.path.exists(manifest):
        return None
    digest = sha256_file(checkpoint)
    return next(((name, entry) for name, entry in load_manifest(manifest)["files"].items()
                 if entry.get("sha256") == digest), None)


def low_response_note(checkpoint, manifest=MANIFEST):
    """One line when ``checkpoint`` is a shipped file whose kernel response or gain (Set5, noise 0) is known
    and under :data:`LOW_RESPONSE` or :data:`LOW_GAIN`, else None."""
    found = shipped_entry(checkpoint, manifest)
    if found is None:
        return None
    name, entry = found
    row = next((r for r in entry.get("results", []) if r["dataset"] == "Set5" and r["noise"] == 0), None)
    figures = (row or {}).get("kulnet", {})
    response, gain = figures.get("kernel_response"), figures.get("kernel_gain")
    if response is None or (response >= LOW_RESPONSE and (gain is None or gain >= LOW_GAIN)):
        return None
    gain_text = "" if gain is None else f", gain {gain:.2f}"
    return (f"note: the kernel estimator of {name} does not follow the blur (kernel response {response:.2f}"
            f"{gain_text} on Set5, 1 = follows it; pretrained/MANIFEST.md): its kernel and uncertainty images "
            f"say little about this photo")


# ------------------------------------------------------------------------------------------ rendering
PAPER_TRAINING = "480k iterations on DF2K (3,450 images), batch 16"
METHODS = (("kulnet", "KULNet"), ("bicubic", "bicubic"), ("non_blind", "SR part given the true kernel"))


def _cell(m, digits=2):
    """``PSNR / SSIM`` of a method's figures, ``-`` when absent."""
    return "-" if m is None else f"{format_number(m['psnr_y'], digits)} / {format_number(m['ssim_y'], 4)}"


def _table(header, rows):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
                     + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def _by_scale(manifest):
    return sorted(manifest["files"].items(), key=lambda kv: kv[1]["scale"])


def _minutes(seconds):
    return f"{seconds / 60:.1f} min"


def render_results_table(manifest):
    """Markdown: one row per shipped file x dataset x noise (nine-kernel averages)."""
    rows = []
    for name, entry in _by_scale(manifest):
        for r in entry["results"]:
            k = r["kulnet"]
            rows.append([f"`{name}`", r["dataset"], f"{r['noise']:g}", *(_cell(r.get(m)) for m, _ in METHODS),
                         format_number(k.get("kernel_psnr")), format_number(k.get("const_kernel_psnr")),
                         format_number(k.get("kernel_response"), 2), format_number(k.get("kernel_gain"), 2)])
    return _table(["model", "dataset", "noise", *(label + " PSNR_Y / SSIM_Y" for _, label in METHODS),
                   "kernel PSNR", "constant guess", "kernel response", "kernel gain"], rows)


def _response_cell(figures):
    """``response / gain`` of one results row, ``-`` where unknown."""
    if figures.get("kernel_response") is None:
        return "-"
    return f"{format_number(figures['kernel_response'], 2)} / {format_number(figures.get('kernel_gain'), 2)}"


def render_readme_table(manifest):
    """Markdown for the README: one row per shipped file, Set5 and Set14 at noise 0, how it was trained."""
    rows = []
    for name, entry in _by_scale(manifest):
        res = {(r["dataset"], r["noise"]): r for r in entry["results"]}
        hardware = sorted({r["hardware"] for r in entry["runs"]})
        rows.append([f"`{name}`", f"x{entry['scale']}",
                     *(_cell(res.get((ds, 0.0), {}).get("kulnet")) for ds in ("Set5", "Set14")),
                     _response_cell(res.get(("Set5", 0.0), {}).get("kulnet", {})),
                     f"{entry['iterations']:,} iterations on {entry['data']}, {_minutes(entry['train_seconds'])} "
                     f"on {' and '.join(hardware)}"])
    return _table(["file", "scale", "Set5 PSNR_Y / SSIM_Y", "Set14 PSNR_Y / SSIM_Y", "kernel response / gain",
                   "trained"], rows)


def render_manifest_md(manifest):
    """``pretrained/MANIFEST.md`` from the manifest: files, results, re-measurements, training runs."""
    files = [[f"`{name}`", e["scale"], f"{e['iterations']:,}", _minutes(e["train_seconds"]),
              f"{e['float16_check']['psnr_y_float32']:.3f} → {e['float16_check']['psnr_y_float16']:.3f} dB",
              f"`{e['sha256']}`"] for name, e in _by_scale(manifest)]
    lines = ["# Pretrained KULNet models", "",
             "Trained and shipped by this project: `codes/train.py`, then `codes/scripts/ship_model.py`, which "
             "writes this file from `manifest.json`. Weights are stored in float16 (loading casts them back to "
             "float32); the float16 check is Set5's PSNR_Y before and after. Results are the paper protocol "
             "of `codes/test.py` (nine kernels; PSNR_Y / SSIM_Y with the scale cropped; nine-kernel averages). "
             f"**These models are trained far less than the paper's** ({PAPER_TRAINING}).", "",
             "## Files", "", _table(["file", "scale", "iterations", "training time", "float16 check (Set5)",
                                     "sha256"], files), "",
             "## Results", "", render_results_table(manifest), "",
             "Kernel PSNR beside a constant guess (always the mean of the nine kernels); the kernel response "
             "(whether the estimate's second moments move the way the true kernels' do: a correlation, 0 for a "
             "constant estimate, 1 for the true kernels) and the kernel gain (how far they move: 0 for a "
             f"constant, 1 for the true kernels). With a response under {LOW_RESPONSE} or a gain under {LOW_GAIN}, "
             "the estimator of that file "
             "does not follow the blur and `codes/test_real.py` says so.", ""]
    history = [[f"`{name}`", h["date"], h["what"], r["dataset"], f"{r['noise']:g}",
                f"{_cell(r['before'])} → {_cell(r['after'])}",
                f"{format_number(r['before'].get('kernel_psnr'))} → {format_number(r['after'].get('kernel_psnr'))}"]
               for name, e in _by_scale(manifest) for h in e.get("history", []) for r in h["results"]]
    if history:
        lines += ["## Re-measured", "", _table(["file", "date", "what changed", "dataset", "noise",
                                                "PSNR_Y / SSIM_Y before → after", "kernel PSNR before → after"],
                                               history), ""]
    lines += ["## How each file was trained", ""]
    for name, e in _by_scale(manifest):
        runs = [[i, r["date"], f"{r['iterations']:,}", _minutes(r["seconds"]), r["hardware"], r["train_options"],
                 r.get("result", "")] for i, r in enumerate(e["runs"], 1)]
        lines += [f"### `{name}`", "", f"Data: {e['data']}.", "",
                  _table(["run", "date", "iterations", "time", "hardware", "options", "the file after it"], runs), ""]
        lines += [f"{note}\n" for note in e.get("notes", [])]
    if manifest.get("notes"):
        lines += ["## Notes", ""] + [f"{note}\n" for note in manifest["notes"]]
    return "\n".join(lines)
