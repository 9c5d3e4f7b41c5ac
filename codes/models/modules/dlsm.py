"""DLSM: the SR part of KULNet, a MAP estimator with a Laplacian-scale-mixture prior unfolded into stages.

Paper / reference: Z. Fang et al., "Uncertainty Learning in Kernel Estimation for Multi-Stage Blind
Image Super-Resolution", ECCV 2022, Sec. 3.2 (deep Laplacian-scale-mixture network, T = 4 stages).

Stage i: ``R = X + Aᵀ(y − A X)``; a U-Net on densely fused features of ``X₀..Xᵢ`` predicts the LSM
scale ``w`` and mean ``u``; ``X ← soft-threshold of R towards u with t = w·δᵢ``.
Attribute names reproduce the authors' checkpoint keys (prefix ``SR_net.`` inside KULNet).
Initialisation (as the authors): Xavier-normal conv weights, zero biases; ``δᵢ ~ N(0.1, 0.01)``.
"""
import contextlib

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

    Reflection needs a pad smaller than the size; for maps smaller than the pad (only below the
    documented minimum input size) it pads in several reflection steps, and replicates a side of
    size 1. Control flow depends on shapes only.

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


def conv_relu_x2_on_pair(block, skip, deep, first_weights=None):
    """``block(cat([skip, upsample_to(deep, skip)]))`` without building the concatenation.

    The first conv is linear in its input channels, so it runs as a conv over ``skip`` plus a conv
    over the upsampled map (its weight split along the input channels); equal to float rounding.
    At the HR decoder block D4 this never stores the 3·nf-channel map (x4, LR 256: 384 MiB).

    Args:
        block (nn.Sequential): :func:`conv_relu_x2`. skip (Tensor): (B, Cs, H, W).
        deep (Tensor): (B, Cd, H/2, W/2).
        first_weights (tuple[Tensor, Tensor] | None): the first conv's weight split into its
            (out, Cs, 3, 3) and (out, Cd, 3, 3) parts; None splits it here.

    Returns:
        Tensor: (B, out, H, W).
    """
    first = block[0]
    if first_weights is None:
        first_weights = torch.split(first.weight, [skip.shape[1], deep.shape[1]], dim=1)
    out = F.conv2d(skip, first_weights[0], first.bias, padding=1)
    out += F.conv2d(upsample_to(deep, skip), first_weights[1], padding=1)  # conv backward needs no output
    return block[3](block[2](block[1](out)))


class Decoding(nn.Module):
    """Decoder D1..D4 ([encoder map, bilinear x2 of the deeper map]) and the ``w``/``u`` heads.

    ``split_concat`` (speed attribute, default True): run each block's first conv without the
    concatenated map (:func:`conv_relu_x2_on_pair`); False: the literal concatenation.
    """

    def __init__(self, nf, out_nc=3):
        super().__init__()
        self.D1 = conv_relu_x2(8 * nf, 4 * nf)
        self.D2 = conv_relu_x2(6 * nf, 2 * nf)
        self.D3 = conv_relu_x2(4 * nf, 2 * nf)
        self.D4 = conv_relu_x2(3 * nf, nf)
        self.w_generator = head(nf, out_nc)
        self.u_generator = head(nf, out_nc)
        self.split_concat = True
        # input channels of each block's first conv: (encoder map, upsampled deeper map)
        self.input_split = {"D1": (4 * nf, 4 * nf), "D2": (2 * nf, 4 * nf), "D3": (2 * nf, 2 * nf),
                            "D4": (nf, 2 * nf)}

    def split_first_weights(self, memory_format=torch.contiguous_format):
        """The first conv weight of D1..D4 split into its encoder-map and upsampled-map parts.

        Made once per DLSM forward and shared by the T stages: one split (whose backward is one
        concatenation) per block instead of two slices a stage, and each part copied once into the
        layout of the maps it convolves (a slice of a weight is in neither layout, so each
        convolution would convert it again).

        Args:
            memory_format (torch.memory_format): the U-Net's layout.

        Returns:
            dict[str, tuple[Tensor, Tensor]]: block name -> (out, Cs, 3, 3) and (out, Cd, 3, 3).
        """
        return {name: tuple(part.contiguous(memory_format=memory_format)
                            for part in torch.split(getattr(self, name)[0].weight, list(sizes), dim=1))
                for name, sizes in self.input_split.items()}

    def _block(self, name, skip, deep, first_weights):
        block = getattr(self, name)
        if self.split_concat:
            return conv_relu_x2_on_pair(block, skip, deep, None if first_weights is None else first_weights[name])
        return block(torch.cat([skip, upsample_to(deep, skip)], dim=1))

    def forward(self, feats, first_weights=None):
        """feats from :class:`Encoding` -> (w, u), each (B, out_nc, H, W).

        The list is emptied as the maps are used, so inference frees each one early.
        ``first_weights``: :meth:`split_first_weights` (None: split in each block).
        """
        d = feats.pop()  # e5
        while feats:  # D1 takes e4 (and e5), D2 e3, D3 e2, D4 e1
            name = ("D4", "D3", "D2", "D1")[len(feats) - 1]
            d = self._block(name, feats.pop(), d, first_weights)
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

    Speed attributes (not in the state_dict; each equals the plain path to float rounding):
        blur_impl (str): ``'auto'`` (FFT blur on the CPU for large maps), ``'direct'``, ``'fft'`` or
            ``'transposed'`` (see :mod:`models.modules.operators`).
        channels_last (bool | None): run the U-Net in channels-last memory format; None (default)
            chooses it on the CPU, where oneDNN's convolutions are faster in that layout, and on
            CUDA (measured on an H100 with the estimator's option: x4 fp16 training step 93 -> 82 ms,
            x4 inference LR 256 50 -> 43 ms; cuDNN otherwise converts NCHW half tensors at each conv).
        fused_dense (bool): True (default): the dense fusion ``Den_con_i(cat(conv(X_0), ..,
            conv(X_i)))`` runs as ONE 3x3 conv over ``cat(X_0, .., X_i)`` with the composed weights
            (both maps are linear), so each stage keeps its 3-channel estimate instead of a
            ``nf``-channel feature map at HR size (x4, LR 256: 512 MiB less at the last stage) and
            does fewer FLOPs. The parameters and their gradients are the same; False: the literal form.
        Decoding.split_concat (bool): True (default): decoder blocks never build their concatenated
            input (:func:`conv_relu_x2_on_pair`); False: the literal concatenation.
    """

    def __init__(self, scale=4, in_nc=3, nf=32, n_stages=4, pad_multiple=16):
        super().__init__()
        self.scale = scale
        self.n_stages = n_stages
        self.pad_multiple = pad_multiple
        self.blur_impl = "auto"
        self.channels_last = None
        self.fused_dense = True
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

    def _use_channels_last(self, device):
        """Whether the U-Net runs channels-last on ``device`` (torch.device)."""
        if self.channels_last is None:
            return device.type in ("cpu", "cuda")
        return bool(self.channels_last)

    def fuse(self, history, stage):
        """Dense fusion of the stage estimates: (B, nf, H, W).

        Args:
            history (list[Tensor]): ``X_0..X_stage`` (``fused_dense``) or ``conv(X_0)..conv(X_stage)``.
        """
        if self.fused_dense:
            weight, bias = self.dense_fusion_weights(stage)
            return F.conv2d(torch.cat(history, dim=1), weight, bias, padding=1)
        return getattr(self, f"Den_con{stage + 1}")(torch.cat(history, dim=1))

    def prior(self, history, stage, first_weights=None):
        """U-Net on the fused features of ``history`` (see :meth:`fuse`) -> (w, u), each
        (B, in_nc, H, W). Only the U-Net's padded input is kept while it runs.

        ``first_weights``: :meth:`Decoding.split_first_weights`, made once per forward (None: split here).
        """
        height, width = history[0].shape[-2:]
        feat = pad_bottom_right(self.fuse(history, stage), self.pad_multiple)
        if self._use_channels_last(feat.device):
            feat = feat.contiguous(memory_format=torch.channels_last)
        feats = self.Encoding(feat)
        del feat  # inference frees the HR input before the decoder's peak
        w, u = self.Decoding(feats, first_weights)
        if w.shape[-2:] == (height, width):  # no padding to crop (training crops are multiples of 16)
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
        hr_size = (y.shape[-2] * self.scale, y.shape[-1] * self.scale)
        # prepared once for the 2T+1 applications (kernel weights, or the FFT blur's spectrum)
        ops = DegradationOperators(kernel, self.scale, y.shape[1], hr_size, self.blur_impl)
        first_weights = None
        if self.Decoding.split_concat:
            layout = torch.channels_last if self._use_channels_last(y.device) else torch.contiguous_format
            first_weights = self.Decoding.split_first_weights(layout)
        x = ops.At(y)
        history = []  # X_0..X_i (fused_dense) or conv(X_0)..conv(X_i) (literal form)
        for i in range(self.n_stages):
            r = x + ops.At(y - ops.A(x))
            history.append(x if self.fused_dense else self.conv(x))
            w, u = self.prior(history, i, first_weights)
            x = lsm_prox(r, w, u, getattr(self, f"delta_{i}"))
        return x.contiguous()

    def dense_fusion_weights(self, stage):
        """``Den_con{stage+1}`` composed with ``conv`` applied to each of ``X_0..X_stage``.

        ``Den_con(cat_j(K * X_j + b)) = sum_j W_j (K * X_j + b) + b' = (cat_j W_j K) * cat_j X_j
        + (sum_j W_j b + b')``, where ``W_j`` is the j-th (nf, nf) block of the 1x1 weight and ``K``,
        ``b`` the 3x3 conv's weight and bias. Composed outside autocast in at least float32 (tiny
        tensors) and returned in the parameters' dtype: autocast casts them for the convolution, and
        a network converted to float16/bfloat16 gets weights of its own type.

        Returns:
            tuple: weight (nf, in_nc*(stage+1), 3, 3) and bias (nf,), dtype of the parameters.
        """
        den = getattr(self, f"Den_con{stage + 1}")
        nf = self.conv.out_channels
        param_dtype = den.weight.dtype
        dtype = torch.promote_types(param_dtype, torch.float32)
        device_type = den.weight.device.type
        no_autocast = (torch.autocast(device_type, enabled=False) if torch.amp.is_autocast_available(device_type)
                       else contextlib.nullcontext())  # e.g. the meta device (FLOP counting)
        with no_autocast:
            blocks = den.weight.to(dtype).reshape(nf, stage + 1, nf)  # (out, j, c)
            weight = torch.einsum("ojc,cikl->ojikl", blocks, self.conv.weight.to(dtype))
            bias = den.bias.to(dtype) + blocks.sum(dim=1) @ self.conv.bias.to(dtype)
        return weight.reshape(nf, -1, *self.conv.kernel_size).to(param_dtype), bias.to(param_dtype)
