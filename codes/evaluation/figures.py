"""Figures made from our own outputs: kernels, uncertainty heat maps, visual comparisons.

All functions take and return RGB ``uint8`` numpy images (H, W, 3) (write them with
:func:`utils.image_io.write_image`); text is drawn with OpenCV (no other dependency).

Public API:
    kernel_image, kernel_figure, kernel_scale_figure, uncertainty_map, uncertainty_figure, comparison_figure
"""
import cv2
import numpy as np
import torch

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)


def _numpy(x):
    if torch.is_tensor(x):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def kernel_image(kernel, zoom=8):
    """A kernel as a gray image, normalised by its maximum, enlarged with nearest neighbour.

    Args:
        kernel (np.ndarray | Tensor): (l, l), >= 0.
        zoom (int): pixels per kernel tap.

    Returns:
        np.ndarray: uint8 (l*zoom, l*zoom, 3), RGB.
    """
    k = np.clip(_numpy(kernel), 0, None)
    peak = k.max()
    k = k / peak if peak > 0 else k
    img = np.round(k * 255).astype(np.uint8)
    img = cv2.resize(img, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    return np.repeat(img[:, :, None], 3, axis=2)


def _label(img, text, org, scale=0.45):
    """Put ``text`` with a dark outline so that it reads on any background (in place)."""
    cv2.putText(img, text, org, _FONT, scale, _BLACK, 3, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, _WHITE, 1, cv2.LINE_AA)


def kernel_figure(k_est, k_true=None, kernel_psnr=None, zoom=8, gap=8):
    """True and estimated kernel side by side, each normalised to its own maximum.

    Args:
        k_est (np.ndarray | Tensor): (l, l) estimated kernel.
        k_true (np.ndarray | Tensor | None): (l, l) true kernel (None for real photos).
        kernel_psnr (float | None): written under the kernels, in dB.
        zoom (int): nearest-neighbour enlargement.
        gap (int): pixels between the two kernels.

    Returns:
        np.ndarray: uint8 (H, W, 3) RGB with the labels 'true' / 'estimated' and 'kernel PSNR'.
    """
    panels = [("estimated", kernel_image(k_est, zoom))]
    if k_true is not None:
        panels.insert(0, ("true", kernel_image(k_true, zoom)))
    side = panels[0][1].shape[0]
    top, bottom = 18, 22 if kernel_psnr is not None else 4
    width = len(panels) * side + (len(panels) - 1) * gap
    canvas = np.zeros((top + side + bottom, width, 3), np.uint8)
    for i, (name, img) in enumerate(panels):
        x = i * (side + gap)
        canvas[top:top + side, x:x + side] = img
        _label(canvas, name, (x + 2, 13))
    if kernel_psnr is not None:
        _label(canvas, f"kernel PSNR {kernel_psnr:.2f} dB", (2, top + side + 16))
    return canvas


def _scale_bar(height, colormap=None, width=12):
    """A vertical bar from the top (the maximum) to the bottom (0 or the minimum): (height, width, 3)."""
    ramp = np.linspace(255, 0, height).round().astype(np.uint8)[:, None].repeat(width, axis=1)
    if colormap is None:
        return np.repeat(ramp[:, :, None], 3, axis=2)
    return np.ascontiguousarray(cv2.applyColorMap(ramp, colormap)[:, :, ::-1])


def _with_legend(img, bar, top_label, bottom_label, caption, gap=6):
    """``img`` with ``bar`` on its right (labelled at its ends) and a caption line underneath."""
    h, w = img.shape[:2]
    label_w = 8 * max(len(top_label), len(bottom_label)) + 4
    caption_w = 7 * len(caption) + 8
    width = max(w + gap + bar.shape[1] + 4 + label_w, caption_w)
    canvas = np.zeros((h + 22, width, 3), np.uint8)
    canvas[:h, :w] = img
    x = w + gap
    canvas[:h, x:x + bar.shape[1]] = cv2.resize(bar, (bar.shape[1], h), interpolation=cv2.INTER_NEAREST)
    _label(canvas, top_label, (x + bar.shape[1] + 4, 12), 0.4)
    _label(canvas, bottom_label, (x + bar.shape[1] + 4, h - 3), 0.4)
    _label(canvas, caption, (2, h + 16), 0.4)
    return canvas


def kernel_scale_figure(kernel, zoom=8):
    """A real photo's estimated kernel with its scale: the gray level's value (0 to the kernel's peak)
    on a bar beside it, and its size in HR pixels underneath.

    Args:
        kernel (np.ndarray | Tensor): (l, l), >= 0, sums to 1.

    Returns:
        np.ndarray: uint8 (H, W, 3) RGB.
    """
    k = _numpy(kernel)
    size = f"{k.shape[0]}x{k.shape[1]} HR pixels, sums to 1"
    return _with_legend(kernel_image(k, zoom), _scale_bar(k.shape[0] * zoom), f"{k.max():.4f}", "0", size)


def uncertainty_figure(log_var, size, colormap=cv2.COLORMAP_INFERNO):
    """:func:`uncertainty_map` with a colour bar (its range of variances) and a one-line caption.

    Returns:
        np.ndarray: uint8 RGB: the (H, W) map, the bar on its right, the caption underneath.
    """
    heat, (lo, hi) = uncertainty_map(log_var, size, colormap)
    caption = "latent variance of the kernel estimate: bright = less certain"
    return _with_legend(heat, _scale_bar(heat.shape[0], colormap), f"{hi:.3g}", f"{lo:.3g}", caption)


def uncertainty_map(log_var, size, colormap=cv2.COLORMAP_INFERNO):
    """Heat map of the estimator's latent variance ``exp(2 log_var)``, averaged over channels.

    ``exp(log_var)`` is the standard deviation of the latent (the authors' convention), so the
    variance is ``exp(2 log_var)``. The map is scaled from its own minimum (dark) to its maximum
    (bright), then resized to ``size`` with bilinear interpolation.

    Args:
        log_var (Tensor | np.ndarray): (1, C, h, w) or (C, h, w) latent log-"variance".
        size (tuple): (H, W) of the output, e.g. the SR size.
        colormap (int): an OpenCV colormap.

    Returns:
        tuple: (np.ndarray uint8 (H, W, 3) RGB heat map, (min, max) variance, floats).
    """
    lv = _numpy(log_var)
    if lv.ndim == 4:
        lv = lv[0]
    var = np.exp(2.0 * lv).mean(axis=0)
    lo, hi = float(var.min()), float(var.max())
    norm = (var - lo) / (hi - lo) if hi > lo else np.zeros_like(var)
    norm = cv2.resize(norm.astype(np.float32), (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    gray = np.round(np.clip(norm, 0, 1) * 255).astype(np.uint8)
    heat = cv2.applyColorMap(gray, colormap)[:, :, ::-1]  # BGR -> RGB
    return np.ascontiguousarray(heat), (lo, hi)


def _inset(img, kernel_rgb, margin=4):
    """Paste a kernel picture into the bottom-right corner of ``img`` (in place), with a white frame."""
    kh, kw = kernel_rgb.shape[:2]
    if kh + 2 * margin > img.shape[0] or kw + 2 * margin > img.shape[1]:
        return
    y, x = img.shape[0] - kh - margin, img.shape[1] - kw - margin
    img[y - 1:y + kh + 1, x - 1:x + kw + 1] = 255
    img[y:y + kh, x:x + kw] = kernel_rgb


def comparison_figure(panels, gap=4, line_height=18, kernel_zoom=4):
    """A row of images with a title above each and an optional kernel inset.

    Args:
        panels (list): tuples ``(title, img uint8 (H, W, 3) RGB, kernel (l, l) or None)``; titles may
            hold several lines (``\\n``). Images smaller than the largest one (e.g. the LR) are enlarged
            to its size with nearest neighbour so that their pixels stay visible.
        gap (int): pixels between panels.
        line_height (int): height of one title line.
        kernel_zoom (int): enlargement of the kernel insets.

    Returns:
        np.ndarray: uint8 (title + H, n*W + (n-1)*gap, 3) RGB.
    """
    h = max(p[1].shape[0] for p in panels)
    w = max(p[1].shape[1] for p in panels)
    n_lines = max(len(p[0].split("\n")) for p in panels)
    top = n_lines * line_height + 6
    canvas = np.full((top + h, len(panels) * w + (len(panels) - 1) * gap, 3), 255, np.uint8)
    for i, (title, img, kernel) in enumerate(panels):
        img = np.ascontiguousarray(img)
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            img = img.copy()
        if kernel is not None:
            _inset(img, kernel_image(kernel, kernel_zoom))
        x = i * (w + gap)
        canvas[top:, x:x + w] = img
        for j, line in enumerate(title.split("\n")):
            cv2.putText(canvas, line, (x + 3, (j + 1) * line_height), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    return canvas
