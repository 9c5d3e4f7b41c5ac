"""Logging for training: a file + console logger, a message logger (iteration, lr, losses, timing,
ETA) and a TensorBoard writer. In DDP only rank 0 writes; the other ranks log warnings and errors.
"""
import datetime
import logging
import os
import time


class _TqdmHandler(logging.StreamHandler):
    """Console handler that writes through ``tqdm.write`` so progress bars are not broken."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # pragma: no cover - fall back to the plain handler
            super().emit(record)


def get_root_logger(name="kulnet", log_file=None, rank=0, level=logging.INFO, screen=True):
    """Configure and return the training logger.

    Args:
        name (str): logger name.
        log_file (str | None): also write to this file (rank 0 only).
        rank (int): DDP rank; ranks > 0 log only errors.
        level (int): logging level of rank 0.
        screen (bool): log to the console (stderr).
    """
    logger = logging.getLogger(name)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", datefmt="%y-%m-%d %H:%M:%S")
    logger.setLevel(level if rank == 0 else logging.ERROR)
    if screen:
        handler = _TqdmHandler()
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    if log_file and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = logging.FileHandler(log_file, mode="a")
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def init_tb_logger(log_dir):
    """A ``torch.utils.tensorboard.SummaryWriter`` (None when TensorBoard is not installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover
        logging.getLogger("kulnet").warning("tensorboard is not installed: no TensorBoard logs")
        return None
    return SummaryWriter(log_dir=log_dir)


def format_eta(seconds):
    return str(datetime.timedelta(seconds=int(max(0, seconds))))


class MessageLogger:
    """Formats one training log line and mirrors the scalars to TensorBoard.

    Args:
        total_iter (int): ``train.niter``.
        start_iter (int): the iteration the run (or the resume) starts from.
        logger (logging.Logger): where lines go.
        tb_logger (SummaryWriter | None): TensorBoard writer (rank 0), or None.
    """

    def __init__(self, total_iter, start_iter=0, logger=None, tb_logger=None):
        self.total_iter, self.start_iter = total_iter, start_iter
        self.logger = logger or logging.getLogger("kulnet")
        self.tb_logger = tb_logger
        self.start_time = time.time()

    def __call__(self, log):
        """Args:
            log (dict): ``epoch``, ``iter``, ``lr``, ``time`` (s/iter), ``data_time`` (s/iter) and
                loss values (floats).

        Returns:
            str: the line written.
        """
        log = dict(log)
        epoch, it, lr = log.pop("epoch"), log.pop("iter"), log.pop("lr")
        iter_time, data_time = log.pop("time", None), log.pop("data_time", None)
        msg = f"[epoch:{epoch:4d}, iter:{it:8,d}, lr:{lr:.3e}]"
        if iter_time is not None:
            done = max(1, it - self.start_iter)
            eta = (time.time() - self.start_time) / done * (self.total_iter - it)
            msg += f" [eta: {format_eta(eta)}, time(data): {iter_time:.3f}s ({data_time:.3f}s)]"
        for key, value in log.items():
            if isinstance(value, float):
                msg += f" {key}: {value:.6e}"
            else:
                msg += f" {key}: {value}"
            if self.tb_logger is not None:
                self.tb_logger.add_scalar(f"losses/{key}", value, it)
        if self.tb_logger is not None:
            self.tb_logger.add_scalar("lr", lr, it)
        self.logger.info(msg)
        return msg
