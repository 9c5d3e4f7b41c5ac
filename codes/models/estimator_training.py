"""Pieces of training that concern the kernel estimator: the estimator as the trained network
(``train.mode: estimator``) and the optimiser's parameter groups (learning-rate multipliers).

Paper / reference: Fang et al., ECCV 2022, Sec. 3.1 (the estimator); MANet (Liang et al., ICCV 2021)
trains its estimator alone first; DCLS gives the estimator its own learning rate.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn as nn

# the layer that turns the latent into the 441 kernel logits (its own multiplier)
KERNEL_HEAD = "kernel_extra.Conv_tail.Conv_end."


class EstimatorOutput(NamedTuple):
    """What :class:`EstimatorStep` returns: :class:`models.modules.kulnet.KULNetOutput`'s fields (no SR
    image) and the per-pixel kernels, for the losses.

    Attributes:
        sr (None): no SR image (the losses skip the pixel term).
        kernel (Tensor): (B, l, l). mean, log_var (Tensor): (B, nf, h, w).
        kernel_map (Tensor | None): (B, l*l, h, w) per-pixel kernels, when asked for.
    """

    sr: None
    kernel: torch.Tensor
    mean: torch.Tensor
    log_var: torch.Tensor
    kernel_map: Optional[torch.Tensor] = None


class EstimatorStep(nn.Module):
    """The kernel estimator alone as the trained network (``train.mode: estimator``).

    Args:
        estimator (KernelEstimator): the network's ``kernel_extra``.
        kernel_map (bool): also return the per-pixel kernels (the ``map`` kernel loss needs them).
    """

    def __init__(self, estimator, kernel_map=False):
        super().__init__()
        self.estimator = estimator
        self.kernel_map = kernel_map

    def forward(self, lr):
        kernel, mean, log_var, kernel_map = self.estimator(lr, return_kernel_map=self.kernel_map)
        return EstimatorOutput(None, kernel, mean, log_var, kernel_map)


def parameter_groups(net, lr, estimator_lr_mult=1.0, kernel_head_lr_mult=1.0):
    """The optimiser's parameter groups: the trainable parameters of ``net`` with their learning rates.

    The estimator's parameters get ``lr * estimator_lr_mult``, its kernel head (the last convolution,
    :data:`KERNEL_HEAD`) ``lr * estimator_lr_mult * kernel_head_lr_mult``, the rest ``lr``. With both
    multipliers 1 (the paper) there is one group, as before multipliers existed.

    Args:
        net (KULNet): the network (frozen parameters are left out).
        lr (float): the base learning rate (``train.lr_G``).

    Returns:
        list[dict]: ``{'params': [...], 'lr': ..., 'lr_mult': ...}`` per non-empty group; ``lr_mult`` is
        the factor on the base rate that a schedule keeps.
    """
    if estimator_lr_mult == 1 and kernel_head_lr_mult == 1:
        return [{"params": [p for p in net.parameters() if p.requires_grad], "lr": lr, "lr_mult": 1.0}]
    groups = {1.0: [], float(estimator_lr_mult): [], float(estimator_lr_mult * kernel_head_lr_mult): []}
    for name, param in net.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith(KERNEL_HEAD):
            mult = float(estimator_lr_mult * kernel_head_lr_mult)
        elif name.startswith("kernel_extra."):
            mult = float(estimator_lr_mult)
        else:
            mult = 1.0
        groups[mult].append(param)
    return [{"params": params, "lr": lr * mult, "lr_mult": mult} for mult, params in groups.items() if params]
