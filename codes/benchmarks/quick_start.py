"""Time the quick start as a new user runs it: ``python codes/test.py`` with no arguments (the quick
demo, ``options/test/test_demo.yml``), and record its table, its time and the machine it ran on.

    python codes/benchmarks/quick_start.py [--label cpu] [--note "another job busy on one core"]

Writes ``codes/benchmarks/results/quick_start_<label>.json``: the wall-clock and CPU seconds of the
run, the CPU (or GPU) and the cores it could use, the load average before and after, the library
versions, the demo's options, the checkpoint's sha256, the summary and the per-image rows. The
README's quick-start table is rendered from it (``codes/scripts/render_readme.py``). It takes what the
quick start takes: under two minutes on 2 CPU cores.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from evaluation.results import paper_table, sha256_file  # noqa: E402
from options.options import REPO_ROOT, read_yaml  # noqa: E402
from utils.atomic_save import atomic_write_text  # noqa: E402
from utils.device import usable_cores  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402
from utils.git_info import git_commit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(REPO_ROOT, "options", "test", "test_demo.yml")


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", default="cpu", help="names the record: results/quick_start_<label>.json")
    ap.add_argument("--note", default="", help="conditions worth saying (e.g. other jobs on the machine)")
    ap.add_argument("--out_dir", default=os.path.join(HERE, "results"))
    args = ap.parse_args(argv)
    demo = read_yaml(DEMO)
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "codes", "test.py")], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise KULNetError(f"python codes/test.py failed: {tail}")
    results = os.path.join(REPO_ROOT, "results", demo["name"], "results.json")
    with open(results, encoding="utf-8") as handle:
        doc = json.load(handle)
    device = doc["record"]["device"]
    record = {
        "what": "python codes/test.py (no arguments: options/test/test_demo.yml)",
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "device": device,
        "device_name": doc["record"]["device_name"] if device.startswith("cuda") else cpu_name(),
        "usable_cores": usable_cores(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
        "python": platform.python_version(),
        "torch": doc["record"]["torch"],
        "commit": git_commit(mark_dirty=True),
        "date": time.strftime("%Y-%m-%d"),
        "demo_options": demo,
        "checkpoint_sha256": sha256_file(os.path.join(REPO_ROOT, demo["checkpoint"])),
        "table": paper_table(doc["summary"], demo["scale"]),
        "summary": doc["summary"],
        "rows": [{k: r[k] for k in ("image", "kernel", "psnr_y", "ssim_y", "kernel_psnr")} for r in doc["rows"]],
    }
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, f"quick_start_{args.label}.json")
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    print(record["table"])
    print(f"{record['wall_s']} s wall, {record['cpu_s']} s CPU on {record['device_name']} "
          f"({record['usable_cores']} cores); wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
