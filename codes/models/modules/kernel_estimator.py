"""Uncertainty-learning kernel estimator: a small U-Net that predicts one blur kernel per image.

Paper / reference: Z. Fang et al., "Uncertainty Learning in Kernel Estimation for Multi-Stage Blind
Image Super-Resolution", ECCV 2022, Sec. 3.1 (kernel estimation with a latent Gaussian variable).

Attribute names reproduce the authors' checkpoint keys (prefix ``kernel_extra.`` inside KULNet).
Default PyTorch initialisation (as the authors). This file is the literal network;
:mod:`models.fast` swaps in faster forms of some of its methods.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(in_ch, out_ch, stride=1):
    """3x3 convolution with padding 1."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """``x + conv(ReLU(conv(ReLU(x))))``; ``body.1`` and ``body.3`` are the two convolutions."""

    def __init__(self, nf):
        super().__init__()
        # the first ReLU must not be in place (x is added back); the second acts on a conv output
        self.body = nn.Sequential(nn.ReLU(), conv3x3(nf, nf), nn.ReLU(inplace=True), conv3x3(nf, nf))

    def forward(self, x):
        return x + self.body(x)


class EncodingBlock(nn.Module):
    """conv in->nf, two residual blocks, ReLU (the skip); stride-2 conv gives the block's output."""

    def __init__(self, in_ch, nf):
        super().__init__()
        self.Conv_head = conv3x3(in_ch, nf)
        self.ResBlock1 = ResBlock(nf)
        self.ResBlock2 = ResBlock(nf)
        self.downsample = conv3x3(nf, nf, stride=2)

    def forward(self, x):
        """(B, in, H, W) -> (down (B, nf, ceil(H/2), ceil(W/2)), skip (B, nf, H, W))."""
        skip = F.relu(self.ResBlock2(self.ResBlock1(self.Conv_head(x))), inplace=True)
        return self.downsample(skip), skip


class DecodingBlock(nn.Module):
    """Transposed conv to the skip's size, concat [up, skip], conv 2nf->nf, two residual blocks, ReLU."""

    def __init__(self, nf):
        super().__init__()
        self.Conv_t = nn.ConvTranspose2d(nf, nf, 3, stride=2, padding=1)
        self.Conv_head = conv3x3(2 * nf, nf)
        self.ResBlock1 = ResBlock(nf)
        self.ResBlock2 = ResBlock(nf)

    def forward(self, x, skip):
        """x (B, nf, ceil(H/2), ceil(W/2)), skip (B, nf, H, W) -> (B, nf, H, W)."""
        up = self.Conv_t(x, output_size=skip.shape[-2:])
        out = self.Conv_head(torch.cat([up, skip], dim=1))
        return F.relu(self.ResBlock2(self.ResBlock1(out)), inplace=True)


class ConvMid(nn.Module):
    """Five times (conv nf->nf, ReLU)."""

    def __init__(self, nf, n_convs=5):
        super().__init__()
        layers = []
        for _ in range(n_convs):
            layers += [conv3x3(nf, nf), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


ESTIMATOR_INPUTS = ("image", "contrast")
CONTRAST_WINDOW = 9  # pixels a side of the local statistics
CONTRAST_FLOOR = 0.02  # the smallest local standard deviation divided by: flat areas are not amplified


def local_contrast(lr, window=CONTRAST_WINDOW, floor=CONTRAST_FLOOR):
    """Each channel minus its local mean, over its local standard deviation (``window`` x ``window``
    windows, replicated borders; the deviation floored at ``floor``).

    Blur shows as fine detail relative to the local contrast; this input takes the contrast out, so
    the estimator need not learn to divide by it.

    Args:
        lr (Tensor): (B, C, h, w) in [0, 1].

    Returns:
        Tensor: (B, C, h, w), about zero mean and unit spread where the image is not flat.
    """
    pad = window // 2
    padded = F.pad(lr, (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(padded, window, stride=1)
    var = (F.avg_pool2d(padded * padded, window, stride=1) - mean * mean).clamp_min(0)
    return (lr - mean) / torch.sqrt(var + floor * floor)


class ConvTail(nn.Module):
    """Latent heads (``mean`` with ReLU, ``log_var`` linear) and the per-pixel kernel logits."""

    def __init__(self, nf, kernel_size):
        super().__init__()
        self.mean = nn.Sequential(conv3x3(nf, nf), nn.ReLU(inplace=True))
        self.log_var = nn.Sequential(conv3x3(nf, nf))
        self.Conv_end = conv3x3(nf, kernel_size * kernel_size)


class KernelEstimator(nn.Module):
    """U-Net predicting a per-pixel kernel map and its spatial mean, the image's kernel.

    Args:
        in_nc (int): input channels (3).
        nf (int): feature width (64 in the paper).
        kernel_size (int): l, kernel side (21).
        sample_at_eval (bool): sample the latent in eval mode too (the authors' test code does);
            default False gives the deterministic ``z = mean``.
        estimator_input (str): ``'image'`` (the paper: the LR image itself) or ``'contrast'`` (the LR
            image through :func:`local_contrast`; no new weights, but weights trained with one input
            do not work with the other).

    ``sample_in_training`` (default True, the paper) can be set False to train with ``z = mean``.
    """

    def __init__(self, in_nc=3, nf=64, kernel_size=21, sample_at_eval=False, estimator_input="image"):
        super().__init__()
        if estimator_input not in ESTIMATOR_INPUTS:
            raise ValueError(f"estimator_input={estimator_input!r}: choose one of {ESTIMATOR_INPUTS}")
        self.estimator_input = estimator_input
        self.kernel_size = kernel_size
        self.sample_at_eval = sample_at_eval
        self.sample_in_training = True
        self.Encoding_Block1 = EncodingBlock(in_nc, nf)
        self.Encoding_Block2 = EncodingBlock(nf, nf)
        self.Conv_mid = ConvMid(nf)
        self.Decoding_Block1 = DecodingBlock(nf)
        self.Decoding_Block2 = DecodingBlock(nf)
        self.Conv_tail = ConvTail(nf, kernel_size)

    def features(self, lr):
        """The U-Net: (B, in_nc, h, w) -> (B, nf, h, w)."""
        down1, skip1 = self.Encoding_Block1(lr)
        down2, skip2 = self.Encoding_Block2(down1)
        feat = self.Decoding_Block1(self.Conv_mid(down2), skip2)
        return self.Decoding_Block2(feat, skip1)

    def latent(self, mean, log_var):
        """``z = mean + ε·exp(log_var)`` in training (unless ``sample_in_training`` is off) and with
        ``sample_at_eval``, else ``mean``."""
        if not ((self.training and self.sample_in_training) or self.sample_at_eval):
            return mean
        # quirk (authors): exp(log_var) is used as the standard deviation, not exp(log_var / 2).
        # contiguous noise: the same numbers at the same pixels whatever the layout of ``mean``
        noise = torch.randn_like(mean, memory_format=torch.contiguous_format)
        return mean + noise * torch.exp(log_var)

    def kernels_from_latent(self, z, return_kernel_map):
        """Per-pixel kernels (softmax over the l*l logits) and their spatial mean.

        Returns:
            tuple: kernel (B, l, l) float32, >= 0, sums to 1; kernel map (B, l*l, h, w) or None.
        """
        # softmax in float32 so the kernel sums to 1 under bf16/fp16 autocast too.
        kernel_map = F.softmax(self.Conv_tail.Conv_end(z).float(), dim=1)
        kernel = kernel_map.mean(dim=(2, 3)).view(-1, self.kernel_size, self.kernel_size)
        return kernel, kernel_map if return_kernel_map else None

    def forward(self, lr, return_kernel_map=True):
        """Estimate the kernels.

        Args:
            lr (Tensor): (B, in_nc, h, w) noisy LR image in [0, 1], any h, w >= 1.
            return_kernel_map (bool): False returns None instead of the per-pixel kernels.

        Returns:
            tuple: kernel (B, l, l) >= 0 summing to 1; mean (B, nf, h, w) >= 0; log_var (B, nf, h, w);
            kernel_map (B, l*l, h, w) per-pixel kernels (softmax over channels), or None.
        """
        feat = self.features(local_contrast(lr) if self.estimator_input == "contrast" else lr)
        mean = self.Conv_tail.mean(feat)
        log_var = self.Conv_tail.log_var(feat)
        kernel, kernel_map = self.kernels_from_latent(self.latent(mean, log_var), return_kernel_map)
        return kernel, mean, log_var, kernel_map
