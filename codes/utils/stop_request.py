"""Stopping a training run cleanly between two iterations, so no work is lost.

A run stops at the end of the current iteration, saves a checkpoint and a training state there, and
can be continued with ``--auto_resume`` exactly as if it had not stopped, when:

- its wall-clock budget is spent (``--time_budget MINUTES``, for jobs with a time limit), or
- it receives SIGINT (Ctrl-C) or SIGTERM (``kill``, a cluster scheduler's pre-emption). A second
  signal of either kind interrupts at once, as usual.

Under DDP the ranks agree (an all-reduce of the flag each iteration), so every rank stops at the same
iteration.
"""
import atexit
import multiprocessing
import signal
import time

import torch
import torch.distributed as dist

EXIT_CODES = {None: 0, "SIGINT": 130, "SIGTERM": 143}


class StopRequest:
    """Tells the training loop when to stop.

    Args:
        budget_minutes (float | None): wall-clock budget from construction; None: no budget.
        world_size (int): DDP processes (the flag is all-reduced when > 1).
        device (torch.device): where the all-reduce tensor lives (the process group's device).
    """

    def __init__(self, budget_minutes=None, world_size=1, device=None):
        self.deadline = None if budget_minutes is None else time.monotonic() + 60.0 * budget_minutes
        self.world_size = world_size
        self.device = device or torch.device("cpu")
        self.signal_name = None
        self.reason = None
        self._previous = {}

    def install(self):
        """Catch SIGINT and SIGTERM (main thread only); returns self."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def uninstall(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum, frame):
        self.signal_name = signal.Signals(signum).name
        self.uninstall()  # a second signal acts at once (default behaviour)

    def should_stop(self):
        """True when this rank (or, under DDP, any rank) was asked to stop; sets :attr:`reason`."""
        local = self.signal_name is not None or (
            self.deadline is not None and time.monotonic() >= self.deadline)
        if self.world_size > 1:
            flag = torch.tensor([1.0 if local else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            local = bool(flag.item())
        if local and self.reason is None:
            self.reason = (f"{self.signal_name} received" if self.signal_name
                           else "time budget spent")
        return local

    @property
    def exit_code(self):
        """0 after a spent budget, 130 after SIGINT, 143 after SIGTERM."""
        return EXIT_CODES.get(self.signal_name, 1)


def ignore_stop_signals(worker_id=None):
    """``worker_init_fn`` for data-loader workers: leave SIGINT/SIGTERM to the main process.

    A signal sent to the whole process group (Ctrl-C, a scheduler's pre-emption) would otherwise kill
    the workers and the main process would fail with "DataLoader worker ... is killed" before it can
    save. The workers still end with the main process (the data loader's watchdog).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


_EXIT_HOOK = []


def stop_workers_at_exit():
    """Make sure workers started with :func:`ignore_stop_signals` end with the process.

    At interpreter exit, multiprocessing stops its daemonic children (data-loader workers) with
    SIGTERM and waits for them; workers that ignore SIGTERM would keep the process alive forever
    (seen after an error raised in a worker: the message was printed, the process never exited). This
    registers, once, an exit hook that runs before multiprocessing's and kills them (SIGKILL: they
    only read images, and the main process has finished with them).
    """
    if not _EXIT_HOOK:
        atexit.register(_kill_daemonic_children)
        _EXIT_HOOK.append(True)


def _kill_daemonic_children():
    children = [p for p in multiprocessing.active_children() if p.daemon]
    if children and hasattr(signal, "SIGCHLD"):  # the data loader's handler would call this a failure
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for process in children:
        process.kill()
    for process in children:
        process.join(timeout=5)
