"""Training wrapper of KULNet: network, optimiser, schedule, precision, losses, checkpoints.

Paper / reference: Fang et al., ECCV 2022 (losses and training setting). The LR of every batch is synthesised
on the training device from the HR crops (``data.degradation.Degradation``), so the
data loader only reads and crops.

Exactness on resume: the learning rate is a function of the iteration, and the training state holds
the optimiser, the grad scaler and every random generator (python, numpy, torch, CUDA and the
degradation generator, one set per DDP rank), written atomically.
"""
import io
import logging
import os
import random

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from data.degradation import Degradation
from data.loader import hr_to_device
from models.estimator_training import EstimatorStep, parameter_groups
from models.fast import accelerate
from models.losses import KULNetLoss
from models.lr_scheduler import IterationLR
from models.networks import define_G, load_estimator, load_network, save_network
from utils.atomic_save import atomic_torch_save
from utils.device import resolve_device
from utils.errors import KULNetError, one_line

STATE_FORMAT = "kulnet_training_state"
logger = logging.getLogger("kulnet")


def resolve_precision(name, device):
    """``auto`` -> fp16 (+ GradScaler, the authors' choice) on CUDA, fp32 elsewhere."""
    if name == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return name


# compile: auto compiles (CUDA graphs) only runs long enough to pay back the compilation (a minute
# or two) many times over; the rest of the rule is in choose_compile_mode
COMPILE_MIN_ITERATIONS = 10000
COMPILE_MIN_MINUTES = 20.0


def choose_compile_mode(setting, device, iterations_to_go, time_budget_min=None):
    """The ``torch.compile`` mode of a run, and why, for the option ``train.compile``.

    ``auto`` is ``reduce-overhead`` (the fixed-shape step replayed as CUDA graphs) on CUDA when the
    run has at least :data:`COMPILE_MIN_ITERATIONS` iterations to go and no time budget shorter
    than :data:`COMPILE_MIN_MINUTES`; ``eager`` on the CPU and for short runs. Other settings are
    taken as they are.

    Returns:
        tuple[str, str]: (mode, a short reason for the log).
    """
    if setting != "auto":
        return setting, "train.compile"
    if torch.device(device).type != "cuda":
        return "eager", f"auto: not on CUDA ({torch.device(device).type})"
    if iterations_to_go < COMPILE_MIN_ITERATIONS:
        return "eager", f"auto: {iterations_to_go} iterations to go, fewer than {COMPILE_MIN_ITERATIONS}"
    if time_budget_min is not None and time_budget_min < COMPILE_MIN_MINUTES:
        return "eager", f"auto: a time budget of {time_budget_min:g} minutes, under {COMPILE_MIN_MINUTES:g}"
    return "reduce-overhead", f"auto: CUDA and {iterations_to_go} iterations to go"


def derived_seed(*parts):
    """A 63-bit seed derived from integers (independent streams for rank/purpose/epoch)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def _match_state_layouts(optimizer):
    """Give each optimiser state tensor its parameter's strides. A resumed state saved with the
    weights in another memory format (another device, or before ``models.fast.match_weight_layout``)
    would otherwise be refused by fused Adam, which needs parameters, gradients and states in one
    layout (and slow the foreach one)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _gradients_finite(optimizer):
    """0-d float tensor on the gradients' device: 1 when every gradient is finite, else 0 (no sync)."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return torch.ones(())
    return torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum()).float()


class KULNetModel:
    """Holds the network and everything needed to train it.

    Args:
        opt (dict): parsed training options (``options.options.parse``).
        device (torch.device | str | None): None: from ``opt['device']`` (auto: CUDA if present).
        rank (int), world_size (int): DDP rank and number of processes (1: no DDP).
    """

    def __init__(self, opt, device=None, rank=0, world_size=1):
        self.opt = opt
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device) if device is not None else resolve_device(opt["device"])
        self.scale = opt["scale"]
        train_opt = opt["train"]
        self.precision = resolve_precision(train_opt["precision"], self.device)
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)

        self.net = define_G(opt).to(self.device)
        self.loaded_weights = self._load_pretrained(opt["path"])  # lines for the training log
        self.net.train()
        # the fast forms (validation uses them too), before the optimiser: its states follow the weights
        accelerate(self.net, self.device, blur_impl=train_opt["blur_impl"])
        self.mode = train_opt["mode"]
        self.latent_mean_iter = train_opt["latent_mean_iter"]
        trained = self.net
        if train_opt["kernel_loss"] == "map" and self.mode != "estimator":
            raise KULNetError("train.kernel_loss map compares the per-pixel kernels, which only the estimator "
                              "trained alone returns: set train.mode estimator, or use kernel_loss l1")
        if self.mode == "estimator":  # the SR part is neither run nor trained
            self.net.SR_net.requires_grad_(False)
            trained = EstimatorStep(self.net.kernel_extra, kernel_map=train_opt["kernel_loss"] == "map")
        elif self.mode == "sr":  # a frozen estimator: the SR part learns its kernels, as they are at test time
            self.net.kernel_extra.requires_grad_(False)
        self.net_eager = trained
        if world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net_eager = DistributedDataParallel(trained, device_ids=ids)
        self.net_train = self.net_eager
        self.compile_mode = "eager"
        self.compile_pending = False  # True until the first compiled step has run (compilation happens there)
        self.compile_failed = None  # why the compilation failed, when it did
        if train_opt["compile"] not in ("eager", "auto"):  # auto is decided by the caller (use_compile)
            self.use_compile(train_opt["compile"])

        groups = parameter_groups(self.net, train_opt["lr_G"], train_opt["estimator_lr_mult"],
                                  train_opt["kernel_head_lr_mult"])
        adam_kw = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        self.optimizer = torch.optim.Adam(groups, lr=train_opt["lr_G"],
                                          betas=(train_opt["beta1"], train_opt["beta2"]),
                                          weight_decay=train_opt["weight_decay_G"], **adam_kw)
        self.scheduler = IterationLR(
            self.optimizer, train_opt["lr_scheme"], milestones=train_opt["lr_steps"],
            gamma=train_opt["lr_gamma"], periods=train_opt["T_period"],
            weights=train_opt["restart_weights"], eta_min=train_opt["eta_min"],
            warmup_iter=train_opt["warmup_iter"])
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        frozen_estimator = self.mode == "sr"  # no kernel or KL term: nothing they could train
        self.criterion = KULNetLoss(
            self.scale, train_opt["pixel_weight"], 0.0 if frozen_estimator else train_opt["kernel_weight"],
            0.0 if frozen_estimator else train_opt["kl_weight"],
            train_opt["lr_consistency_weight"], train_opt["kl_weight_lr_consistency"], train_opt["kernel_loss"],
            train_opt["kl_free_bits"], train_opt["kl_warmup_iter"])
        deg = opt["degradation"]
        self.degradation = Degradation(
            self.scale, opt["kernel_size"], random_kernel=deg["random_kernel"],
            sig_min=deg["sig_min"], sig_max=deg["sig_max"], rate_iso=deg["rate_iso"],
            sig1=deg["sig1"], sig2=deg["sig2"], theta=deg["theta"],
            random_noise=deg["random_noise"], noise_high=deg["noise_high"], noise=deg["noise"],
            jpeg_low=deg["jpeg_low"])
        self.curriculum_iter = deg["curriculum_iter"]
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(derived_seed(train_opt["manual_seed"], rank, 1))
        self.grad_clip = train_opt["grad_clip"]
        self.max_nonfinite = train_opt["max_nonfinite"]
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0
        self.last_checkpoint = None  # the newest state saved outside a run of skipped steps
        self.last_saved = None  # the newest state saved (what --auto_resume picks)
        self.log_dict = {}

    def _load_pretrained(self, path_opt):
        """Load ``path.pretrain_model_G`` then ``path.pretrain_model_K``; returns one line per file for
        the log: path, strictness, missing and unexpected keys."""
        lines = []
        if path_opt["pretrain_model_G"]:
            meta = load_network(self.net, path_opt["pretrain_model_G"], strict=path_opt["strict_load"],
                                expected_scale=self.scale, estimator_follows=bool(path_opt["pretrain_model_K"]))
            lines.append(f"path.pretrain_model_G: {path_opt['pretrain_model_G']} ({meta['format']} checkpoint, "
                         f"strict_load {path_opt['strict_load']}; {len(meta['missing_keys'])} missing keys "
                         f"{meta['missing_keys'][:5]}, {len(meta['unexpected_keys'])} unexpected "
                         f"{meta['unexpected_keys'][:5]})")
        if path_opt["pretrain_model_K"]:
            meta = load_estimator(self.net, path_opt["pretrain_model_K"], expected_scale=self.scale)
            lines.append(f"path.pretrain_model_K: {path_opt['pretrain_model_K']} (the kernel estimator's "
                         f"{meta['n_tensors']} tensors from {meta['format']} {meta['source']} weights; strict)")
        return lines

    def use_compile(self, mode):
        """Train through ``torch.compile(mode=mode)`` (``'eager'``: not compiled). Checkpoints and
        validation keep using the eager :attr:`net`. A compilation that fails at the first step
        makes the run go on eagerly (see :meth:`optimize_parameters`)."""
        self.compile_mode = mode
        self.compile_pending = mode != "eager"
        self.net_train = self.net_eager if mode == "eager" else torch.compile(self.net_eager, mode=mode)

    # ------------------------------------------------------------------ data
    def feed_data(self, data, degraded=None, step=None):
        """Move the HR batch to the device and synthesise its LR there.

        Args:
            data (dict | Tensor): ``{'hr': (B, 3, H, W)}`` or the HR tensor itself: float in [0, 1], or
                uint8 in [0, 255] (converted on the device, :func:`data.loader.hr_to_device`).
            degraded (DegradedBatch | None): a ready degradation of this batch (tests); None draws
                one with the model's degradation generator.
            step (int | None): the iteration the batch is for (1-based), for ``degradation.curriculum_iter``.
        """
        hr = data["hr"] if isinstance(data, dict) else data
        self.hr = hr_to_device(hr, self.device)
        if degraded is None:
            self.degradation.extremes = step is not None and step <= self.curriculum_iter
            degraded = self.degradation(self.hr, generator=self.generator)
        self.lr = degraded.lr.to(self.device)
        self.lr_clean = degraded.lr_clean.to(self.device)
        self.kernel = degraded.kernel.to(self.device)

    # ------------------------------------------------------------------ step
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def optimize_parameters(self, step):
        """One training iteration (``step`` is 1-based; it sets the learning rate).

        A non-finite loss (on any rank), or non-finite gradients of a finite loss (fp32/bf16; with
        fp16 the grad scaler skips those steps and lowers its scale), skips the update;
        ``max_nonfinite`` of them in a row raise.

        The backward is queued before the losses are read (one host sync for all of them, after
        it), so a GPU is not left idle between the forward and the backward. A non-finite loss
        gets a backward too; its gradients are dropped, so the weights, Adam and the loss scale stay
        exactly as if the step had stopped at the loss.
        """
        self.scheduler.step(step)
        self.criterion.set_iteration(step)
        self.net.kernel_extra.sample_in_training = step > self.latent_mean_iter and self.mode != "sr"
        self.optimizer.zero_grad(set_to_none=True)
        if self.compile_pending:
            loss, parts = self._first_compiled_step()
        else:
            loss, parts = self._forward_backward()
        finite = torch.isfinite(loss.detach()).float()
        if not self.scaler.is_enabled():  # fp16's grad scaler skips steps with non-finite gradients itself
            finite = finite * _gradients_finite(self.optimizer)
        if self.world_size > 1:  # the ranks must agree to skip or step together
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        names = [*parts, "l_total"]
        values = torch.stack([*(v.detach().float() for v in parts.values()), loss.detach().float(),
                              finite]).tolist()  # the step's one host sync
        self.log_dict = dict(zip(names, values))
        if values[-1] < 1:
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite_in_row += 1
            self.nonfinite_total += 1
            self.log_dict["nonfinite_total"] = self.nonfinite_total
            if self.nonfinite_in_row >= self.max_nonfinite:
                raise KULNetError(self._nonfinite_message(step))
            return False
        self.nonfinite_in_row = 0
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.log_dict["nonfinite_total"] = self.nonfinite_total
        return True

    def _forward_backward(self):
        """The step's forward, losses and (scaled) backward; returns (loss, detached parts)."""
        with self._autocast():
            out = self.net_train(self.lr)
        loss, parts = self.criterion(out, self.hr, self.kernel, self.lr_clean)
        self.scaler.scale(loss).backward()
        return loss, parts

    def _first_compiled_step(self):
        """:meth:`_forward_backward` through the compiled network, which compiles it. If that fails,
        one warning line says why and the step is redone eagerly, from the same random state, and
        the run goes on eagerly: a long run must not end at its first iteration for a compiler."""
        rng = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None)
        try:
            result = self._forward_backward()
        except Exception as err:  # noqa: BLE001 - whatever the compiler raises, eager training still works
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            logger.warning("train.compile=%s failed at the first step (%s: %s); training goes on eagerly",
                           self.compile_mode, type(err).__name__, reason)
            self.optimizer.zero_grad(set_to_none=True)
            torch.set_rng_state(rng[0])
            if rng[1] is not None:
                torch.cuda.set_rng_state(rng[1], self.device)
            self.use_compile("eager")
            self.compile_failed = f"{type(err).__name__}: {reason}"
            return self._forward_backward()
        self.compile_pending = False
        return result

    def _nonfinite_message(self, step):
        lr = self.opt["train"]["lr_G"]
        if self.precision == "fp16":
            cause = (f"fp16 overflow (try --set train.precision=bf16 or fp32) or a learning rate "
                     f"too high (train.lr_G={lr:g}; try a lower one or train.grad_clip)")
        else:
            cause = (f"a learning rate too high (train.lr_G={lr:g}; try a lower one or "
                     f"train.grad_clip) or broken input images")
        parts = ", ".join(f"{k}={v:.4g}" for k, v in self.log_dict.items() if k != "nonfinite_total")
        if self.last_checkpoint:
            resume = (f"last good checkpoint: {self.last_checkpoint} (resume from it with "
                      f"--set path.resume_state={self.last_checkpoint} and the changed option)")
        else:
            resume = "no good checkpoint saved yet (start again with the changed option)"
        return (f"train: {self.nonfinite_in_row} skipped steps in a row (non-finite loss or gradients; "
                f"iteration {step}: {parts}); likely cause: {cause}; {resume}")

    def resume_advice(self):
        """How to continue from :attr:`last_checkpoint`, for messages: ``--auto_resume`` picks the
        newest state, which is another one when it was saved during a run of skipped steps."""
        if self.last_checkpoint is None:
            return "start again (no checkpoint saved yet)"
        if self.last_checkpoint == self.last_saved:
            return f"continue with --auto_resume (from {self.last_checkpoint})"
        return f"continue with --set path.resume_state={self.last_checkpoint}"

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def test(self, lr):
        """Eval-mode forward (``z = mean`` unless the network samples at eval).

        Args:
            lr (Tensor): (B, 3, h, w) in [0, 1].

        Returns:
            KULNetOutput with float32 tensors.
        """
        self.net.eval()
        try:
            with self._autocast():
                out = self.net(lr.to(self.device))
        finally:
            self.net.train()
        return type(out)(*[None if t is None else t.float() for t in out])

    @torch.no_grad()
    def test_kernel(self, lr):
        """Eval-mode kernel estimate alone (the SR part does not run): lr (B, 3, h, w) -> (B, l, l) float32."""
        self.net.eval()
        try:
            with self._autocast():
                return self.net.estimate_kernel(lr.to(self.device))[0].float()
        finally:
            self.net.train()

    def get_current_log(self, reduce=False):
        """dict: the last iteration's losses (floats) and the count of skipped steps.

        Args:
            reduce (bool): average the values over the DDP ranks (a collective: call it on every
                rank); otherwise this rank's values.
        """
        if not reduce or self.world_size == 1 or not self.log_dict:
            return dict(self.log_dict)
        keys = list(self.log_dict)  # same order on every rank
        values = torch.tensor([float(self.log_dict[k]) for k in keys], dtype=torch.float64,
                              device=self.device)
        dist.all_reduce(values)
        values /= self.world_size
        out = dict(zip(keys, values.tolist()))
        out["nonfinite_total"] = self.nonfinite_total
        return out

    def get_current_learning_rate(self):
        return self.optimizer.param_groups[0]["lr"]

    # ------------------------------------------------------------------ checkpoints
    def _rng_state(self):
        np_state = np.random.get_state()
        state = {
            "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "degradation": self.generator.get_state(),
        }
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state):
        random.setstate(_tuplify(state["python"]))
        np_state = state["numpy"]
        np.random.set_state((np_state[0], np_state[1].numpy(), *np_state[2:]))
        torch.set_rng_state(state["torch"])
        self.generator.set_state(state["degradation"])
        if self.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def training_state(self, iteration, epoch):
        """The training state (call on every rank: RNG states are gathered to all ranks)."""
        rng = self._rng_state()
        if self.world_size > 1:  # gathered as bytes: pickled tensors do not travel reliably
            buf = io.BytesIO()
            torch.save(rng, buf)
            blobs = [None] * self.world_size
            dist.all_gather_object(blobs, buf.getvalue())
            rngs = [torch.load(io.BytesIO(b), weights_only=True) for b in blobs]
        else:
            rngs = [rng]
        return {
            "format": STATE_FORMAT,
            "iter": iteration,
            "epoch": epoch,
            "world_size": self.world_size,
            "batch_size": self.opt["datasets"]["train"]["batch_size"],
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "nonfinite_total": self.nonfinite_total,
            "weights": f"{iteration}_G.pth",
            "mode": self.mode,
        }

    def save(self, iteration, epoch, models_dir, state_dir, latest=False):
        """Save ``<iteration>_G.pth`` then ``<iteration>.state`` (both atomic). Call on every rank;
        only rank 0 writes.

        Returns:
            str | None: the state path (rank 0).
        """
        state = self.training_state(iteration, epoch)
        path = None
        if self.rank == 0:
            meta = {"iteration": iteration, "epoch": epoch, "options": self.opt.get("name")}
            weights = os.path.join(models_dir, f"{iteration}_G.pth")
            path = os.path.join(state_dir, f"{iteration}.state")
            try:
                save_network(self.net, weights, meta)
                if latest:
                    save_network(self.net, os.path.join(models_dir, "latest_G.pth"), meta)
                atomic_torch_save(state, path)
            except OSError as err:  # disk full, folder gone: the previous files are intact (atomic)
                raise KULNetError(f"saving the checkpoint of iteration {iteration} failed ({err.strerror or err}); "
                                  f"free space or fix {os.path.dirname(models_dir)}, then "
                                  f"{self.resume_advice()}") from None
            self.last_saved = path
            if self.nonfinite_in_row == 0:  # saved during a run of skipped steps: not called good
                self.last_checkpoint = path
        if self.world_size > 1:
            dist.barrier()
        return path

    def _apply_optimizer_options(self):
        """The options win over a resumed optimiser state: base lr (``train.lr_G``), betas, weight
        decay. Unchanged options change nothing (exact resume); a changed one is logged (lowering
        ``lr_G`` and resuming is the advice after non-finite losses)."""
        train_opt = self.opt["train"]
        for group in self.optimizer.param_groups:
            wanted = {"initial_lr": train_opt["lr_G"] * group.get("lr_mult", 1.0),
                      "betas": (train_opt["beta1"], train_opt["beta2"]), "weight_decay": train_opt["weight_decay_G"]}
            for key, value in wanted.items():
                old = tuple(group[key]) if key == "betas" else group.get(key)
                if old != value:
                    logger.warning("resume: %s %s in the training state, %s in the options: using the options",
                                   key, old, value)
                    group[key] = value

    def resume_training(self, state, weights_path):
        """Restore weights, optimiser, scheduler, scaler and this rank's RNG states; the optimiser
        options of ``opt`` (lr, betas, weight decay) replace those of the state."""
        load_network(self.net, weights_path, strict=True, expected_scale=self.scale)
        saved_mode = state.get("mode")
        fix = (f"resume with the train.mode of the state, or start a new run (another name) from its weights with "
               f"--set path.pretrain_model_G={weights_path}")
        if saved_mode not in (None, self.mode):
            raise KULNetError(f"{weights_path}: the training state was saved with train.mode {saved_mode}, the "
                              f"options say train.mode {self.mode}; {fix}")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as err:  # a state of another train.mode trains other parameters
            raise KULNetError(f"{weights_path}: the training state's optimiser does not fit this run's "
                              f"({one_line(err)}; was train.mode changed?); {fix}") from None
        _match_state_layouts(self.optimizer)
        self._apply_optimizer_options()
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when saved without fp16
            self.scaler.load_state_dict(state["scaler"])
        self.nonfinite_total = state.get("nonfinite_total", 0)
        rngs = state["rng"]
        if len(rngs) == self.world_size:
            self._set_rng_state(rngs[self.rank])
            return True
        return False  # different number of ranks: fresh per-rank seeds (not bit-exact)


def _tuplify(x):
    if isinstance(x, list):
        return tuple(_tuplify(v) for v in x)
    return x


def load_training_state(path):
    """Read a ``.state`` file (CPU tensors); a foreign or broken file is a one-line error."""
    if not os.path.isfile(path):
        raise KULNetError(f"{path}: training state not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise KULNetError(f"{path}: cannot read the training state ({type(err).__name__}); "
                          f"the file is broken, resume from an earlier one") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise KULNetError(f"{path}: not a KULNet training state (a weights file?); pass a .state file "
                          f"from experiments/<name>/training_state/")
    return state
