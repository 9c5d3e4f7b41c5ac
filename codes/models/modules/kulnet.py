"""KULNet: uncertainty-learning kernel estimator + DLSM unfolded SR network.

Paper / reference: Z. Fang, W. Dong, X. Li, J. Wu, L. Li, G. Shi, "Uncertainty Learning in Kernel
Estimation for Multi-Stage Blind Image Super-Resolution", ECCV 2022.

State-dict keys equal the authors' ``latest_G.pth`` (``kernel_extra.*``, ``SR_net.*``): 126 tensors,
2,888,515 parameters at the default widths.
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
    """

    def __init__(self, scale=4, kernel_size=21, in_nc=3, est_nf=64, sr_nf=32, n_stages=4,
                 sample_at_eval=False):
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
        self.kernel_extra = KernelEstimator(in_nc, est_nf, kernel_size, sample_at_eval)
        self.SR_net = DLSM(scale, in_nc, sr_nf, n_stages)

    @property
    def channels_last(self):
        """bool | None: channels-last convolutions (speed only, not in the state_dict).

        None (default): the DLSM U-Net in channels-last on the CPU only; True/False: both parts.
        """
        return self.SR_net.channels_last

    @channels_last.setter
    def channels_last(self, value):
        self.SR_net.channels_last = value
        self.kernel_extra.channels_last = value

    @property
    def blur_impl(self):
        """str: the DLSM blur, ``'auto'`` (FFT on the CPU at large sizes), ``'direct'``, ``'fft'`` or
        ``'transposed'`` (the literal transposed convolution for ``Aᵀ``; see :mod:`models.modules.operators`)."""
        return self.SR_net.blur_impl

    @blur_impl.setter
    def blur_impl(self, value):
        from models.modules.operators import BLUR_IMPLS

        if value not in BLUR_IMPLS:
            raise KULNetError(f"blur_impl={value!r}: choose one of {BLUR_IMPLS}")
        self.SR_net.blur_impl = value

    def use_plain_path(self):
        """Switch off every speed/memory option (direct blur with ``Aᵀ`` as a literal transposed
        convolution, contiguous layout, literal dense fusion and decoder concatenations, unbanded
        estimator tail): the reference numerics.

        Returns:
            KULNet: self.
        """
        self.blur_impl = "transposed"
        self.channels_last = False
        self.match_weight_layout()
        return self.set_memory_options(False)

    def match_weight_layout(self, device=None):
        """Store each part's convolution weights in the memory format of the maps they convolve on
        ``device``: channels-last where :attr:`channels_last` runs that part channels-last there
        (the DLSM U-Net on the CPU and CUDA, the estimator on CUDA by default), contiguous elsewhere.

        Speed only; values, state_dict keys and shapes are unchanged (checkpoints are saved
        contiguous). With a weight in the other layout, autograd converts each of its gradients
        back to the parameter's layout (``AccumulateGrad``; 58 copies a x4 step, counted on the
        CPU), and cuDNN takes weights in the input's layout, so it is expected to convert the
        weight at every convolution, forward and backward (not measured on a GPU yet). Call it after
        moving the network or changing :attr:`channels_last` (the training wrapper and the test
        scripts' loader do); the parameters stay the same objects.

        Args:
            device (torch.device | str | None): where the network will run (default: where its
                parameters are).

        Returns:
            KULNet: self.
        """
        device = torch.device(device) if device is not None else next(self.parameters()).device
        # the DLSM's ``conv`` and ``Den_con*`` act on 3-channel NCHW stage estimates (or are composed): left as they are
        parts = ((self.kernel_extra, (self.kernel_extra,)), (self.SR_net, (self.SR_net.Encoding, self.SR_net.Decoding)))
        for part, modules in parts:
            layout = torch.channels_last if part._use_channels_last(device) else torch.contiguous_format
            for module in modules:
                module.to(memory_format=layout)
        return self

    def set_memory_options(self, enabled):
        """Turn the memory options on (the default) or off: the composed-weight dense fusion, the
        split decoder concatenations and the banded estimator tail. Each equals the literal network
        to float rounding; they lower the peak memory of inference and add operators to a training
        step (x4, batch > 1: 96 ATen compute operators more per step, 1,174 against 1,078 when
        counted on 2026-11-26; ``benchmarks/op_count.py``).

        Returns:
            KULNet: self.
        """
        self.SR_net.fused_dense = bool(enabled)
        self.SR_net.Decoding.split_concat = bool(enabled)
        self.kernel_extra.tail_band_rows = None if enabled else 0
        return self

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
