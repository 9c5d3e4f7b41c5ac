"""KULNet: uncertainty-learning kernel estimator + DLSM unfolded SR network.

Paper / reference: Z. Fang, W. Dong, X. Li, J. Wu, L. Li, G. Shi, "Uncertainty Learning in Kernel
Estimation for Multi-Stage Blind Image Super-Resolution", ECCV 2022.

State-dict keys equal the authors' ``latest_G.pth`` (``kernel_extra.*``, ``SR_net.*``): 126 tensors,
2,888,515 parameters at the default widths. This is the literal network (the paper's order of
operations); ``models.fast.accelerate(net, device)`` gives it its fast forms, with the same weights.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn as nn

from models.modules.dlsm import DLSM
from models.modules.kernel_estimator import KernelEstimator
from utils.errors import KULNetError


class KULNetOutput(NamedTuple):
    """Result of :meth:`KULNet.forward`.

    Attributes:
        sr (Tensor): (B, 3, s*h, s*w) restored image, about [0, 1] (not clamped).
        kernel (Tensor): (B, l, l) estimated (or given) kernel, >= 0, sums to 1.
        mean (Tensor | None): (B, 64, h, w) latent mean; None on the non-blind path.
        log_var (Tensor | None): (B, 64, h, w) latent log-"variance" (exp(log_var) is the std, quirk);
            None on the non-blind path.
    """

    sr: torch.Tensor
    kernel: torch.Tensor
    mean: Optional[torch.Tensor]
    log_var: Optional[torch.Tensor]


class KULNet(nn.Module):
    """Blind SR network.

    Args:
        scale (int): SR factor s (2, 3, 4 in the paper).
        kernel_size (int): l, odd kernel side (21).
        in_nc (int): image channels (3).
        est_nf (int): kernel-estimator width (64).
        sr_nf (int): DLSM width (32).
        n_stages (int): DLSM stages T (4).
        sample_at_eval (bool): sample the latent in eval mode as the authors' test code does;
            False (default) makes eval deterministic (``z = mean``).
        estimator_input (str): what the kernel estimator sees: ``'image'`` (the paper) or
            ``'contrast'`` (:func:`models.modules.kernel_estimator.local_contrast`).
    """

    def __init__(self, scale=4, kernel_size=21, in_nc=3, est_nf=64, sr_nf=32, n_stages=4,
                 sample_at_eval=False, estimator_input="image"):
        super().__init__()
        for name, value in (("scale", scale), ("kernel_size", kernel_size), ("in_nc", in_nc),
                            ("est_nf", est_nf), ("sr_nf", sr_nf), ("n_stages", n_stages)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                where = name if name in ("scale", "kernel_size") else f"network_G.{name}"
                raise KULNetError(f"{where}={value!r}: must be a positive integer")
        if kernel_size % 2 == 0:
            raise KULNetError(f"kernel_size={kernel_size}: must be odd (21 in the paper)")
        self.scale = scale
        self.kernel_size = kernel_size
        if estimator_input not in ("image", "contrast"):
            raise KULNetError(f"network_G.estimator_input={estimator_input!r}: choose image (the paper) or contrast")
        self.kernel_extra = KernelEstimator(in_nc, est_nf, kernel_size, sample_at_eval, estimator_input)
        self.SR_net = DLSM(scale, in_nc, sr_nf, n_stages)

    @property
    def sample_at_eval(self):
        """bool: whether the latent is sampled in eval mode (the authors' behaviour)."""
        return self.kernel_extra.sample_at_eval

    @sample_at_eval.setter
    def sample_at_eval(self, value):
        self.kernel_extra.sample_at_eval = bool(value)

    def estimate_kernel(self, lr, return_kernel_map=False):
        """Estimate the blur kernel of each image.

        Args:
            lr (Tensor): (B, 3, h, w) LR image in [0, 1].
            return_kernel_map (bool): also return the per-pixel kernels.

        Returns:
            tuple: kernel (B, l, l) float32, >= 0, sums to 1; mean (B, est_nf, h, w);
            log_var (B, est_nf, h, w); and, on request, kernel_map (B, l*l, h, w).
        """
        kernel, mean, log_var, kernel_map = self.kernel_extra(lr, return_kernel_map=return_kernel_map)
        if return_kernel_map:
            return kernel, mean, log_var, kernel_map
        return kernel, mean, log_var

    def restore(self, lr, kernel):
        """Non-blind restoration with the given kernels.

        Args:
            lr (Tensor): (B, 3, h, w) in [0, 1].
            kernel (Tensor): (B, l, l), sums to 1.

        Returns:
            Tensor: (B, 3, s*h, s*w).
        """
        return self.SR_net(lr, kernel)

    def forward(self, lr, kernel=None):
        """Blind SR (``kernel`` None) or the non-blind baseline (``kernel`` given; estimator skipped).

        Args:
            lr (Tensor): (B, 3, h, w) LR image in [0, 1], h, w >= 16 recommended (any size runs).
            kernel (Tensor | None): (B, l, l) known kernels.

        Returns:
            KULNetOutput: sr (B, 3, s*h, s*w), kernel (B, l, l), mean, log_var.
        """
        if kernel is not None:
            return KULNetOutput(self.restore(lr, kernel), kernel, None, None)
        kernel, mean, log_var = self.estimate_kernel(lr)
        return KULNetOutput(self.restore(lr, kernel), kernel, mean, log_var)
