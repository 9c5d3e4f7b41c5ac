"""Ship a trained checkpoint: float16 weights in pretrained/, measured, recorded in the manifest.

    python codes/scripts/ship_model.py TRAINED.pth --set5 datasets/Set5/HR --set14 datasets/Set14/HR \\
        --train_seconds 420 --hardware "NVIDIA H100 80GB HBM3" [--continues] [--device cuda]

1. reads TRAINED (our format: its metadata gives the scale, the widths and the iterations);
2. writes a float16 copy (``save_network(dtype=torch.float16)``, about 5.8 MB) beside ``--out``, whose
   metadata keeps the network and the training's extent (``SHIPPED_META``), not the run's name;
3. runs ``codes/test.py`` (the paper protocol: nine kernels, noise 0) on Set5 with TRAINED and with
   the copy, and refuses to ship when their PSNR_Y differ by ``--max_delta_db`` (0.01 dB) or more;
4. measures the copy on Set5 and Set14 (noise 0; x4 also noise 10) with the bicubic and true-kernel
   (non-blind) baselines;
5. moves the copy to ``--out`` (default ``pretrained/KULNet_x<scale>.pth``), records it in
   ``pretrained/manifest.json`` and rewrites ``pretrained/MANIFEST.md`` and the README's table of
   shipped results (between its ``shipped-results`` markers) from the manifest.

``--continues --start FILE``: the training started from FILE, the file shipped at ``--out`` or the
float32 weights it was made from (checked by sha256); the entry keeps its earlier runs and the
totals add up. ``--via CHECKPOINT SECONDS HARDWARE OPTIONS`` (repeatable, in training order): the
float32 weights an earlier training run wrote, which the next run (the last one: TRAINED) continued
from; each becomes a run of its own, so one shipping records several runs (the first of them started
from ``--start``). ``--check [--start FILE]`` (no TRAINED): check all of this before training and print
``continue`` or ``fresh``, so that a mistake costs no training time.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

import torch

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if CODES_DIR not in sys.path:
    sys.path.insert(0, CODES_DIR)

from evaluation.results import sha256_file  # noqa: E402
from evaluation.shipped import load_manifest, render_manifest_md, render_readme_table  # noqa: E402
from models.networks import define_G, load_network, read_checkpoint, save_network  # noqa: E402
from options.options import REPO_ROOT, dump, read_yaml  # noqa: E402
from utils.atomic_save import atomic_write_text  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402

README_START, README_END = "<!-- shipped-results:start -->", "<!-- shipped-results:end -->"
METHODS = (("kulnet", ""), ("bicubic", "bicubic_"), ("non_blind", "nonblind_"))  # manifest key, test.py prefix
# what a shipped file's metadata keeps of the trained checkpoint's: the network and its training's extent,
# nothing of the run or the machine it was made on (train.py records the run's name; the manifest
# records the hardware)
SHIPPED_META = ("scale", "kernel_size", "model", "code_version", "iteration", "epoch", "network_G", "runs",
                "stored_dtype")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trained", nargs="?", help="checkpoint written by train.py (experiments/<name>/models/*_G.pth)")
    p.add_argument("--set5", required=True, help="Set5 HR folder")
    p.add_argument("--set14", help="Set14 HR folder (results table; optional)")
    p.add_argument("--out", help="shipped file (default pretrained/KULNet_x<scale>.pth)")
    p.add_argument("--manifest", default=os.path.join(REPO_ROOT, "pretrained", "manifest.json"))
    p.add_argument("--readme", default=os.path.join(REPO_ROOT, "README.md"),
                   help="README whose shipped-results section is rewritten ('' to skip)")
    p.add_argument("--device", default="auto", help="for the measurements: auto, cpu, cuda, cuda:N")
    p.add_argument("--train_seconds", type=float, default=None,
                   help="wall-clock seconds of the training run (train.py's log says them)")
    p.add_argument("--hardware", default="unknown", help="the GPU (or CPU) it trained on")
    p.add_argument("--data", default="257 photographs (DF2K not available)",
                   help="what it trained on")
    p.add_argument("--train_options", default="options/train/train_short.yml",
                   help="the options it trained with (the file and its overrides)")
    p.add_argument("--continues", action="store_true",
                   help="the training started from --start, the shipped file or its float32 original: "
                   "add to its history")
    p.add_argument("--start", help="the weights the training started from (checked against the manifest)")
    p.add_argument("--via", nargs=4, action="append", default=[],
                   metavar=("CHECKPOINT", "SECONDS", "HARDWARE", "OPTIONS"),
                   help="an earlier run's float32 weights that TRAINED's run continued from (repeat in "
                   "training order): recorded as a run of its own")
    p.add_argument("--check", action="store_true",
                   help="only check the inputs, the manifest, the README and --start; print continue/fresh")
    p.add_argument("--max_delta_db", type=float, default=0.01,
                   help="largest |PSNR_Y(float16) - PSNR_Y(float32)| on Set5 allowed")
    p.add_argument("--noise", type=float, nargs="+", help="noise levels of the table (default 0; x4: 0 10)")
    return p.parse_args(argv)


def run_protocol(checkpoint, scale, datasets, noise, baselines, device, work):
    """``codes/test.py`` on ``checkpoint``; returns {(dataset, noise): nine-kernel average dict}.

    Args:
        datasets (dict): name -> HR folder. noise (list[float]). baselines (bool): bicubic and
            non-blind too. work (str): a scratch folder.
    """
    raw = read_yaml(os.path.join(REPO_ROOT, "options", "test", "test.yml"))
    raw.update(name=f"ship_x{scale}", scale=scale, checkpoint=os.path.abspath(checkpoint), device=device,
               datasets=[{"name": n, "dataroot_HR": os.path.abspath(f)} for n, f in datasets.items()],
               noise=list(noise), baselines={"bicubic": baselines, "non_blind": baselines},
               save_images=False, out=os.path.abspath(work))
    opt_path = os.path.join(work, "test.yml")
    os.makedirs(work, exist_ok=True)
    dump(raw, opt_path)
    print(f"test.py: {os.path.basename(checkpoint)} on {', '.join(datasets)}, noise {list(noise)}", flush=True)
    proc = subprocess.run([sys.executable, os.path.join(CODES_DIR, "test.py"), "-opt", opt_path],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no message)"])[-1].removeprefix("error: ")
        raise KULNetError(f"test.py failed on {checkpoint}: {tail}")
    with open(os.path.join(work, "results.json"), encoding="utf-8") as handle:
        summary = json.load(handle)["summary"]
    return {(e["dataset"], e["noise"]): e["average"] for e in summary}


def results_entries(averages):
    """Manifest rows from :func:`run_protocol`'s averages."""
    rows = []
    for (dataset, noise), avg in averages.items():
        row = {"dataset": dataset, "noise": noise}
        for method, prefix in METHODS:
            if f"{prefix}psnr_y" in avg:
                row[method] = {"psnr_y": avg[f"{prefix}psnr_y"], "ssim_y": avg[f"{prefix}ssim_y"]}
        for key in ("kernel_psnr", "const_kernel_psnr", "kernel_response", "kernel_gain"):
            row["kulnet"][key] = avg.get(key)
        rows.append(row)
    return rows


def continuation(start, entry, name):
    """``'fresh'`` (no start file) or ``'continue'`` (``start`` is the shipped ``name`` of ``entry`` or
    the float32 weights its last run shipped); anything else raises, before any training."""
    if start is None or not os.path.exists(start):
        return "fresh"
    if entry is None:
        raise KULNetError(f"{start}: training would start from it, but the manifest has no entry for {name}; "
                          f"remove it to train from scratch, or restore the manifest")
    digest = sha256_file(start)
    if digest in (entry["sha256"], entry["runs"][-1]["trained_sha256"]):
        return "continue"
    raise KULNetError(f"{start}: neither the shipped {name} (sha256 {entry['sha256'][:12]}) nor the float32 "
                      f"weights it was made from ({entry['runs'][-1]['trained_sha256'][:12]}); remove it "
                      f"to continue from the shipped file, or ship the training it came from first")


def make_run(path, meta, seconds, hardware, options):
    """The manifest's record of one training run that wrote ``path`` (``meta``: its metadata)."""
    return {"date": datetime.date.today().isoformat(), "iterations": int(meta.get("iteration") or 0),
            "seconds": round(seconds, 1), "hardware": hardware, "train_options": options,
            "code_version": meta.get("code_version"), "trained_sha256": sha256_file(path)}


def via_run(scale, path, seconds, hardware, options):
    """:func:`make_run` for ``--via``: ``path`` must be a train.py checkpoint of ``scale``."""
    if not os.path.isfile(path):
        raise KULNetError(f"--via {path}: no such file")
    try:
        seconds = float(seconds)
    except ValueError:
        raise KULNetError(f"--via {path} {seconds}: the seconds must be a number") from None
    fmt, _, meta = read_checkpoint(path)
    if fmt != "kulnet" or meta.get("scale") != scale:
        raise KULNetError(f"--via {path}: not a x{scale} checkpoint written by train.py")
    return make_run(path, meta, seconds, hardware, options)


def check_readme(path):
    """str | None: the README's text (None without a README); raises without the markers."""
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if README_START not in text or README_END not in text:
        raise KULNetError(f"{path}: no '{README_START}' ... '{README_END}' section to write the results into")
    return text


def update_readme(path, table):
    text = check_readme(path)
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    atomic_write_text(path, f"{head}{README_START}\n{table}\n{README_END}{tail}")


def main(argv=None):
    args = parse_args(argv)
    for label, folder in (("--set5", args.set5), ("--set14", args.set14)):
        if folder and not os.path.isdir(folder):
            raise KULNetError(f"{label} {folder}: no such folder")
    check_readme(args.readme)
    manifest = load_manifest(args.manifest)
    if args.check:
        scale_name = os.path.basename(args.out) if args.out else None
        if not scale_name:
            raise KULNetError("--check needs --out (the file to ship, e.g. pretrained/KULNet_x4.pth)")
        print(continuation(args.start, manifest["files"].get(scale_name), scale_name))
        return
    if not args.trained or args.train_seconds is None:
        raise KULNetError("give the trained checkpoint (experiments/<name>/models/latest_G.pth) and "
                          "--train_seconds (the time its training run took)")
    fmt, params, meta = contents = read_checkpoint(args.trained)
    if fmt != "kulnet" or not meta.get("scale"):
        raise KULNetError(f"{args.trained}: not a checkpoint written by train.py (no metadata); ship our own "
                          f"trainings only")
    scale = meta["scale"]
    out = os.path.abspath(args.out or os.path.join(REPO_ROOT, "pretrained", f"KULNet_x{scale}.pth"))
    name = os.path.basename(out)
    previous = manifest["files"].get(name) if args.continues else None
    if args.continues and previous is None:
        raise KULNetError(f"--continues: {args.manifest} has no entry for {name} to continue")
    if args.continues and args.start:
        continuation(args.start, previous, name)
    runs = (previous["runs"] if previous else []) + [via_run(scale, *via) for via in args.via]
    runs.append(make_run(args.trained, meta, args.train_seconds, args.hardware, args.train_options))
    iterations = sum(r["iterations"] for r in runs)
    train_seconds = round(sum(r["seconds"] for r in runs), 1)

    net = define_G({"scale": scale, "kernel_size": meta.get("kernel_size") or 21,
                    "network_G": meta.get("network_G") or {}})
    load_network(net, args.trained, strict=True, expected_scale=scale, contents=contents)
    noise = args.noise or ([0.0, 10.0] if scale == 4 else [0.0])
    datasets = {"Set5": args.set5, **({"Set14": args.set14} if args.set14 else {})}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ship_", dir=os.path.dirname(out)) as work:  # same filesystem
        half = os.path.join(work, name)
        kept = {k: v for k, v in meta.items() if k in SHIPPED_META}
        save_network(net, half, {**kept, "iteration": iterations, "runs": len(runs)}, dtype=torch.float16)
        full = run_protocol(args.trained, scale, {"Set5": args.set5}, [0.0], False, args.device,
                            os.path.join(work, "float32"))[("Set5", 0.0)]["psnr_y"]
        averages = run_protocol(half, scale, datasets, noise, True, args.device, os.path.join(work, "float16"))
        shipped = averages[("Set5", 0.0)]["psnr_y"]
        delta = shipped - full
        print(f"Set5 x{scale} noise 0 PSNR_Y: float32 {full:.4f} dB, float16 {shipped:.4f} dB (Δ {delta:+.4f})")
        if not abs(delta) < args.max_delta_db:
            raise KULNetError(f"float16 weights change the Set5 PSNR_Y by {delta:+.4f} dB (limit "
                              f"{args.max_delta_db} dB); nothing shipped")
        os.replace(half, out)

    manifest["files"][name] = {
        "scale": scale, "sha256": sha256_file(out), "bytes": os.path.getsize(out), "stored_dtype": "float16",
        "network_G": meta.get("network_G"), "iterations": iterations,
        "train_seconds": train_seconds, "data": args.data,
        "runs": runs, "results": results_entries(averages), "history": previous.get("history", []) if previous else [],
        "float16_check": {"dataset": "Set5", "noise": 0, "psnr_y_float32": full, "psnr_y_float16": shipped,
                          "delta_db": delta, "limit_db": args.max_delta_db}}
    atomic_write_text(args.manifest, json.dumps(manifest, indent=1) + "\n")
    atomic_write_text(os.path.join(os.path.dirname(args.manifest), "MANIFEST.md"), render_manifest_md(manifest))
    if args.readme:
        update_readme(args.readme, render_readme_table(manifest))
    print(render_readme_table(manifest))
    print(f"shipped {out} ({os.path.getsize(out) / 1e6:.1f} MB); manifest {args.manifest}")


if __name__ == "__main__":
    run_cli(main)
