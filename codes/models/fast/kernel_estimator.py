"""Fast forms of the kernel estimator (:mod:`models.modules.kernel_estimator`), equal to the literal
network to float rounding.

- ``channels_last`` (bool | None): the convolutions in channels-last memory format; None: on CUDA
  (no gain for this part on the CPU). The outputs are returned contiguous either way.
- ``tail_band_rows`` (int | None), inference memory: the tail's logits and softmax are (B, l*l, h, w)
  each (about 7 GB each at l = 21 and a 2000x2000 LR), but without the kernel map only their spatial
  mean is needed; :func:`banded_mean_softmax` computes it in bands of rows. Used only when autograd
  is off, the kernel map is not requested and there is more than one band. None: bands whose logits
  stay under :data:`TAIL_BAND_BYTES`, i.e. one band (the literal tail) up to about 150k LR pixels at
  B = 1; a positive int: that many rows per band; 0: the literal tail.
"""
import torch
import torch.nn.functional as F

from models.modules.kernel_estimator import KernelEstimator

TAIL_BAND_BYTES = 256 * 2 ** 20  # float32 logits of one band


def tail_band_rows(batch, n_logits, height, width, budget=None):
    """Rows per band of the banded tail: the most rows whose (batch, n_logits, rows, width) float32
    logits fit in ``budget`` bytes (default ``TAIL_BAND_BYTES``), at least 1, capped at ``height``."""
    budget = TAIL_BAND_BYTES if budget is None else budget
    per_row = max(1, batch * n_logits * width * 4)
    return max(1, min(height, int(budget) // per_row))


def banded_mean_softmax(z, conv, rows):
    """Spatial mean of ``softmax(conv(z))`` over channels, computed in bands of ``rows`` rows.

    Equals ``F.softmax(conv(z).float(), 1).mean(dim=(2, 3))`` to float rounding, but only one band's
    logits and softmax ((B, C_out, rows, w) each) exist at a time. Each band reads a 1-row halo of
    ``z`` above and below for the 3x3 convolution; at the image borders the halo is the zero padding
    of the literal convolution. The loop bounds depend on shapes only (``torch.compile`` unrolls it).

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
        # zero rows where the halo falls outside the image (the literal conv's padding 1)
        band = F.pad(z[:, :, a:b], (0, 0, 1 if r0 == 0 else 0, 1 if r1 == h else 0))
        logits = F.conv2d(band, conv.weight, conv.bias, stride=1, padding=(0, 1))
        part = F.softmax(logits.float(), dim=1).sum(dim=(2, 3))
        total = part if total is None else total + part
    return total / (h * w)


class FastKernelEstimator(KernelEstimator):
    """:class:`KernelEstimator` with the options of this module; set by :func:`models.fast.accelerate`."""

    channels_last = None
    tail_band_rows = None

    def use_channels_last(self, device):
        """Whether the convolutions run channels-last on ``device`` (torch.device)."""
        if self.channels_last is None:
            return device.type == "cuda"
        return bool(self.channels_last)

    def features(self, lr):
        if self.use_channels_last(lr.device):
            lr = lr.contiguous(memory_format=torch.channels_last)
        return super().features(lr)

    def band_rows(self, z_shape, return_kernel_map):
        """Rows per band for the banded tail, or 0 for the literal tail (see the module notes)."""
        setting = self.tail_band_rows
        if return_kernel_map or torch.is_grad_enabled() or (setting is not None and setting <= 0):
            return 0
        b, _, h, w = z_shape
        rows = tail_band_rows(b, self.Conv_tail.Conv_end.out_channels, h, w) if setting is None else int(setting)
        return rows if rows < h else 0

    def kernels_from_latent(self, z, return_kernel_map):
        rows = self.band_rows(z.shape, return_kernel_map)
        if not rows:
            kernel, kernel_map = super().kernels_from_latent(z, return_kernel_map)
            return kernel, None if kernel_map is None else kernel_map.contiguous()
        kernel = banded_mean_softmax(z, self.Conv_tail.Conv_end, rows)
        return kernel.view(-1, self.kernel_size, self.kernel_size), None

    def forward(self, lr, return_kernel_map=True):
        kernel, mean, log_var, kernel_map = super().forward(lr, return_kernel_map)
        # contiguous whatever layout the convolutions ran in; free when already
        return kernel, mean.contiguous(), log_var.contiguous(), kernel_map
