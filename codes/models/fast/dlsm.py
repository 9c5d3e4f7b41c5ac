"""Fast forms of the DLSM (:mod:`models.modules.dlsm`), equal to the literal network to float rounding.

- the blur of ``A``/``Aᵀ`` chosen by :mod:`models.fast.operators` (``blur_impl``);
- the U-Net in channels-last memory format (``channels_last``; None: on the CPU and CUDA, where
  oneDNN and cuDNN convolve that layout faster);
- composed dense fusion (``fused_dense``): ``Den_con_i(cat(conv(X_0), .., conv(X_i)))`` runs as one
  3x3 conv over ``cat(X_0, .., X_i)`` with the composed weights (both maps are linear), so each stage
  keeps its 3-channel estimate instead of an ``nf``-channel map at HR size, with fewer FLOPs;
- split decoder concatenations (``FastDecoding.split_concat``): each decoder block's first conv runs
  as a conv over the encoder map plus a conv over the upsampled map, its weight split once per
  forward, so the concatenated map is never stored (the HR block D4's is the inference peak).
"""
import contextlib

import torch
import torch.nn.functional as F

from models.fast.operators import FastDegradationOperators
from models.modules.dlsm import DLSM, Decoding, upsample_to


def conv_relu_x2_on_pair(block, skip, deep, first_weights):
    """``block(cat([skip, upsample_to(deep, skip)]))`` without building the concatenation.

    Args:
        block (nn.Sequential): conv, ReLU, conv, ReLU. skip (Tensor): (B, Cs, H, W).
        deep (Tensor): (B, Cd, H/2, W/2).
        first_weights (tuple[Tensor, Tensor]): the first conv's weight split into its (out, Cs, 3, 3)
            and (out, Cd, 3, 3) parts.

    Returns:
        Tensor: (B, out, H, W).
    """
    out = F.conv2d(skip, first_weights[0], block[0].bias, padding=1)
    out += F.conv2d(upsample_to(deep, skip), first_weights[1], padding=1)  # conv backward needs no output
    return block[3](block[2](block[1](out)))


class FastDecoding(Decoding):
    """:class:`Decoding` whose blocks never build their concatenated input (``split_concat``)."""

    split_concat = True

    def input_split(self):
        """Input channels of each block's first conv: name -> (encoder map, upsampled deeper map)."""
        deep = {"D1": self.D1[0].in_channels // 2,  # e5, as wide as e4
                "D2": self.D1[2].out_channels, "D3": self.D2[2].out_channels, "D4": self.D3[2].out_channels}
        return {name: (getattr(self, name)[0].in_channels - width, width) for name, width in deep.items()}

    def split_first_weights(self, memory_format=torch.contiguous_format):
        """The first conv weight of D1..D4 split into its encoder-map and upsampled-map parts, once per
        forward for the T stages, each part in the layout of the maps it convolves.

        Returns:
            dict[str, tuple[Tensor, Tensor]]: block name -> (out, Cs, 3, 3) and (out, Cd, 3, 3).
        """
        return {name: tuple(part.contiguous(memory_format=memory_format)
                            for part in torch.split(getattr(self, name)[0].weight, list(sizes), dim=1))
                for name, sizes in self.input_split().items()}

    def block(self, name, skip, deep, prepared=None):
        if self.split_concat:
            return conv_relu_x2_on_pair(getattr(self, name), skip, deep, prepared.decoder_weights[name])
        return super().block(name, skip, deep, prepared)


class FastDLSM(DLSM):
    """:class:`DLSM` with the speed and memory options of this module (see its notes); the
    attributes below are set by :func:`models.fast.accelerate`."""

    blur_impl = "auto"
    channels_last = None
    fused_dense = True

    def use_channels_last(self, device):
        """Whether the U-Net runs channels-last on ``device`` (torch.device)."""
        if self.channels_last is None:
            return device.type in ("cpu", "cuda")
        return bool(self.channels_last)

    def prepare(self, y, kernel):
        hr_size = (y.shape[-2] * self.scale, y.shape[-1] * self.scale)
        ops = FastDegradationOperators(kernel, self.scale, y.shape[1], hr_size, self.blur_impl)
        ops.decoder_weights = None
        if getattr(self.Decoding, "split_concat", False):
            layout = torch.channels_last if self.use_channels_last(y.device) else torch.contiguous_format
            ops.decoder_weights = self.Decoding.split_first_weights(layout)
        return ops

    def stage_input(self, x):
        return x if self.fused_dense else super().stage_input(x)

    def fuse(self, history, stage):
        if not self.fused_dense:
            return super().fuse(history, stage)
        weight, bias = self.dense_fusion_weights(stage)
        return F.conv2d(torch.cat(history, dim=1), weight, bias, padding=1)

    def unet_input(self, feat):
        feat = super().unet_input(feat)
        if self.use_channels_last(feat.device):
            feat = feat.contiguous(memory_format=torch.channels_last)
        return feat

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
