"""KULNet speed benchmark: training step, degradation, inference and FLOPs; prints, never asserts.

Figures (one device, scale and precision per run; median of ``--repeats`` after ``--warmup``):

    train     full training step at batch B, GT G (default 16, 48*s): LR synthesis on the device
              (data.degradation.Degradation), forward, the three losses of the paper, backward,
              optimiser (the training wrapper ``models.kulnet_model.KULNetModel``; ``--step composed``
              builds the same step from define_G + losses). ms/step, it/s, peak memory.
    degrade   one degradation of the training batch (kernels, blur, subsample, noise, quantisation).
    infer     eval-mode forward (inference_mode) for each LR size in ``--infer_sizes`` (batch 1),
              ms and peak memory, in ``--infer_precision`` (fp32 as the authors' figures).
    flops     FLOPs counted by torch.utils.flop_counter on the meta device (no compute): forward
              and full step at the training size, plus the forward at batch 16, LR 48 (a reference
              of 843 GFLOP). Counted on the literal network, i.e. the nominal
              work of the authors' network; achieved TFLOP/s = step FLOPs / train ms.
    blur      (on request) the DLSM's blur pair Aᵀ(A(x)) direct against FFT, with and without
              autograd, at each HR side of ``--blur_sizes``: the evidence of ``blur_impl: auto``.

Peak memory: torch.cuda.max_memory_allocated on CUDA, over the timed calls (reset after the
warm-up: the steady state); the JSON's ``peak_mem_warmup_mib`` also counts the warm-up, where cuDNN's
autotuning (``cudnn.benchmark``, on for the training parts as in train.py) tries algorithms with
large workspaces. Inference runs with ``cudnn.benchmark`` on by default, as test.py does on CUDA
(``--infer_cudnn_benchmark off`` turns it off). On the CPU the
process's peak RSS (``resource.getrusage``), which only grows, so parts run smallest first and the
JSON also gives the rise of the peak during each part. On the CPU the process CPU time per
iteration is reported too: it is steadier than wall time when other jobs load the cores.

Usage (from the repository root):
    python codes/benchmarks/benchmark.py [--device auto|cpu|cuda[:N]] [--scale 4]
        [--precision fp32|bf16|fp16] [--parts train,degrade,infer,flops] [--batch 16] [--gt_size G]
        [--infer_sizes 128,256] [--infer_precision fp32] [--infer_cudnn_benchmark] [--repeats 10] [--warmup 3]
        [--channels_last auto|on|off] [--weight_layout matched|contiguous] [--blur auto|direct|fft|transposed]
        [--memory_options on|off] [--plain]
        [--compile [MODE]] [--threads N]
        [--step wrapper|composed] [--keep_freed_memory] [--json PATH] [--profile PATH]

CPU notes: on a machine whose cores are busy with other jobs, OpenMP threads that spin while waiting
make small ops up to 40x slower; use ``--threads 1`` or start with ``OMP_WAIT_POLICY=PASSIVE``.
``--keep_freed_memory`` stops glibc returning large freed blocks to the OS (benchmarks/cpu_tuning.py):
~25% faster x4 CPU inference for ~15% more peak RSS.
"""
import argparse
import contextlib
import json
import os
import platform
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.timing import time_call  # noqa: E402
from models.fast import accelerate, plain  # noqa: E402
from utils.device import cudnn_autotuning, resolve_device  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARTS = ("train", "degrade", "infer", "flops", "blur")
DEFAULT_PARTS = ("train", "degrade", "infer", "flops")  # blur: the evidence of blur_impl's rules, on request
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MIB = 1024.0 * 1024.0


# ----------------------------------------------------------------------------- helpers
def _rss_mib():
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / MIB


class _Memory:
    """Peak memory of one part: CUDA max allocated (reset at entry and again by :meth:`restart`, after
    the warm-up) or the CPU peak RSS (which cannot be reset)."""

    def __init__(self, device):
        self.device = device
        self.warmup_peak = None

    def restart(self):
        """Keep the peak so far as the warm-up's and measure the steady state from here (CUDA)."""
        if self.device.type == "cuda":
            self.warmup_peak = torch.cuda.max_memory_allocated(self.device) / MIB
            torch.cuda.reset_peak_memory_stats(self.device)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.rss0 = _rss_mib()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / MIB
            self.kind = "cuda_max_allocated"
            self.rise = None
        else:
            self.peak = _rss_mib()
            self.kind = "process_peak_rss"
            self.rise = self.peak - self.rss0
        return False

    def fields(self):
        out = {"peak_mem_mib": round(self.peak, 1), "peak_mem_kind": self.kind}
        if self.warmup_peak is not None:
            out["peak_mem_warmup_mib"] = round(max(self.warmup_peak, self.peak), 1)
        if self.rise is not None:
            out["peak_rss_rise_mib"] = round(self.rise, 1)
        return out


def _autocast(device, precision):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _configure(net, args):
    """Apply the speed options to a KULNet (unwrapped); ``--plain``: the literal network."""
    if args.plain:
        return plain(net)
    accelerate(net, blur_impl=args.blur, channels_last={"auto": None, "on": True, "off": False}[args.channels_last],
               memory_options=args.memory_options == "on")
    if args.weight_layout == "contiguous":  # the weights as loaded, whatever the maps' layout
        net.to(memory_format=torch.contiguous_format)
    return net


def _maybe_compile(module, args):
    return module if args.compile_mode == "eager" else torch.compile(module, mode=args.compile_mode)


# ----------------------------------------------------------------------------- parts
def _wrapper_model(args, device):
    """The training wrapper with the authors' settings at the benchmark's sizes and precision."""
    from models.kulnet_model import KULNetModel
    from options.options import parse

    overrides = [f"scale={args.scale}", f"datasets.train.GT_size={args.gt_size}",
                 f"datasets.train.batch_size={args.batch}", f"train.precision={args.precision}",
                 f"device={device}", "train.compile=eager"]
    opt = parse(os.path.join(REPO_ROOT, "options", "train", "train.yml"), overrides, check_paths=False)
    model = KULNetModel(opt, device=device)
    _configure(model.net, args)
    model.use_compile(args.compile_mode)
    return model


def _composed_step(args, device):
    """The same step built from define_G + losses + Degradation (no wrapper)."""
    from data.degradation import Degradation
    from models.losses import KULNetLoss
    from models.networks import define_G

    net = _configure(define_G({"scale": args.scale}).to(device).train(), args)
    run = _maybe_compile(net, args)
    adam = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optim = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.999), **adam)
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    criterion = KULNetLoss(args.scale)
    degradation = Degradation(args.scale)
    gen = torch.Generator(device).manual_seed(0)
    hr = torch.rand(args.batch, 3, args.gt_size, args.gt_size, generator=gen, device=device)

    def step():
        batch = degradation(hr, generator=gen)
        optim.zero_grad(set_to_none=True)
        with _autocast(device, args.precision):
            out = run(batch.lr)
        loss, _ = criterion(out, hr, batch.kernel, batch.lr_clean)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()

    return step


def bench_train(args, device, to_profile=None):
    """Full training step; returns the result dict (and appends the step to ``to_profile``)."""
    impl = args.step
    if impl == "wrapper":
        model = _wrapper_model(args, device)
        gen = torch.Generator(device).manual_seed(0)
        hr = torch.rand(args.batch, 3, args.gt_size, args.gt_size, generator=gen, device=device)
        counter = {"it": 0}

        def step():
            counter["it"] += 1
            model.feed_data({"hr": hr})
            model.optimize_parameters(counter["it"])
    else:
        step = _composed_step(args, device)
    with _Memory(device) as mem:
        timing = time_call(step, device, args.repeats, args.warmup, after_warmup=mem.restart)
    if to_profile is not None:
        to_profile.append(("train", f"x{args.scale} training step, batch {args.batch}, GT {args.gt_size}, "
                           f"{args.precision}", step, contextlib.nullcontext, timing["ms"]))
    res = {"step_impl": impl, "batch": args.batch, "gt_size": args.gt_size,
           "lr_size": args.gt_size // args.scale, "precision": args.precision, **timing, **mem.fields()}
    res["it_per_s"] = round(1e3 / timing["ms"], 3)
    return res


PROFILE_CALLS = 3


def profile_path(path, part):
    """Where ``--profile PATH`` writes the table of ``part``: PATH for train, PATH_infer.txt etc."""
    if part == "train":
        return path
    root, ext = os.path.splitext(path)
    return f"{root}_{part}{ext or '.txt'}"


def device_busy(averages, calls):
    """Device time and device events per call from ``prof.key_averages()``.

    Sums the device's own events (kernels, memcpy/memset; not user annotations), as the profiler
    table's "Self CUDA time total" does; the CPU operators' device times would count them twice.

    Returns:
        tuple: (busy ms per call, device events per call).
    """
    events = [e for e in averages if str(e.device_type).endswith("CUDA")
              and not getattr(e, "is_user_annotation", False)]
    busy_us = sum(e.self_device_time_total for e in events)
    return busy_us / 1e3 / calls, sum(e.count for e in events) / calls


def profile_rows(averages, cuda, rows):
    """The ``rows`` operators with the most self time (device time on CUDA, else CPU): name, calls
    per profiled call, self ms per profiled call and share of the total."""
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in averages if getattr(e, attr, 0) > 0 and not getattr(e, "is_user_annotation", False)]
    total = sum(getattr(e, attr) for e in events) or 1
    top = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:rows]
    return [{"name": e.key, "calls": e.count / PROFILE_CALLS,
             "self_ms": round(getattr(e, attr) / 1e3 / PROFILE_CALLS, 4), "share": round(getattr(e, attr) / total, 4)}
            for e in top]


def write_profile(label, fn, context, unprofiled_ms, device, path, calls=PROFILE_CALLS, rows=40):
    """Write torch.profiler's op tables for ``calls`` calls of ``fn`` (sorted by device time on CUDA,
    else CPU time), headed by the device-busy time per call beside the unprofiled wall time: where the
    busy time is well below the wall time, the host's dispatch and launches bound the call."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with context(), profile(activities=acts, record_shapes=True) as prof:
        for _ in range(calls):
            fn()
        if cuda:
            torch.cuda.synchronize(device)
    averages = prof.key_averages()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    head = [f"{label}: {calls} calls under torch.profiler",
            f"unprofiled wall time (the benchmark's median): {unprofiled_ms:.2f} ms per call"]
    if cuda:
        busy_ms, launches = device_busy(averages, calls)
        head.append(f"device busy (sum of kernel times): {busy_ms:.2f} ms per call "
                    f"({100 * busy_ms / max(unprofiled_ms, 1e-9):.0f}% of the wall time)")
        head.append(f"device kernels and copies: {launches:.0f} per call")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(head) + "\n\n")
        f.write(averages.table(sort_by=key, row_limit=rows, max_name_column_width=60))
        f.write("\n\nby input shape\n")
        f.write(prof.key_averages(group_by_input_shape=True).table(
            sort_by=key, row_limit=rows, max_name_column_width=40, max_shapes_column_width=90))
    summary = {"label": label, "calls": calls, "unprofiled_ms": unprofiled_ms, "time": "device" if cuda else "cpu",
               "top": profile_rows(averages, cuda, rows)}
    if cuda:
        summary["device_busy_ms"], summary["device_events"] = device_busy(averages, calls)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wrote {path}")


def bench_degrade(args, device):
    """One degradation of the training batch (no autograd)."""
    from data.degradation import Degradation

    gen = torch.Generator(device).manual_seed(0)
    hr = torch.rand(args.batch, 3, args.gt_size, args.gt_size, generator=gen, device=device)
    deg = Degradation(args.scale)
    with torch.no_grad(), _Memory(device) as mem:
        timing = time_call(lambda: deg(hr, generator=gen), device, args.repeats, args.warmup,
                           after_warmup=mem.restart)
    return {"batch": args.batch, "gt_size": args.gt_size, **timing, **mem.fields()}


def bench_infer(args, device, to_profile=None):
    """Eval-mode forward at each LR size (batch 1); list of result dicts (and appends the forward at
    the largest size to ``to_profile``)."""
    from models.networks import define_G

    torch.manual_seed(0)
    net = _configure(define_G({"scale": args.scale}).to(device).eval(), args)
    run = _maybe_compile(net, args)

    @contextlib.contextmanager
    def infer_context():  # cuDNN autotuning off by default: as test.py / test_real.py
        with cudnn_autotuning(args.infer_cudnn_benchmark), torch.inference_mode(), \
                _autocast(device, args.infer_precision):
            yield

    results = []
    for size in sorted(args.infer_sizes):
        lr = torch.rand(1, 3, size, size, generator=torch.Generator(device).manual_seed(size), device=device)
        with infer_context(), _Memory(device) as mem:
            timing = time_call(lambda: run(lr), device, args.repeats, min(args.warmup, 2),
                               after_warmup=mem.restart)
        results.append({"lr_size": size, "hr_size": size * args.scale, "precision": args.infer_precision,
                        "cudnn_benchmark": args.infer_cudnn_benchmark, **timing, **mem.fields()})
    if to_profile is not None:
        to_profile.append(("infer", f"x{args.scale} inference, LR {size}x{size}, {args.infer_precision}",
                           lambda: run(lr), infer_context, timing["ms"]))
    return results


def bench_blur(args, device):
    """The DLSM's blur pair, ``Aᵀ(A(x))`` with one batch of kernels, direct against FFT, with autograd
    (forward and backward: training) and without (inference), at each HR side of ``--blur_sizes``:
    what ``blur_impl: auto`` (``operators.BLUR_RULES``) is chosen from.

    Returns:
        list[dict]: per size ``hr_size``, ``batch`` and ``<train|infer>_<direct|fft>_ms``.
    """
    from data.kernels import make_kernels, random_kernel_params
    from models.fast.operators import FastDegradationOperators

    batch = args.batch if device.type == "cuda" else 1
    gen = torch.Generator(device).manual_seed(0)
    kernels = make_kernels(random_kernel_params(batch, gen, device), 21, args.scale)
    results = []
    for size in sorted(args.blur_sizes):
        x = torch.rand(batch, 3, size, size, generator=gen, device=device)
        row = {"hr_size": size, "batch": batch, "scale": args.scale}
        for training in (True, False):
            for impl in ("direct", "fft"):
                def call(training=training, impl=impl):
                    with torch.set_grad_enabled(training):
                        inp = x.detach().requires_grad_(training)
                        ops = FastDegradationOperators(kernels, args.scale, 3, (size, size), impl)
                        out = ops.At(ops.A(inp))
                        if training:
                            out.sum().backward()

                timing = time_call(call, device, args.repeats, args.warmup)
                row[f"{'train' if training else 'infer'}_{impl}_ms"] = timing["ms"]
        results.append(row)
    return results


def count_flops(scale, batch, lr_size, with_step=True):
    """Nominal FLOPs on the meta device (plain path: direct blur), in GFLOP.

    Returns:
        dict: ``forward_gflop`` and, with ``with_step``, ``step_gflop`` (forward + losses + backward).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from models.losses import KULNetLoss
    from models.networks import define_G

    meta = torch.device("meta")
    net = define_G({"scale": scale}).to(meta).train()  # the literal network
    lr = torch.empty(batch, 3, lr_size, lr_size, device=meta)
    with FlopCounterMode(display=False) as fwd:
        net(lr)
    out = {"batch": batch, "lr_size": lr_size, "forward_gflop": round(fwd.get_total_flops() / 1e9, 3)}
    if with_step:
        hr = torch.empty(batch, 3, lr_size * scale, lr_size * scale, device=meta)
        kernel = torch.empty(batch, net.kernel_size, net.kernel_size, device=meta)
        with FlopCounterMode(display=False) as full:
            loss, _ = KULNetLoss(scale)(net(lr), hr, kernel)
            loss.backward()
        out["step_gflop"] = round(full.get_total_flops() / 1e9, 3)
    return out


def bench_flops(args, device):
    res = {"train_size": count_flops(args.scale, args.batch, args.gt_size // args.scale),
           "reference_forward": count_flops(args.scale, 16, 48, with_step=False),
           "note": "nominal FLOPs of the plain path (direct blur); FFT blurs are not counted"}
    for size in sorted(args.infer_sizes):
        res[f"infer_{size}"] = count_flops(args.scale, 1, size, with_step=False)
    return res


# ----------------------------------------------------------------------------- report
def _table(report):
    r = report["results"]
    lines = [f"KULNet benchmark  {report['device_name']} ({report['device']}), torch {report['torch']}, "
             f"x{report['args']['scale']}, threads {report['threads']}, load {report['load_avg']}",
             f"{'figure':44s} {'ms':>10s} {'it/s':>8s} {'cpu ms':>10s} {'peak MiB':>10s} {'TFLOP/s':>8s}"]

    def row(label, d, extra=""):
        ips = f"{1e3 / d['ms']:8.2f}" if d.get("ms") else f"{'':8s}"
        cpu = f"{d['cpu_ms']:10.1f}" if "cpu_ms" in d else f"{'':10s}"
        lines.append(f"{label:44s} {d['ms']:10.2f} {ips} {cpu} {d['peak_mem_mib']:10.1f} {extra:>8s}")

    if "train" in r:
        t = r["train"]
        tf = f"{t['tflops']:.2f}" if "tflops" in t else ""
        row(f"train step B{t['batch']} GT{t['gt_size']} {t['precision']} ({t['step_impl']})", t, tf)
    if "degrade" in r:
        d = r["degrade"]
        row(f"degradation B{d['batch']} GT{d['gt_size']}", d)
    for d in r.get("infer", []):
        row(f"inference LR {d['lr_size']}x{d['lr_size']} {d['precision']}", d)
    for d in r.get("blur", []):
        lines.append(f"blur pair HR {d['hr_size']} B{d['batch']}: training direct {d['train_direct_ms']:.2f} / "
                     f"fft {d['train_fft_ms']:.2f} ms, inference direct {d['infer_direct_ms']:.2f} / "
                     f"fft {d['infer_fft_ms']:.2f} ms")
    if "flops" in r:
        f = r["flops"]
        ts = f["train_size"]
        lines.append(f"FLOPs (nominal): forward B{ts['batch']} LR{ts['lr_size']} {ts['forward_gflop']:.1f} GFLOP, "
                     f"step {ts['step_gflop']:.1f} GFLOP; forward B16 LR48 "
                     f"{f['reference_forward']['forward_gflop']:.1f} GFLOP (reference: 843)")
    return "\n".join(lines)


def _device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name or 'CPU'} ({os.cpu_count()} logical cores)"


def _parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N")
    ap.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    ap.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS),
                    help="training autocast precision (fp16 uses a GradScaler, as the authors)")
    ap.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                    help=f"comma list of {','.join(PARTS)} (default: all but blur)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--gt_size", type=int, default=None, help="HR crop side (default 48*scale)")
    ap.add_argument("--infer_sizes", default="128,256", help="comma list of LR sides for inference")
    ap.add_argument("--infer_precision", default="fp32", choices=tuple(PRECISIONS))
    ap.add_argument("--infer_cudnn_benchmark", default="on", choices=("on", "off"),
                    help="cuDNN autotuning for inference (on: as test.py runs on CUDA)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--channels_last", default="auto", choices=("auto", "on", "off"),
                    help="auto: channels-last for the DLSM U-Net on the CPU, for both parts on CUDA")
    ap.add_argument("--blur", default="auto", choices=("auto", "direct", "fft", "transposed"),
                    help="A/At blur: auto = FFT on the CPU at large sizes, direct elsewhere; transposed = direct with "
                    "At as F.conv_transpose2d (the plain path's)")
    ap.add_argument("--weight_layout", default="matched", choices=("matched", "contiguous"),
                    help="matched: conv weights in the layout of their maps (models.fast.match_weight_layout, as "
                    "train.py and test.py run); contiguous: the weights as loaded (converted at each conv on CUDA)")
    ap.add_argument("--memory_options", default="on", choices=("on", "off"),
                    help="the memory options (models.fast.accelerate): fewer operators per step when off")
    ap.add_argument("--plain", action="store_true",
                    help="the literal network: every speed/memory option off (models.fast.plain; "
                    "overrides --blur, --channels_last and --memory_options), to measure what they are worth")
    ap.add_argument("--compile", nargs="?", const="default", default="auto",
                    choices=("auto", "eager", "default", "reduce-overhead", "max-autotune"),
                    help="torch.compile mode of the training step and inference; auto (default): as "
                         "train.yml's auto decides for a full-length run (reduce-overhead on CUDA, eager "
                         "on the CPU); eager: not compiled")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--step", default="wrapper", choices=("wrapper", "composed"),
                    help="training step from models.kulnet_model (default) or composed here")
    ap.add_argument("--profile_rows", type=int, default=40, help="operators in each profile table")
    ap.add_argument("--blur_sizes", default="48,96,192,512",
                    help="comma list of HR sides for the blur part (batch 1 at the CPU, --batch on CUDA)")
    ap.add_argument("--profile", default=None,
                    help="also write torch.profiler tables of 3 calls, after the figures and the JSON: "
                         "the train step to this path, the inference at the largest --infer_sizes to "
                         "PATH_infer.txt")
    ap.add_argument("--keep_freed_memory", action="store_true",
                    help="glibc: reuse large freed blocks instead of new mmaps (CPU speed, more RSS)")
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise KULNetError(f"--parts {args.parts}: unknown part(s) {bad}; choose from {','.join(PARTS)}")
    args.parts = parts
    args.infer_cudnn_benchmark = args.infer_cudnn_benchmark == "on"
    from models.kulnet_model import choose_compile_mode

    args.compile_mode, _ = choose_compile_mode(args.compile, args.device if args.device != "auto" else
                                               ("cuda" if torch.cuda.is_available() else "cpu"), 480000)
    try:
        args.blur_sizes = [int(v) for v in args.blur_sizes.split(",") if v.strip()]
    except ValueError:
        raise KULNetError(f"--blur_sizes {args.blur_sizes}: expected integers such as 96,192") from None
    if args.gt_size is None:
        args.gt_size = 48 * args.scale
    if args.gt_size % args.scale or args.gt_size < args.scale:
        raise KULNetError(f"--gt_size {args.gt_size}: must be a positive multiple of --scale {args.scale}")
    try:
        args.infer_sizes = [int(v) for v in args.infer_sizes.split(",") if v.strip()]
    except ValueError:
        raise KULNetError(f"--infer_sizes {args.infer_sizes}: expected integers such as 128,256") from None
    if any(v < 1 for v in args.infer_sizes) or args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise KULNetError("--infer_sizes, --batch and --repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise KULNetError(f"--threads {args.threads}: must be >= 1")
    return args


def main(argv=None):
    args = _parse_args(argv)
    if args.keep_freed_memory:
        from benchmarks.cpu_tuning import keep_freed_memory

        args.keep_freed_memory = keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.precision == "fp16" and device.type == "cpu":
        print("note: fp16 autocast on the CPU is slow; fp32 or bf16 are the CPU choices", file=sys.stderr)

    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    report = {"device": str(device), "device_name": _device_name(device), "torch": torch.__version__,
              "cuda": torch.version.cuda if device.type == "cuda" else None,
              "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "load_avg": load, "args": vars(args), "results": {}}
    results = report["results"]
    to_profile = [] if args.profile else None
    # smallest first: the CPU peak RSS only grows
    if "flops" in args.parts:
        results["flops"] = bench_flops(args, device)
    if "infer" in args.parts:
        results["infer"] = bench_infer(args, device, to_profile)
    if "degrade" in args.parts:
        results["degrade"] = bench_degrade(args, device)
    if "blur" in args.parts:
        results["blur"] = bench_blur(args, device)
    if "train" in args.parts:
        results["train"] = bench_train(args, device, to_profile)
        if "flops" in results:
            gflop = results["flops"]["train_size"]["step_gflop"]
            results["train"]["tflops"] = round(gflop / results["train"]["ms"], 4)  # GFLOP/ms = TFLOP/s
    report["load_avg_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    print(_table(report))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
        print(f"wrote {args.json}")
    # after the JSON, so that a run stopped by its time limit while profiling keeps its figures
    for part, label, fn, context, ms in to_profile or []:
        write_profile(label, fn, context, ms, device, profile_path(args.profile, part), rows=args.profile_rows)
    return report


if __name__ == "__main__":
    run_cli(main)
