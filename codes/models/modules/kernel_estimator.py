"""Uncertainty-learning kernel estimator: a small U-Net that predicts one blur kernel per image.

Paper / reference: Z. Fang et al., "Uncertainty Learning in Kernel Estimation for Multi-Stage Blind
Image Super-Resolution", ECCV 2022, Sec. 3.1 (kernel estimation with a latent Gaussian variable).

Attribute names reproduce the authors' checkpoint keys (prefix ``kernel_extra.`` inside KULNet), see
``../shared/reference/reference_checkpoint_keys.tsv``. Default PyTorch initialisation (as the authors).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# Banded tail (no-grad inference only): a band of rows is sized so that its float32 logits stay under
# this many bytes; images whose whole logits fit run the plain tail.
TAIL_BAND_BYTES = 256 * 2 ** 20


def tail_band_rows(batch, n_logits, height, width, budget=None):
    """Rows per band of the banded tail: the most rows whose (batch, n_logits, rows, width) float32
    logits fit in ``budget`` bytes (default ``TAIL_BAND_BYTES``), at least 1, capped at ``height``."""
    budget = TAIL_BAND_BYTES if budget is None else budget
    per_row = max(1, batch * n_logits * width * 4)
    return max(1, min(height, int(budget) // per_row))


def banded_mean_softmax(z, conv, rows):
    """Spatial mean of ``softmax(conv(z))`` over channels, computed in bands of ``rows`` rows.

    Equals ``F.softmax(conv(z).float(), 1).mean(dim=(2, 3))`` to float rounding, but only one band's
    logits and softmax ((B, C_out, rows, w) each) exist at a time instead of the full (B, C_out, h, w)
    map. Each band reads a 1-row halo of ``z`` above and below for the 3x3 convolution; at the image
    borders the halo is the zero padding of the plain convolution. The loop bounds depend on shapes
    only (``torch.compile`` unrolls it).

    Args:
        z (Tensor): (B, C_in, h, w) latent, any float dtype (autocast applies to the convolution).
        conv (nn.Conv2d): 3x3, stride 1, padding 1 convolution C_in -> C_out.
        rows (int): rows per band, >= 1 (values >= h give one band).

    Returns:
        Tensor: (B, C_out) float32, >= 0, each row summing to 1.
    """
    h, w = z.shape[-2:]
    rows = max(1, min(int(rows), h))
    total = None
    for r0 in range(0, h, rows):
        r1 = min(r0 + rows, h)
        a, b = max(r0 - 1, 0), min(r1 + 1, h)
        # zero rows where the halo falls outside the image (the plain conv's padding 1)
        band = F.pad(z[:, :, a:b], (0, 0, 1 if r0 == 0 else 0, 1 if r1 == h else 0))
        logits = F.conv2d(band, conv.weight, conv.bias, stride=1, padding=(0, 1))
        part = F.softmax(logits.float(), dim=1).sum(dim=(2, 3))
        total = part if total is None else total + part
    return total / (h * w)


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

    Speed attribute (not in the state_dict): ``channels_last`` (bool | None) runs the convolutions
    in channels-last memory format; None (default) means on for CUDA (measured on an H100 together
    with the SR part's option, see ``DLSM``) and off elsewhere (no gain on 2 CPU cores for this part).
    The outputs are returned contiguous either way and equal the plain path to float rounding.

    Memory attribute (not in the state_dict): ``tail_band_rows`` (int | None). The tail's logits
    and softmax are (B, l*l, h, w) each (about 7 GB each at l=21 and a 2000x2000 LR), but without
    the kernel map only their spatial mean is needed; :func:`banded_mean_softmax` computes it in
    bands of rows. Used only when autograd is off (``torch.no_grad`` / ``torch.inference_mode``),
    the kernel map is not requested and there is more than one band; training and the kernel-map
    path are always plain. None (default): automatic, bands whose logits stay under
    ``TAIL_BAND_BYTES`` (256 MiB), i.e. plain up to about 150k LR pixels at B=1; a positive int:
    that many rows per band; 0 (or negative): off, the plain tail (``KULNet.use_plain_path`` sets
    0). The kernel equals the plain path's to float rounding.
    """

    def __init__(self, in_nc=3, nf=64, kernel_size=21, sample_at_eval=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.sample_at_eval = sample_at_eval
        self.channels_last = None
        self.tail_band_rows = None
        self.Encoding_Block1 = EncodingBlock(in_nc, nf)
        self.Encoding_Block2 = EncodingBlock(nf, nf)
        self.Conv_mid = ConvMid(nf)
        self.Decoding_Block1 = DecodingBlock(nf)
        self.Decoding_Block2 = DecodingBlock(nf)
        self.Conv_tail = ConvTail(nf, kernel_size)

    def _use_channels_last(self, device):
        """Whether the convolutions run channels-last on ``device`` (torch.device)."""
        if self.channels_last is None:
            return device.type == "cuda"
        return bool(self.channels_last)

    def forward(self, lr, return_kernel_map=True):
        """Estimate the kernels.

        Args:
            lr (Tensor): (B, in_nc, h, w) noisy LR image in [0, 1], any h, w >= 1.
            return_kernel_map (bool): False returns None instead of the per-pixel kernels (saves
                a copy of that (B, l*l, h, w) map).

        Returns:
            tuple: kernel (B, l, l) >= 0 summing to 1; mean (B, nf, h, w) >= 0; log_var (B, nf, h, w);
            kernel_map (B, l*l, h, w) per-pixel kernels (softmax over channels).
        """
        use_cl = self._use_channels_last(lr.device)
        if use_cl:
            lr = lr.contiguous(memory_format=torch.channels_last)
        down1, skip1 = self.Encoding_Block1(lr)
        down2, skip2 = self.Encoding_Block2(down1)
        feat = self.Decoding_Block1(self.Conv_mid(down2), skip2)
        feat = self.Decoding_Block2(feat, skip1)
        mean = self.Conv_tail.mean(feat)
        log_var = self.Conv_tail.log_var(feat)
        if self.training or self.sample_at_eval:
            # quirk (authors): exp(log_var) is used as the standard deviation, not exp(log_var / 2).
            # contiguous noise: the same numbers at the same pixels whatever the layout of ``mean``
            noise = torch.randn_like(mean, memory_format=torch.contiguous_format)
            z = mean + noise * torch.exp(log_var)
        else:
            z = mean
        l = self.kernel_size
        rows = self._band_rows(z.shape, return_kernel_map)
        if rows:
            kernel = banded_mean_softmax(z, self.Conv_tail.Conv_end, rows).view(-1, l, l)
            kernel_map = None
        else:
            # softmax in float32 so the kernel sums to 1 under bf16/fp16 autocast too.
            kernel_map = F.softmax(self.Conv_tail.Conv_end(z).float(), dim=1)
            kernel = kernel_map.mean(dim=(2, 3)).view(-1, l, l)
        if kernel_map is None or not return_kernel_map:
            kernel_map = None
        else:
            kernel_map = kernel_map.contiguous()
        # contiguous whatever the layout the convolutions ran in (the input's or the weights'); free when already
        return kernel, mean.contiguous(), log_var.contiguous(), kernel_map

    def _band_rows(self, z_shape, return_kernel_map):
        """Rows per band for the banded tail, or 0 for the plain tail (see the class notes)."""
        setting = self.tail_band_rows
        if return_kernel_map or torch.is_grad_enabled() or (setting is not None and setting <= 0):
            return 0
        b, _, h, w = z_shape
        if setting is None:
            rows = tail_band_rows(b, self.Conv_tail.Conv_end.out_channels, h, w)
        else:
            rows = int(setting)
        return rows if rows < h else 0
