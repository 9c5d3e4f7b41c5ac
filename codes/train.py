"""Train KULNet (blind SR with uncertainty-learning kernel estimation).

Usage (from the repository root, or from codes/ as the authors' scripts run):
    python codes/train.py -opt options/train/train.yml [--set train.niter=1000] [--auto_resume]
    torchrun --nproc_per_node 4 codes/train.py -opt options/train/train.yml   # DDP
    cd codes && python train.py --opt options/train/train.yml    # the authors' launch; their train.yml too

An option file in the authors' layout is translated (the log says how; ``--print_options`` writes it in
ours); ``--set`` takes keys of our layout.

Writes experiments/<name>/: a copy of the options, train_<time>.log, val_curve.csv (one row per
validation: iteration, seconds, the training losses since the last one, the metrics), tb_logger/ (TensorBoard),
models/<iter>_G.pth (+ latest_G.pth at the end), training_state/<iter>.state, val_images/<iter>/.
An existing folder of the same name is renamed with a timestamp unless the run resumes; ``name`` is one
folder name (no '/', '\\' or '..'), so a run writes inside path.experiments_root only.
"""
import argparse
import glob
import logging
import os
import random
import re
import shutil
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from data import create_dataset
from data.loader import build_train_loader, loader_workers
from evaluation.validation import append_curve_row, validate
from models import create_model
from models.kulnet_model import choose_compile_mode, derived_seed, load_training_state
from options.authors_layout import add_layout_flags, our_layout_yaml
from options.options import dump, load_raw, parse, source_name
from options.schema import TRAIN_SCHEMA
from utils.device import resolve_device
from utils.errors import KULNetError, run_cli
from utils.logger import MessageLogger, get_root_logger, init_tb_logger
from utils.output_dir import prepare_output_dir
from utils.stop_request import StopRequest


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train KULNet. Cost: a x4 iteration (batch 16) takes 46.5 ms at "
                                     "GT 192 on one H200 and 17 to 19 s of CPU time at GT 96 "
                                     "(options/train/train_cpu.yml) on 2 CPU cores; the authors' setting "
                                     "runs 480,000 iterations.")
    parser.add_argument("-opt", "--opt", required=True, help="training option file (YAML), ours or the "
                        "authors' train.yml; from the current folder, else the repository root")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one option, e.g. --set train.niter=1000 (repeatable)")
    parser.add_argument("--auto_resume", action="store_true",
                        help="continue from the latest training state of experiments/<name>/")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--time_budget", type=float, default=None, metavar="MINUTES",
                        help="stop cleanly after this many minutes of wall-clock time, with a "
                             "checkpoint to --auto_resume from (SIGINT/SIGTERM do the same)")
    parser.add_argument("--snapshot_after", type=float, default=None, metavar="MINUTES",
                        help="also save a checkpoint at the first iteration after this many minutes "
                             "of wall-clock time (to compare runs at equal training time); the log "
                             "says 'snapshot at iteration N'")
    parser.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                        help="the authors' flag: pytorch under torchrun (whose environment is used either way)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                        help=argparse.SUPPRESS)  # torch.distributed.launch compatibility
    for flag in ("--gpu_ids_qsub", "--slurm_job_id"):  # the authors' cluster flags, accepted and ignored
        parser.add_argument(flag, default=None, help=argparse.SUPPRESS)
    add_layout_flags(parser, TRAIN_SCHEMA)
    return parser.parse_args(argv)


def launch_notes(args):
    """Lines for the log about the authors' launch flags."""
    notes = []
    if args.launcher == "pytorch" or args.local_rank is not None:
        env = {k: os.environ.get(k) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
        seen = ", ".join(f"{k} {v}" for k, v in env.items() if v is not None) or "none set: one process"
        notes.append(f"--launcher {args.launcher} --local_rank {args.local_rank}: torchrun's environment is used "
                     f"({seen})")
    for flag in ("gpu_ids_qsub", "slurm_job_id"):
        if getattr(args, flag) is not None:
            notes.append(f"--{flag} {getattr(args, flag)} ignored: the device comes from the options "
                         f"(device, or gpu_ids in the authors' layout) and from torchrun")
    return notes


def init_distributed(device_name):
    """(rank, world_size, local_rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return 0, 1, local_rank
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def find_latest_state(exp_dir):
    """Path of the newest ``training_state/<iter>.state`` whose weights exist, or None."""
    best, best_iter = None, -1
    for path in glob.glob(os.path.join(exp_dir, "training_state", "*.state")):
        match = re.fullmatch(r"(\d+)\.state", os.path.basename(path))
        if match and int(match.group(1)) > best_iter and os.path.isfile(
                os.path.join(exp_dir, "models", f"{match.group(1)}_G.pth")):
            best, best_iter = path, int(match.group(1))
    return best


def prepare_experiment(exp_dir, resuming, opt, timestamp):
    """Create (or reuse when resuming) the experiment folder; archive a previous one."""
    prepare_output_dir(os.path.dirname(os.path.abspath(exp_dir)), "path.experiments_root")
    if os.path.exists(exp_dir) and not resuming:
        archived = f"{exp_dir}_archived_{timestamp}"
        os.replace(exp_dir, archived)
        print(f"{exp_dir} existed: renamed to {archived}", file=sys.stderr)
    for sub in ("models", "training_state", "val_images"):
        os.makedirs(os.path.join(exp_dir, sub), exist_ok=True)
    shutil.copy(opt["opt_path"], os.path.join(exp_dir, f"{timestamp}_{os.path.basename(opt['opt_path'])}"))
    dump(opt, os.path.join(exp_dir, f"{timestamp}_resolved_options.yml"))


class RunningMean:
    """Mean of the training losses (``l_*`` keys of the step logs) since the last :meth:`pop`."""

    def __init__(self):
        self.sums, self.count = {}, 0

    def add(self, log):
        for key, value in log.items():
            if key.startswith("l_"):
                self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def pop(self):
        """dict: the means (empty before any step), and a fresh start."""
        means = {k: v / self.count for k, v in self.sums.items()} if self.count else {}
        self.sums, self.count = {}, 0
        return means


def weights_lines(model, resuming):
    """The log's lines on the weights the run starts from: the pretrained files loaded, or that the
    network starts from its initialisation (a resumed run says where it resumed from instead)."""
    if model.loaded_weights or resuming:
        return list(model.loaded_weights)
    return ["no pretrained weights: the network starts from its initialisation"]


def seed_everything(seed, rank):
    s = derived_seed(seed, rank, 0)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def train(args):
    overrides = list(args.set) + ([f"device={args.device}"] if args.device else [])
    if args.print_options:
        raw, notes, path = load_raw(args.opt, overrides, check_paths=False)
        parse(args.opt, overrides, check_paths=False)  # the file printed is a valid one
        print(our_layout_yaml(raw, TRAIN_SCHEMA, notes, source_name(path)))
        return 0
    opt = parse(args.opt, overrides)  # every option error is reported here, before any work
    for flag, minutes in (("--time_budget", args.time_budget), ("--snapshot_after", args.snapshot_after)):
        if minutes is not None and minutes <= 0:
            raise KULNetError(f"{flag} {minutes}: give a positive number of minutes")
    t_launch = time.monotonic()
    stop = StopRequest(args.time_budget).install()
    snapshot = StopRequest(args.snapshot_after) if args.snapshot_after else None  # a deadline only
    try:
        return _run(args, opt, stop, snapshot, t_launch)
    finally:
        stop.uninstall()  # also after an error: a caller (tests, notebooks) keeps its own handlers


def _run(args, opt, stop, snapshot, t_launch):
    """The run itself (see :func:`train`)."""
    rank, world, local_rank = init_distributed(opt["device"])
    device = resolve_device(opt["device"], local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        deterministic = opt["train"]["deterministic"]
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)

    exp_dir = os.path.join(opt["path"]["experiments_root"], opt["name"])
    state_path = opt["path"]["resume_state"]
    if state_path is None and args.auto_resume:
        state_path = find_latest_state(exp_dir)
    state = load_training_state(state_path) if state_path else None
    seed_everything(opt["train"]["manual_seed"], rank)
    loader, sampler = build_train_loader(opt, rank, world, device)
    val_set = None
    if opt["datasets"]["val"] is not None and rank == 0:
        val_set = create_dataset({**opt["datasets"]["val"], "phase": "val", "scale": opt["scale"]})
        for index in range(len(val_set)):  # a broken validation image fails now, not at iteration 1000
            val_set[index]
    model = create_model(opt, device=device, rank=rank, world_size=world)

    # the experiment folder only once everything above worked (a failed start archives nothing)
    timestamp = time.strftime("%y%m%d-%H%M%S")
    if rank == 0:
        prepare_experiment(exp_dir, state is not None, opt, timestamp)
    if world > 1:
        dist.barrier()
    logger = get_root_logger(log_file=os.path.join(exp_dir, f"train_{timestamp}.log"), rank=rank)
    logger.info("options: %s, device: %s, processes: %d", opt["opt_path"], device, world)
    for line in opt["layout_notes"] + launch_notes(args):
        logger.info(line)
    for line in weights_lines(model, resuming=state is not None):
        logger.info(line)
    if model.mode == "estimator":
        logger.info("train.mode estimator: the kernel estimator alone (kernel loss and KL term); the SR part "
                    "is neither run nor trained")
    if model.mode == "sr":
        logger.info("train.mode sr: the SR part alone (pixel loss) on the kernels of the frozen estimator")
    if model.latent_mean_iter:
        logger.info("train.latent_mean_iter %d: the estimator's latent mean until iteration %d, a sample after",
                    model.latent_mean_iter, model.latent_mean_iter)
    stop.world_size, stop.device = world, device
    if snapshot is not None:
        snapshot.world_size, snapshot.device = world, device
    logger.info("precision %s, %d parameters, %d images, %d iterations per epoch", model.precision,
                sum(p.numel() for p in model.net.parameters()), len(loader.dataset),
                sampler.batches_per_epoch())
    workers, cut = loader_workers(opt["datasets"]["train"]["n_workers"], world)
    logger.info("%s", cut or f"{workers} loader worker(s)")
    start_iter = 0
    if state is not None:
        weights = os.path.join(os.path.dirname(os.path.dirname(state_path)), "models", state["weights"])
        exact = model.resume_training(state, weights)
        start_iter = state["iter"]
        model.last_checkpoint = model.last_saved = state_path
        logger.info("resumed from %s (iteration %d)%s", state_path, start_iter,
                    "" if exact else "; different number of processes: random streams re-seeded")
        saved_batch = state.get("batch_size")
        if saved_batch is not None and saved_batch != opt["datasets"]["train"]["batch_size"]:
            logger.warning("resuming with batch_size %d, the state was saved with %d: the epochs and "
                           "batches differ from a run that never stopped", opt["datasets"]["train"]["batch_size"],
                           saved_batch)

    total = opt["train"]["niter"]
    compile_mode, why = choose_compile_mode(opt["train"]["compile"], device, total - start_iter, args.time_budget)
    if compile_mode != model.compile_mode:
        model.use_compile(compile_mode)
    logger.info("train.compile: %s (%s)%s", compile_mode, why,
                "; the first iteration compiles the network (a minute or more)" if compile_mode != "eager" else "")
    per_epoch = sampler.batches_per_epoch()
    epoch, start_batch = divmod(start_iter, per_epoch)
    tb_logger = None
    if rank == 0 and opt["logger"]["use_tb_logger"]:
        tb_logger = init_tb_logger(os.path.join(exp_dir, "tb_logger"))
    msg_logger = MessageLogger(total, start_iter, logger, tb_logger)
    log_opt = opt["logger"]
    val_freq = opt["train"]["val_freq"]

    from tqdm import tqdm

    pbar = tqdm(total=total, initial=start_iter, dynamic_ncols=True, unit="it",
                disable=rank != 0 or not log_opt["progress_bar"])
    current = start_iter
    losses = RunningMean()
    # the curve's loss columns before any step (the first row), so that every row has the same columns
    loss_columns = dict.fromkeys([*model.criterion.part_names(model.mode != "estimator"), "l_total"], float("nan"))

    def run_validation(iteration):
        t_val = time.monotonic()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            metrics = validate(model, val_set, opt["datasets"]["val"], iteration, os.path.join(exp_dir, "val_images"),
                               log_opt["n_val_images"], tb_logger)
        logger.info("validation at iteration %d (%.1f s): %s", iteration, time.monotonic() - t_val,
                    ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        append_curve_row(os.path.join(exp_dir, "val_curve.csv"),
                         {"iteration": iteration, "seconds": round(time.monotonic() - t_launch, 1),
                          **(losses.pop() or loss_columns), **metrics})

    if val_set is not None and opt["train"]["val_at_start"] and current == 0:
        run_validation(0)
    if current >= total:
        logger.info("nothing to do: the state is at iteration %d >= train.niter %d", current, total)
    try:
        sampler.set_epoch(epoch, start_batch)  # the loader then runs on from epoch to epoch
        t_data = time.time()
        for data in (loader if current < total else ()):
            current += 1
            epoch = (current - 1) // per_epoch  # the epoch of this batch
            t_start = time.time()
            model.feed_data(data, step=current)
            model.optimize_parameters(current)
            log = model.get_current_log()
            pbar.update(1)
            pbar.set_postfix({k: f"{v:.3g}" for k, v in log.items() if k.startswith("l_")},
                             refresh=False)
            if current % log_opt["print_freq"] == 0:
                log = model.get_current_log(reduce=True)  # mean over the ranks
                if rank == 0:
                    msg_logger({"epoch": epoch, "iter": current,
                                "lr": model.get_current_learning_rate(),
                                "time": time.time() - t_start, "data_time": t_start - t_data, **log})
            losses.add(log)
            if val_set is not None and (current % val_freq == 0 or current == total):
                run_validation(current)
            stopping = current < total and stop.should_stop()
            snapshot_now = snapshot is not None and snapshot.should_stop()
            if snapshot_now:
                snapshot = None
                logger.info("snapshot at iteration %d (%.0f s after the start)", current,
                            time.monotonic() - t_launch)
            if (current % log_opt["save_checkpoint_freq"] == 0 or current == total or stopping
                    or snapshot_now):
                path = model.save(current, epoch, os.path.join(exp_dir, "models"),
                                  os.path.join(exp_dir, "training_state"),
                                  latest=current == total or stopping)
                if path:
                    logger.info("saved %s", path)
            if current >= total or stopping:
                break
            t_data = time.time()
    except KeyboardInterrupt:
        pbar.close()
        logger.warning("interrupted at iteration %d; %s", current, model.resume_advice())
        raise SystemExit(130)
    pbar.close()
    if tb_logger is not None:
        tb_logger.close()
    if stop.reason:
        logger.warning("stopped at iteration %d of %d (%s); continue with --auto_resume", current,
                       total, stop.reason)
    else:
        logger.info("done: %d iterations; weights in %s", current, os.path.join(exp_dir, "models"))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return stop.exit_code if stop.reason else 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return train(args)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(run_cli(main))
