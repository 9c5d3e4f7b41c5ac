"""Summaries and results files of the synthetic test protocol.

Summary (per method and metric): per-kernel mean over the images, then the nine-kernel average =
the mean over kernels of the per-kernel means (equal to the mean over all images only when every
kernel has the same images). ``inf`` (identical images) propagates into the means; NaN values (SSIM
of images smaller than its window) are left out of means.

Results files (``results.csv``, ``results.json``, ``results.md``) hold the reproducibility record:
git commit, checkpoint sha256, options, seed, device and library versions. The CSV starts with
``# key: value`` lines (read it with ``pandas.read_csv(path, comment='#')``); JSON writes non-finite
numbers as the strings ``"inf"`` / ``"nan"``.

Public API:
    COLUMNS, KEY_COLUMNS, format_number, summarize, kernel_table, paper_table, sha256_file,
    reproducibility_record, write_results
"""
import csv
import hashlib
import json
import math
import os
import platform
import sys
from datetime import datetime, timezone

import numpy as np
import torch

from evaluation.kernel_response import MOMENTS, mean_gain, mean_response
from utils.git_info import git_commit

KEY_COLUMNS = ["dataset", "image", "noise", "kernel", "sig1", "sig2", "theta_deg", "height", "width"]
KULNET_METRICS = ["psnr_y", "ssim_y", "lr_psnr_y", "lr_ssim_y", "kernel_psnr", "time_s"]
BASELINE_METRICS = {"bicubic": ["bicubic_psnr_y", "bicubic_ssim_y"],
                    "non_blind": ["nonblind_psnr_y", "nonblind_ssim_y"]}
# the constant guess's kernel PSNR, then the moments of the estimated and the true kernel
KERNEL_COLUMNS = ["const_kernel_psnr"] + [f"{who}_{m}" for who in ("kernel", "true") for m in MOMENTS]
COLUMNS = KEY_COLUMNS + KULNET_METRICS + KERNEL_COLUMNS + [m for ms in BASELINE_METRICS.values() for m in ms]
# the SR part given the true kernel is no upper bound: trained with the estimator's kernels, which sit
# on the authors' shifted grid, it can score below the blind result (pretrained/MANIFEST.md, notes)
METHOD_LABELS = {"kulnet": "KULNet", "bicubic": "Bicubic", "non_blind": "SR part given the true kernel"}


def format_number(value, digits=2):
    """``value`` with ``digits`` decimals; ``-`` for None/NaN, ``inf`` for infinity."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"



# ---------------------------------------------------------------------------------------- summary
def _mean(values):
    vals = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else float("nan")


def _grouped(items, key):
    """Group dicts by ``key(item)`` keeping first-appearance order."""
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def summarize(rows):
    """Per-kernel means and the nine-kernel average, per dataset and noise level, with the kernel
    response over the kernels (:mod:`evaluation.kernel_response`).

    Args:
        rows (list[dict]): rows of :meth:`Evaluator.run` (any metric columns present are averaged).

    Returns:
        list[dict]: one entry per (dataset, noise): ``dataset``, ``noise``, ``per_kernel`` (list of
        dicts: ``kernel``, ``sig1``, ``sig2``, ``theta_deg``, ``n_images`` and each metric's mean
        over the images, the kernels' moments among them) and ``average`` (each metric: the mean
        over kernels of the per-kernel mean; ``kernel_response``, ``kernel_gain``: the mean over images).
    """
    metrics = [c for c in COLUMNS if c not in KEY_COLUMNS and rows and c in rows[0]]
    summary = []
    for (dataset, noise), cell in _grouped(rows, lambda r: (r["dataset"], r["noise"])).items():
        per_kernel = []
        for kernel, krows in _grouped(cell, lambda r: r["kernel"]).items():
            entry = {k: krows[0][k] for k in ("kernel", "sig1", "sig2", "theta_deg")}
            entry["n_images"] = len(krows)
            entry.update({m: _mean([r[m] for r in krows]) for m in metrics})
            per_kernel.append(entry)
        average = {m: _mean([e[m] for e in per_kernel]) for m in metrics}
        if "kernel_var_y" in metrics:  # across the kernels: not a per-kernel mean
            average["kernel_response"] = mean_response(cell)
            average["kernel_gain"] = mean_gain(cell)
        summary.append({"dataset": dataset, "noise": noise, "n_kernels": len(per_kernel),
                        "per_kernel": per_kernel, "average": average})
    return summary


def kernel_table(entry):
    """Plain-text per-kernel table of one (dataset, noise) summary entry, with the average row."""
    cols = [("PSNR_Y", "psnr_y", 2), ("SSIM_Y", "ssim_y", 4), ("kPSNR", "kernel_psnr", 2),
            ("kPSNR 1", "const_kernel_psnr", 2), ("LR PSNR", "lr_psnr_y", 2), ("bicubic", "bicubic_psnr_y", 2),
            ("true k SR", "nonblind_psnr_y", 2), ("KULNet s", "time_s", 2)]
    cols = [c for c in cols if c[1] in entry["average"]]
    head = f"{'kernel':>6} {'sig1':>5} {'sig2':>5} {'theta':>6} {'n':>4}" + "".join(f" {c[0]:>9}" for c in cols)
    lines = [f"{entry['dataset']}, noise {entry['noise']:g}:", head]
    for e in entry["per_kernel"]:
        lines.append(f"{e['kernel']:>6} {format_number(e['sig1'], 1):>5} {format_number(e['sig2'], 1):>5} "
                     f"{format_number(e['theta_deg'], 0):>6} {e['n_images']:>4}"
                     + "".join(f" {format_number(e[c[1]], c[2]):>9}" for c in cols))
    avg = entry["average"]
    label = f"{entry['n_kernels']}-kernel average"
    lines.append(f"{label:>29}" + "".join(f" {format_number(avg[c[1]], c[2]):>9}" for c in cols))
    if "const_kernel_psnr" in avg:
        lines.append(f"kPSNR 1: a constant guess (the mean of the kernels). Over the kernels, kernel response "
                     f"{format_number(avg['kernel_response'], 3)} and gain {format_number(avg['kernel_gain'], 3)} "
                     f"(a constant guess: 0 and 0, the true kernels: 1 and 1)")
    return "\n".join(lines)


def paper_table(summary, scale):
    """Markdown table in the paper's shape: rows dataset x method, columns x<scale> per noise level.

    Cells are ``PSNR / SSIM`` (Y channel) of the nine-kernel average.
    """
    noises = list(dict.fromkeys(e["noise"] for e in summary))
    lookup = {(e["dataset"], e["noise"]): e["average"] for e in summary}
    datasets = list(dict.fromkeys(e["dataset"] for e in summary))
    prefixes = {"kulnet": "", "bicubic": "bicubic_", "non_blind": "nonblind_"}
    lines = ["| Dataset | Method | " + " | ".join(f"x{scale}, noise {n:g}" for n in noises) + " |",
             "| --- | --- |" + " --- |" * len(noises)]
    for ds in datasets:
        for method, prefix in prefixes.items():
            if f"{prefix}psnr_y" not in lookup[(ds, noises[0])]:
                continue
            cells = []
            for n in noises:
                avg = lookup.get((ds, n))
                cells.append("-" if avg is None else
                             f"{format_number(avg[prefix + 'psnr_y'])} / {format_number(avg[prefix + 'ssim_y'], 4)}")
            lines.append(f"| {ds} | {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kernel_estimation_table(summary):
    """Markdown table of the kernel estimate per dataset and noise: kernel PSNR beside a constant
    guess's, the kernel response and gain (0 for a constant guess, 1 for the true kernels)."""
    lines = ["| Dataset | noise | kernel PSNR | constant guess | kernel response | kernel gain |",
             "| --- | --- | --- | --- | --- | --- |"]
    for e in summary:
        avg = e["average"]
        if "kernel_response" in avg:
            cells = (format_number(avg["kernel_psnr"]), format_number(avg.get("const_kernel_psnr")),
                     format_number(avg["kernel_response"], 3), format_number(avg.get("kernel_gain"), 3))
            lines.append(f"| {e['dataset']} | {e['noise']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- records
def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def reproducibility_record(opt, device, checkpoint_meta=None):
    """What makes a results file reproducible.

    Returns:
        dict: commit, checkpoint path and sha256, checkpoint metadata, seed, device (and GPU name),
        versions of python/torch/numpy/opencv, platform, command line, UTC time.
    """
    import cv2

    meta = {k: v for k, v in (checkpoint_meta or {}).items() if k not in ("missing_keys", "unexpected_keys")}
    return {
        "commit": git_commit(mark_dirty=True) or "unknown",
        "checkpoint": opt["checkpoint"],
        "checkpoint_sha256": sha256_file(opt["checkpoint"]),
        "checkpoint_meta": meta,
        "seed": opt.get("seed"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
        "time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else ("nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf"))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_results(out_dir, rows, columns, summary, record, options, scale):
    """Write ``results.csv``, ``results.json`` and ``results.md`` into ``out_dir``.

    Args:
        out_dir (str): folder (created).
        rows (list[dict]): per-image rows; columns (list[str]): their order.
        summary (list[dict]): from :func:`summarize`.
        record (dict): from :func:`reproducibility_record`.
        options (dict): the completed options.
        scale (int): for the Markdown table header.

    Returns:
        dict: paths of the three files.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {ext: os.path.join(out_dir, f"results.{ext}") for ext in ("csv", "json", "md")}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as handle:
        for key, value in record.items():
            handle.write(f"# {key}: {json.dumps(_jsonable(value))}\n")
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    doc = {"record": record, "options": options, "columns": columns, "rows": rows, "summary": summary}
    with open(paths["json"], "w", encoding="utf-8") as handle:
        json.dump(_jsonable(doc), handle, indent=1)
    table = paper_table(summary, scale)
    per_kernel = "\n\n".join(kernel_table(e) for e in summary)
    lines = ["# Results", "", table, "", "Nine-kernel average = mean over kernels of the per-kernel mean "
             "over images; PSNR / SSIM on Y, border cropped.", "", "## Kernel estimation", "",
             kernel_estimation_table(summary), "", "## Per kernel", "",
             "```", per_kernel, "```", "", "## Reproducibility", ""]
    lines += [f"- {k}: `{json.dumps(_jsonable(v))}`" for k, v in record.items()]
    with open(paths["md"], "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return paths
