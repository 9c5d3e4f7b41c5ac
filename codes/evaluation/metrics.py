"""Image and kernel quality metrics of the paper's protocol.

PSNR and SSIM are computed on 8-bit images (floats are rounded to 8 bits first), on the Y channel of
MATLAB's BT.601 ``rgb2ycbcr`` by default, with ``crop_border`` pixels removed from every side (the
protocol uses ``crop_border = scale``). As in the authors' Python code, Y itself is not rounded.
SSIM uses the usual 11x11 Gaussian window (sigma 1.5) on 0-255 values over the valid region; on RGB
it is the mean of the three per-channel values. Kernel PSNR is ``20 log10(1 / RMSE)`` between raw
kernels.

The ``*_batch`` helpers are torch versions for validation during training; they compute the same
numbers (to float64 precision) on the tensors' device.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

# MATLAB rgb2ycbcr, Y row, for R, G, B in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B.
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def _to_8bit(img):
    """uint8 or 0..255 float array -> float64 array of 8-bit values (rounded, clipped)."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    return np.round(np.clip(img.astype(np.float64), 0.0, 255.0))


def rgb_to_y(img):
    """Y channel of MATLAB's BT.601 ``rgb2ycbcr``.

    Args:
        img (np.ndarray): (H, W, 3) RGB, uint8 or float in 0..255 (rounded to 8 bits first).

    Returns:
        np.ndarray: (H, W) float64, in [16, 235]; not rounded.
    """
    img = _to_8bit(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects (H, W, 3), got {img.shape}")
    return 16.0 + img @ _Y_WEIGHTS


def _prepare(img1, img2, crop_border, test_y_channel):
    """Round to 8 bits, check shapes, optionally take Y, crop; returns float64 (H, W, C) arrays."""
    img1, img2 = np.asarray(img1), np.asarray(img2)
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {img1.shape} vs {img2.shape}")
    if test_y_channel and img1.ndim == 3 and img1.shape[2] == 3:
        img1, img2 = rgb_to_y(img1), rgb_to_y(img2)
    else:
        img1, img2 = _to_8bit(img1), _to_8bit(img2)
    if img1.ndim == 2:
        img1, img2 = img1[:, :, None], img2[:, :, None]
    if crop_border:
        c = int(crop_border)
        img1, img2 = img1[c:-c, c:-c], img2[c:-c, c:-c]
    return img1, img2


def calculate_psnr(img1, img2, crop_border, test_y_channel=True):
    """PSNR in dB between two 8-bit images (peak 255).

    Args:
        img1, img2 (np.ndarray): (H, W, 3) RGB or (H, W) gray, uint8 or float in 0..255.
        crop_border (int): pixels removed from each side before comparing (the protocol: the scale).
        test_y_channel (bool): compare the BT.601 Y channels (default, as the paper); False: all of RGB.

    Returns:
        float: PSNR in dB; ``inf`` for identical images.
    """
    img1, img2 = _prepare(img1, img2, crop_border, test_y_channel)
    mse = np.mean((img1 - img2) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_window(size=11, sigma=1.5):
    """Normalised 1-D Gaussian of ``size`` taps (float64)."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(ax**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x, g):
    """Separable correlation of a (H, W) array with the 1-D window ``g``, valid region only."""
    n = g.size
    rows = sum(g[i] * x[i : x.shape[0] - n + 1 + i, :] for i in range(n))
    return sum(g[j] * rows[:, j : rows.shape[1] - n + 1 + j] for j in range(n))


def ssim_map(img1, img2):
    """SSIM map of two single-channel 0..255 float64 arrays (H, W) -> (H - 10, W - 10)."""
    g = _gaussian_window()
    mu1, mu2 = _filter_valid(img1, g), _filter_valid(img2, g)
    s11 = _filter_valid(img1 * img1, g) - mu1**2
    s22 = _filter_valid(img2 * img2, g) - mu2**2
    s12 = _filter_valid(img1 * img2, g) - mu1 * mu2
    num = (2 * mu1 * mu2 + _SSIM_C1) * (2 * s12 + _SSIM_C2)
    den = (mu1**2 + mu2**2 + _SSIM_C1) * (s11 + s22 + _SSIM_C2)
    return num / den


def calculate_ssim(img1, img2, crop_border, test_y_channel=True):
    """SSIM between two 8-bit images (11x11 Gaussian window, sigma 1.5, valid region, data range 255).

    Args:
        img1, img2 (np.ndarray): (H, W, 3) RGB or (H, W) gray, uint8 or float in 0..255.
        crop_border (int): pixels removed from each side first.
        test_y_channel (bool): on the BT.601 Y channel (default); False: mean over the RGB channels.

    Returns:
        float: SSIM, 1 for identical images.
    """
    img1, img2 = _prepare(img1, img2, crop_border, test_y_channel)
    if min(img1.shape[:2]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {img1.shape[:2]}")
    return float(np.mean([ssim_map(img1[:, :, c], img2[:, :, c]).mean() for c in range(img1.shape[2])]))


def kernel_psnr(k_est, k_true):
    """Kernel PSNR ``20 log10(1 / RMSE)`` between raw kernels (peak taken as 1, no normalisation).

    Args:
        k_est, k_true (np.ndarray | Tensor): (l, l), or (B, l, l) for the mean over the batch of the
            per-kernel values.

    Returns:
        float: dB; ``inf`` for identical kernels.
    """
    if torch.is_tensor(k_est):
        k_est = k_est.detach().cpu().double().numpy()
    if torch.is_tensor(k_true):
        k_true = k_true.detach().cpu().double().numpy()
    k_est, k_true = np.asarray(k_est, np.float64), np.asarray(k_true, np.float64)
    if k_est.shape != k_true.shape:
        raise ValueError(f"kernels differ in shape: {k_est.shape} vs {k_true.shape}")
    if k_est.ndim == 3:
        return float(np.mean([kernel_psnr(a, b) for a, b in zip(k_est, k_true)]))
    rmse = math.sqrt(np.mean((k_est - k_true) ** 2))
    return float("inf") if rmse == 0 else 20.0 * math.log10(1.0 / rmse)


def _batch_prepare(img1, img2, crop_border, test_y_channel):
    """(B, 3, H, W) tensors in [0, 1] -> float64 8-bit-valued (B, C, H', W') tensors (Y or RGB)."""
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {tuple(img1.shape)} vs {tuple(img2.shape)}")
    x = (img1.detach().double().clamp(0, 1) * 255.0).round()
    y = (img2.detach().double().clamp(0, 1) * 255.0).round()
    if test_y_channel and x.size(1) == 3:
        w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
        x = 16.0 + (x * w).sum(1, keepdim=True)
        y = 16.0 + (y * w).sum(1, keepdim=True)
    if crop_border:
        c = int(crop_border)
        x, y = x[..., c:-c, c:-c], y[..., c:-c, c:-c]
    return x, y


def calculate_psnr_batch(img1, img2, crop_border, test_y_channel=True):
    """Torch PSNR per image, same definition as :func:`calculate_psnr`.

    Args:
        img1, img2 (Tensor): (B, 3, H, W) in [0, 1] (rounded to 8 bits first).

    Returns:
        Tensor: (B,) float64 dB on the inputs' device (``inf`` where identical).
    """
    x, y = _batch_prepare(img1, img2, crop_border, test_y_channel)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(255.0**2 / mse)


def calculate_ssim_batch(img1, img2, crop_border, test_y_channel=True):
    """Torch SSIM per image, same definition as :func:`calculate_ssim`.

    Args:
        img1, img2 (Tensor): (B, 3, H, W) in [0, 1] (rounded to 8 bits first).

    Returns:
        Tensor: (B,) float64 on the inputs' device.
    """
    x, y = _batch_prepare(img1, img2, crop_border, test_y_channel)
    b, c, h, w = x.shape
    g = torch.tensor(_gaussian_window(), dtype=torch.float64, device=x.device)
    win = (g[:, None] * g[None, :]).view(1, 1, 11, 11)
    stack = torch.cat([x, y, x * x, y * y, x * y], 0).reshape(5 * b * c, 1, h, w)
    mu1, mu2, e11, e22, e12 = F.conv2d(stack, win).reshape(5, b, c, h - 10, w - 10)
    s11, s22, s12 = e11 - mu1**2, e22 - mu2**2, e12 - mu1 * mu2
    num = (2 * mu1 * mu2 + _SSIM_C1) * (2 * s12 + _SSIM_C2)
    den = (mu1**2 + mu2**2 + _SSIM_C1) * (s11 + s22 + _SSIM_C2)
    return (num / den).flatten(2).mean(2).mean(1)
