"""KULNet training losses.

Paper / reference: Fang et al., "Uncertainty Learning in Kernel Estimation for Multi-Stage Blind
Image Super-Resolution", ECCV 2022.

All losses are computed in float32 (inputs are cast), so they are safe under fp16/bf16 autocast.
"""
import torch
import torch.nn.functional as F


def pixel_loss(sr, hr):
    """L1 between the SR result and the HR image (mean over all elements).

    Args:
        sr (Tensor): (B, 3, sH, sW), in [0, 1] (approximately).
        hr (Tensor): (B, 3, sH, sW), in [0, 1].
    """
    return F.l1_loss(sr.float(), hr.float())


def kernel_loss(k_est, k_true, lr_hw, scale):
    """The authors' kernel loss value, computed without building the repeated tensors.

    The authors repeat both kernels h*w*s^2 times, multiply by 1e4, take the mean L1 and divide by
    h*w*s^2. Repeating does not change a mean, so the value is ``1e4*mean|k_est-k_true|/(h*w*s^2)``
    (quirk kept: the effective weight depends on the patch size and the scale).

    Args:
        k_est (Tensor): (B, l, l) estimated kernels.
        k_true (Tensor): (B, l, l) true kernels.
        lr_hw (tuple[int, int]): LR patch size (h, w).
        scale (int): SR scale s.
    """
    h, w = lr_hw
    return 1e4 * F.l1_loss(k_est.float(), k_true.float()) / (h * w * scale * scale)


def kernel_l1_distance(k_est, k_true):
    """The L1 distance between each estimated and true kernel (sum over the l*l entries), mean over the
    batch: in [0, 2], whatever the patch size and the scale (the ``l1`` kernel loss).

    Args:
        k_est (Tensor): (B, l, l). k_true (Tensor): (B, l, l).
    """
    return (k_est.float() - k_true.float()).abs().sum(dim=(-2, -1)).mean()


def kernel_map_l1(kernel_map, k_true):
    """The L1 distance between every pixel's kernel and its image's true kernel (sum over the l*l
    entries), mean over the pixels and the batch: in [0, 2] (the ``map`` kernel loss, as MANet trains
    its estimator on the per-pixel kernel maps).

    Args:
        kernel_map (Tensor): (B, l*l, h, w) per-pixel kernels (each sums to 1).
        k_true (Tensor): (B, l, l).
    """
    target = k_true.float().flatten(1)[:, :, None, None]
    return (kernel_map.float() - target).abs().sum(dim=1).mean()


def kl_loss(mean, log_var, free_bits=0.0):
    """KL term of the latent, mean over all elements (no weight applied).

    ``exp(log_var)`` is the standard deviation (authors' quirk), hence ``2*log_var`` below.

    Args:
        mean (Tensor): (B, C, h, w).
        log_var (Tensor): (B, C, h, w).
        free_bits (float): > 0: each channel's KL (its mean over the batch and the pixels) counts only
            above this floor, so channels are not pushed below it (free bits); 0: the plain mean.
    """
    mean, log_var = mean.float(), log_var.float()
    kl = -0.5 * (1 + 2 * log_var - mean.pow(2) - torch.exp(2 * log_var))
    if free_bits > 0:
        return kl.mean(dim=(0, 2, 3)).clamp_min(free_bits).mean()
    return torch.mean(kl)


def lr_consistency_loss(hr, k_est, lr_clean, scale):
    """L1 between the clean LR and the HR degraded with the estimated kernel (optional, off in the released settings).

    Uses the data pipeline's blur (replicate padding, correlation) and subsampling.

    Args:
        hr (Tensor): (B, 3, H, W) in [0, 1].
        k_est (Tensor): (B, l, l) estimated kernels.
        lr_clean (Tensor): (B, 3, H/s, W/s) noise-free LR in [0, 1].
        scale (int): s.
    """
    from data.degradation import blur, subsample

    redegraded = subsample(blur(hr.float(), k_est.float()), scale)
    return F.l1_loss(redegraded, lr_clean.float())


KERNEL_LOSSES = ("authors", "l1", "map")


class KULNetLoss:
    """The weighted sum of the paper's losses with the authors' default weights.

    Args:
        scale (int): s.
        pixel_weight, kernel_weight, kl_weight (float): weights (1, 1, 1e-3 by default).
        kernel_loss (str): ``'authors'`` (:func:`kernel_loss`, whose effective weight falls with the
            patch size and the scale), ``'l1'`` (:func:`kernel_l1_distance`) or ``'map'``
            (:func:`kernel_map_l1`, needs the output's ``kernel_map``).
        kl_free_bits (float): the floor of each latent channel's KL (:func:`kl_loss`; 0: none).
        kl_warmup_iter (int): the KL weight grows linearly from 0 to its value over this many
            iterations (:meth:`set_iteration`; 0: the full weight from the start).
        lr_consistency_weight (float): weight of the LR-consistency L1 (0: off, the default).
        kl_weight_lr_consistency (float): KL weight used instead of ``kl_weight`` when the
            LR-consistency branch is on (the authors use 1e-4 there).
    """

    def __init__(self, scale, pixel_weight=1.0, kernel_weight=1.0, kl_weight=1e-3,
                 lr_consistency_weight=0.0, kl_weight_lr_consistency=1e-4, kernel_loss="authors",
                 kl_free_bits=0.0, kl_warmup_iter=0):
        if kernel_loss not in KERNEL_LOSSES:
            raise ValueError(f"kernel_loss={kernel_loss!r}: choose one of {KERNEL_LOSSES}")
        self.scale = scale
        self.kernel_loss = kernel_loss
        self.pixel_weight = pixel_weight
        self.kernel_weight = kernel_weight
        self.lr_consistency_weight = lr_consistency_weight
        self.kl_weight = kl_weight_lr_consistency if lr_consistency_weight > 0 else kl_weight
        self.kl_free_bits, self.kl_warmup_iter = float(kl_free_bits), int(kl_warmup_iter)
        self.kl_factor = 1.0

    def set_iteration(self, step):
        """Scale the KL weight for iteration ``step`` (1-based) of a KL warm-up."""
        self.kl_factor = min(1.0, step / self.kl_warmup_iter) if self.kl_warmup_iter > 0 else 1.0

    def part_names(self, with_sr):
        """The names of the parts :meth:`__call__` returns (``with_sr``: the output has an SR image)."""
        names = [("l_pix", self.pixel_weight > 0 and with_sr), ("l_ker", self.kernel_weight > 0),
                 ("l_kl", self.kl_weight > 0), ("l_lr", self.lr_consistency_weight > 0)]
        return [name for name, on in names if on]

    def __call__(self, out, hr, k_true, lr_clean=None):
        """Args:
            out (KULNetOutput): network output (sr, kernel, mean, log_var).
            hr (Tensor): (B, 3, H, W); k_true (Tensor): (B, l, l);
            lr_clean (Tensor): (B, 3, h, w), needed only for the LR-consistency branch.

        Returns:
            (Tensor, dict[str, Tensor]): total loss (scalar, float32) and its detached parts.
        """
        parts = {}
        total = 0.0
        if self.pixel_weight > 0 and out.sr is not None:  # no SR when the estimator trains alone
            parts["l_pix"] = self.pixel_weight * pixel_loss(out.sr, hr)
            total = total + parts["l_pix"]
        lr_hw = (hr.shape[-2] // self.scale, hr.shape[-1] // self.scale)
        if self.kernel_weight > 0:
            if self.kernel_loss == "l1":
                parts["l_ker"] = self.kernel_weight * kernel_l1_distance(out.kernel, k_true)
            elif self.kernel_loss == "map":
                parts["l_ker"] = self.kernel_weight * kernel_map_l1(out.kernel_map, k_true)
            else:
                parts["l_ker"] = self.kernel_weight * kernel_loss(out.kernel, k_true, lr_hw, self.scale)
            total = total + parts["l_ker"]
        if self.kl_weight > 0 and out.mean is not None:
            parts["l_kl"] = self.kl_factor * self.kl_weight * kl_loss(out.mean, out.log_var, self.kl_free_bits)
            total = total + parts["l_kl"]
        if self.lr_consistency_weight > 0:
            if lr_clean is None:
                raise ValueError("lr_consistency needs the clean LR")
            parts["l_lr"] = self.lr_consistency_weight * lr_consistency_loss(
                hr, out.kernel, lr_clean, self.scale)
            total = total + parts["l_lr"]
        return total, {k: v.detach() for k, v in parts.items()}
