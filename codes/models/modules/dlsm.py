"""DLSM: the SR part of KULNet, a MAP estimator with a Laplacian-scale-mixture prior unfolded into stages.

Paper / reference: Z. Fang et al., "Uncertainty Learning in Kernel Estimation for Multi-Stage Blind
Image Super-Resolution", ECCV 2022, Sec. 3.2 (deep Laplacian-scale-mixture network, T = 4 stages).

Stage i: ``R = X + Aᵀ(y − A X)``; a U-Net on densely fused features of ``X₀..Xᵢ`` predicts the LSM
scale ``w`` and mean ``u``; ``X ← soft-threshold of R towards u with t = w·δᵢ``.
Attribute names reproduce the authors' checkpoint keys (prefix ``SR_net.`` inside KULNet).
Initialisation (as the authors): Xavier-normal conv weights, zero biases; ``δᵢ ~ N(0.1, 0.01)``.
This file is the literal network; :mod:`models.fast` swaps in faster forms of some of its methods.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.modules.operators import DegradationOperators


def conv_relu_x2(in_ch, out_ch):
    """Two times (conv 3x3, ReLU); keys ``0`` and ``2``."""
    # in-place ReLUs act on fresh conv outputs (exact; saves a large allocation per call)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True))


def head(nf, out_nc):
    """conv, ReLU, conv, ReLU, conv 1x1 to ``out_nc``; keys ``0``, ``2``, ``4``."""
    return nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(nf, nf, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(nf, out_nc, 1))


def pad_bottom_right(x, multiple=16):
    """Reflection-pad the bottom and right of ``x`` up to a multiple of ``multiple``.

    Reflection needs a pad smaller than the size; for maps smaller than the pad it pads in several
    reflection steps, and replicates a side of size 1. Control flow depends on shapes only.

    Args:
        x (Tensor): (B, C, H, W).

    Returns:
        Tensor: (B, C, ceil(H/m)*m, ceil(W/m)*m); ``out[..., :H, :W] == x``.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    while pad_h > 0 or pad_w > 0:
        cur_h, cur_w = x.shape[-2:]
        step_h, step_w = min(pad_h, cur_h - 1), min(pad_w, cur_w - 1)
        if (pad_h > 0 and step_h == 0) or (pad_w > 0 and step_w == 0):
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            break
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def upsample_to(x, ref):
    """Bilinear upsampling of ``x`` to the spatial size of ``ref`` (x2 on padded maps)."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class Encoding(nn.Module):
    """Encoder E1..E5 (2x2 average pooling before E2..E5); widths nf, 2nf, 2nf, 4nf, 4nf."""

    def __init__(self, nf):
        super().__init__()
        self.E1 = conv_relu_x2(nf, nf)
        self.E2 = conv_relu_x2(nf, 2 * nf)
        self.E3 = conv_relu_x2(2 * nf, 2 * nf)
        self.E4 = conv_relu_x2(2 * nf, 4 * nf)
        self.E5 = conv_relu_x2(4 * nf, 4 * nf)

    def forward(self, x):
        """x (B, nf, H, W), H and W multiples of 16 -> [e1, e2, e3, e4, e5] at sizes H/1 .. H/16."""
        e1 = self.E1(x)
        e2 = self.E2(F.avg_pool2d(e1, 2))
        e3 = self.E3(F.avg_pool2d(e2, 2))
        e4 = self.E4(F.avg_pool2d(e3, 2))
        e5 = self.E5(F.avg_pool2d(e4, 2))
        return [e1, e2, e3, e4, e5]


class Decoding(nn.Module):
    """Decoder D1..D4, each on [encoder map, bilinear x2 of the deeper map], and the ``w``/``u`` heads."""

    BLOCKS = ("D4", "D3", "D2", "D1")  # the block that takes e1, e2, e3, e4 (and the deeper map)

    def __init__(self, nf, out_nc=3):
        super().__init__()
        self.D1 = conv_relu_x2(8 * nf, 4 * nf)
        self.D2 = conv_relu_x2(6 * nf, 2 * nf)
        self.D3 = conv_relu_x2(4 * nf, 2 * nf)
        self.D4 = conv_relu_x2(3 * nf, nf)
        self.w_generator = head(nf, out_nc)
        self.u_generator = head(nf, out_nc)

    def block(self, name, skip, deep, prepared=None):
        """Decoder block ``name`` on ``cat([skip, upsample_to(deep, skip)])``: (B, out, H, W)."""
        return getattr(self, name)(torch.cat([skip, upsample_to(deep, skip)], dim=1))

    def forward(self, feats, prepared=None):
        """feats from :class:`Encoding` -> (w, u), each (B, out_nc, H, W).

        The list is emptied as the maps are used, so inference frees each one early. ``prepared``:
        what the network's forward prepared once (unused by the literal blocks).
        """
        d = feats.pop()  # e5
        while feats:
            d = self.block(self.BLOCKS[len(feats) - 1], feats.pop(), d, prepared)
        return self.w_generator(d), self.u_generator(d)


def lsm_prox(r, w, u, delta):
    """LSM proximal step: soft-thresholding of ``r`` towards ``u`` with ``t = w·δ``, computed with the
    authors' masks (their checkpoints depend on it: trained models have ``t < 0`` at many pixels).

    ``c₁ = r + t`` where ``r < u − t`` (else ``r``), ``m₁ = [r − c₁ ≠ 0]``; ``c₃ = r − t`` where
    ``r > u + t`` (else ``r``), ``m₃ = [r − c₃ ≠ 0]``; result ``c₁·m₁ + u·(1 − m₁ − m₃) + c₃·m₃``.
    For ``t > 0`` that is the textbook rule (``r + t`` / ``u`` / ``r − t``). Where ``t < 0`` both
    conditions can hold and the result is ``2r − u``; where ``r + t`` rounds to ``r`` the mask is 0
    and the result is ``u``. The masks are evaluated in floating point, in the dtype of the operands.

    Args:
        r, w, u (Tensor): (B, C, H, W). delta (Tensor): (1,) stage scalar.

    Returns:
        Tensor: (B, C, H, W).
    """
    t = w * delta
    c1 = torch.where(r < u - t, r + t, r)
    m1 = (r - c1 != 0).to(c1.dtype)
    c3 = torch.where(r > u + t, r - t, r)
    m3 = (r - c3 != 0).to(c3.dtype)
    return c1 * m1 + u * (1 - m1 - m3) + c3 * m3


class DLSM(nn.Module):
    """The unfolded SR network.

    Args:
        scale (int): s.
        in_nc (int): image channels (3).
        nf (int): feature width (32 in the paper).
        n_stages (int): T (4 in the paper).
        pad_multiple (int): the U-Net input is padded to a multiple of this (16 = four poolings).
    """

    def __init__(self, scale=4, in_nc=3, nf=32, n_stages=4, pad_multiple=16):
        super().__init__()
        self.scale = scale
        self.n_stages = n_stages
        self.pad_multiple = pad_multiple
        for i in range(n_stages):
            # 0.01 is the standard deviation (torch.normal(mean, std) semantics).
            setattr(self, f"delta_{i}", nn.Parameter(torch.normal(0.1, 0.01, size=(1,))))
        self.Encoding = Encoding(nf)
        self.Decoding = Decoding(nf, in_nc)
        self.conv = nn.Conv2d(in_nc, nf, 3, padding=1)
        for i in range(n_stages):
            setattr(self, f"Den_con{i + 1}", nn.Conv2d(nf * (i + 1), nf, 1))
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def prepare(self, y, kernel):
        """What a forward prepares once for its 2T+1 uses: the degradation operators of ``kernel``."""
        return DegradationOperators(kernel, self.scale, y.shape[1])

    def stage_input(self, x):
        """What the dense fusion keeps of a stage estimate ``x`` (B, in_nc, H, W): ``conv(x)``."""
        return self.conv(x)

    def fuse(self, history, stage):
        """Dense fusion ``Den_con{stage+1}(cat(history))`` of the kept stage inputs: (B, nf, H, W)."""
        return getattr(self, f"Den_con{stage + 1}")(torch.cat(history, dim=1))

    def unet_input(self, feat):
        """The fused features padded for the U-Net (bottom and right, to a multiple of 16)."""
        return pad_bottom_right(feat, self.pad_multiple)

    def prior(self, history, stage, prepared):
        """U-Net on the fused features of ``history`` -> (w, u), each (B, in_nc, H, W)."""
        height, width = history[0].shape[-2:]
        feats = self.Encoding(self.unet_input(self.fuse(history, stage)))
        w, u = self.Decoding(feats, prepared)
        if w.shape[-2:] == (height, width):  # nothing was padded (training crops are multiples of 16)
            return w, u
        return w[..., :height, :width], u[..., :height, :width]

    def forward(self, y, kernel):
        """Restore the HR image.

        Args:
            y (Tensor): (B, in_nc, h, w) LR image in [0, 1].
            kernel (Tensor): (B, l, l) blur kernels (sum to 1), ``l`` odd.

        Returns:
            Tensor: (B, in_nc, s*h, s*w), the last stage's estimate (not clamped).
        """
        ops = self.prepare(y, kernel)
        x = ops.At(y)
        history = []  # what the dense fusion keeps of X_0..X_i
        for i in range(self.n_stages):
            r = x + ops.At(y - ops.A(x))
            history.append(self.stage_input(x))
            w, u = self.prior(history, i, ops)
            x = lsm_prox(r, w, u, getattr(self, f"delta_{i}"))
        return x.contiguous()
