"""Plan a fixed-time training run from the benchmark that opened the same device call.

``device_train.sh`` runs ``device_check.sh`` (QUICK) first, then trains for the rest of the call.
This script reads the benchmark's archive and prints three words for the shell: the number of
iterations for the cosine schedule (``-`` when the budget is too short for one: constant learning
rate), the ``train.compile`` mode (``eager`` or ``reduce-overhead``) and the ``train.blur_impl``
(``auto`` or ``fft``).

    python codes/scripts/plan_training.py bench.tgz --scale 4 --minutes 5.5 --compile auto
    -> 2710 reduce-overhead auto

Rules (the iterations are 90% of what the step time allows: train.py made 110 ms per iteration of a
93 ms benchmark step on the first H100 run, 2026-11-25, and 75.6 ms of a 71.0 ms step on 2026-11-26,
once its loader ran across epochs; with 80% that run ended its cosine 60 s before its budget):

- the eager step is ``x<S>_fp16.json``; the QUICK benchmark times x4 and (since 2026-11-26) x2,
  so x3 uses x4's (slower: the schedule ends a little before the budget, it never overruns it);
- with ``--compile auto``, ``x<S>_fp16_compile_ro.json`` (else x4's, as a ratio) is used when its
  step is at least ``--min_gain`` faster and it still gives more iterations once its warm-up time
  (the compilation, which train.py pays again) is taken off the budget;
- ``--compile <mode>`` forces the mode (step time as measured when it is reduce-overhead, else
  eager's, with two minutes of compilation);
- the FFT blur (``x4_fp16_fft.json``, timed eager with the default's other options) is chosen for
  an eager run when its x4 step is at least ``--min_blur_gain`` faster than the default's; the
  step time is scaled by that ratio. A compiled run keeps the default blur (the combination is not
  measured: inductor does not generate code for complex operators);
- a missing or failed run counts as absent, never as an error: the run still trains, eagerly.
"""
import argparse
import json
import sys
import tarfile

SAFETY = 0.9  # train.py iterations per benchmark step time (validation, checkpoints, logging)
MIN_ITERS = 100  # fewer: a constant learning rate, no schedule


def read_runs(archive):
    """dict name -> results dict of each benchmark JSON in the archive (``bench/<name>.json``)."""
    runs = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".json"):
                    name = member.name.rsplit("/", 1)[-1][:-5]
                    try:
                        runs[name] = json.load(tar.extractfile(member))["results"]
                    except (ValueError, KeyError):
                        pass  # a run cut off while writing
    except (OSError, tarfile.TarError):
        pass
    return runs


def _train(runs, name):
    train = runs.get(name, {}).get("train")
    return train if isinstance(train, dict) and train.get("ms") else None


def plan(runs, scale, minutes, compile_mode="auto", min_gain=0.15, min_blur_gain=0.03):
    """Returns (iterations or None, compile mode, blur impl, reason)."""
    eager = _train(runs, f"x{scale}_fp16") or _train(runs, "x4_fp16")
    if eager is None:
        return None, "eager", "auto", "no train step time in the benchmark"
    ms, mode, seconds = eager["ms"], "eager", minutes * 60 - 20
    reason = f"eager step {ms:.1f} ms"
    compiled = _train(runs, f"x{scale}_fp16_compile_ro")
    c_ms = compiled["ms"] if compiled else None
    if compiled is None and _train(runs, "x4_fp16") and _train(runs, "x4_fp16_compile_ro"):
        compiled = _train(runs, "x4_fp16_compile_ro")  # another scale: x4's ratio
        c_ms = ms * compiled["ms"] / _train(runs, "x4_fp16")["ms"]
    compile_s = compiled.get("warmup_s", 120) if compiled else 0
    if compile_mode == "auto" and c_ms is not None and c_ms > (1 - min_gain) * ms:
        reason += f"; reduce-overhead {c_ms:.1f} ms is not {min_gain:.0%} faster"
    elif compile_mode == "auto" and c_ms is not None and (seconds - compile_s) / c_ms <= seconds / ms:
        reason += f"; reduce-overhead {c_ms:.1f} ms, but compiling ({compile_s:.0f} s) costs more than it saves"
    elif compile_mode in ("auto", "reduce-overhead") and c_ms is not None:
        mode, seconds = "reduce-overhead", seconds - compile_s
        reason = f"reduce-overhead step {c_ms:.1f} ms against eager {ms:.1f} ms"
        ms = c_ms
    elif compile_mode not in ("auto", "eager"):  # not measured: eager's step time, compiling 2 min
        mode, seconds = compile_mode, seconds - 120
        reason += f"; {compile_mode} not measured"
    blur = "auto"
    fft, x4 = _train(runs, "x4_fp16_fft"), _train(runs, "x4_fp16")
    if mode == "eager" and fft and x4:
        ratio = fft["ms"] / x4["ms"]
        if ratio <= 1 - min_blur_gain:
            blur, ms = "fft", ms * ratio
            reason += f"; FFT blur (x4 step {fft['ms']:.1f} against {x4['ms']:.1f} ms)"
        else:
            reason += f"; FFT blur x4 step {fft['ms']:.1f} ms is not {min_blur_gain:.0%} faster"
    iters = int(SAFETY * max(seconds, 0) * 1000 / ms)
    return (iters if iters >= MIN_ITERS else None), mode, blur, reason


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("archive", help="bench.tgz written by device_train.sh (BENCH=1)")
    ap.add_argument("--scale", type=int, required=True, choices=(2, 3, 4))
    ap.add_argument("--minutes", type=float, required=True, help="training budget of the run")
    ap.add_argument("--compile", default="auto",
                    help="auto: reduce-overhead when the benchmark shows it faster; else this mode")
    ap.add_argument("--min_gain", type=float, default=0.15)
    ap.add_argument("--min_blur_gain", type=float, default=0.03)
    args = ap.parse_args(argv)
    iters, mode, blur, reason = plan(read_runs(args.archive), args.scale, args.minutes, args.compile,
                                     args.min_gain, args.min_blur_gain)
    print(f"plan: {iters or 'constant learning rate'} iterations, train.compile={mode}, "
          f"train.blur_impl={blur} ({reason})", file=sys.stderr)
    print(iters or "-", mode, blur)


if __name__ == "__main__":
    main()
