"""Learning-rate schedules as pure functions of the iteration (exact on resume).

The lr of iteration ``t`` (1-based, the authors update the schedule before each step) is
``base_lr * factor(t)``. Because the factor depends on ``t`` alone, a resumed run has the same lr
at every step as an uninterrupted one.
"""
import bisect
import math


class IterationLR:
    """Sets the optimizer's lr from the iteration number.

    Args:
        optimizer (torch.optim.Optimizer): its param groups' ``initial_lr`` is the base lr.
        scheme (str): 'MultiStepLR' (factor ``gamma ** #{m in milestones: m <= t}``) or
            'CosineAnnealingRestartLR' (cycles of length ``periods[i]``, peak ``weights[i]``,
            cosine down to ``eta_min``).
        milestones (list[int]), gamma (float): multi-step parameters (authors: 120k..480k, 0.5).
        periods (list[int]), weights (list[float]), eta_min (float): cosine parameters.
        warmup_iter (int): linear warm-up ``t / warmup_iter`` for ``t < warmup_iter`` (0: none).
    """

    def __init__(self, optimizer, scheme="MultiStepLR", milestones=(), gamma=0.5, periods=None,
                 weights=None, eta_min=1e-7, warmup_iter=0):
        self.optimizer = optimizer
        self.scheme = scheme
        self.milestones = sorted(milestones or [])
        self.gamma = gamma
        self.periods = list(periods or [])
        self.weights = list(weights or [1.0] * len(self.periods))
        self.eta_min = eta_min
        self.warmup_iter = warmup_iter
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.last_iter = 0

    def lr_at(self, t, base_lr):
        """Learning rate of iteration ``t`` (1-based) for a group with base lr ``base_lr``."""
        if self.scheme == "MultiStepLR":
            lr = base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)
        else:
            start = 0
            lr = self.eta_min
            for period, weight in zip(self.periods, self.weights):
                if t <= start + period:
                    peak = base_lr * weight
                    lr = self.eta_min + (peak - self.eta_min) * 0.5 * (
                        1 + math.cos(math.pi * (t - start) / period))
                    break
                start += period
        if self.warmup_iter > 0 and t < self.warmup_iter:
            lr = lr * t / self.warmup_iter
        return lr

    def step(self, t):
        """Set the lr of every param group for iteration ``t``."""
        self.last_iter = t
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(t, group["initial_lr"])

    def get_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_iter": self.last_iter, "scheme": self.scheme}

    def load_state_dict(self, state):
        self.step(state["last_iter"])
