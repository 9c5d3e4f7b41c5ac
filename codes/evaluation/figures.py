"""Figures made from our own outputs: kernels, uncertainty heat maps, visual comparisons.

All functions take and return RGB ``uint8`` numpy images (H, W, 3) (write them with
:func:`utils.image_io.write_image`); text is drawn with OpenCV (no other dependency).

Public API:
    kernel_image, kernel_centre, kernel_centroid, kernel_figure, kernel_scale_figure, uncertainty_map,
    uncertainty_figure, comparison_figure
"""
import cv2
import numpy as np
import torch

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREEN = (40, 220, 40)
_RED = (255, 40, 40)
_GRAY = (110, 110, 110)
_DARK_GREEN = (20, 120, 20)
# the latent variance's colour scale, absolute: the prior's variance (1) sits in the middle, so a map
# that is as unsure as the prior everywhere looks flat
UNCERTAINTY_RANGE = (0.0, 2.0)


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


def kernel_centre(kernel_size, scale=None):
    """Where a centred kernel sits on the grid, (x, y) in taps from the top-left tap.

    The authors draw a kernel on an ``l' x l'`` grid, ``l' = l - s + 1``, placed in the top-left corner
    of the ``l x l`` array (:mod:`data.kernels`), so its centre is ``(l' - 1) / 2`` (8.5 at x4 for
    l = 21), not the array's ``(l - 1) / 2``; without a scale, the array's centre.
    """
    side = kernel_size - scale + 1 if scale else kernel_size
    return (side - 1) / 2, (side - 1) / 2


def kernel_centroid(kernel):
    """(x, y) of a kernel's centre of mass, in taps from the top-left tap."""
    k = np.clip(_numpy(kernel), 0, None)
    total = k.sum()
    if total <= 0:
        return (k.shape[1] - 1) / 2, (k.shape[0] - 1) / 2
    y, x = np.mgrid[:k.shape[0], :k.shape[1]]
    return float((k * x).sum() / total), float((k * y).sum() / total)


def _to_pixel(point, zoom):
    """A tap position (x, y) -> the pixel at its centre in a kernel image enlarged ``zoom`` times."""
    return int(round((point[0] + 0.5) * zoom)), int(round((point[1] + 0.5) * zoom))


def _mark_kernel(img, kernel, centre, zoom):
    """Draw the grid (a gray frame; the shifted grid's square, whose centre is ``centre``, a green one),
    its centre (green cross) and the kernel's centroid (red ring) on the kernel's image, in place."""
    side = int(round(2 * centre[0] + 1)) * zoom
    cv2.rectangle(img, (0, 0), (img.shape[1] - 1, img.shape[0] - 1), _GRAY, 1)
    cv2.rectangle(img, (0, 0), (side - 1, side - 1), _DARK_GREEN, 1)
    size = max(4, zoom // 2)
    cv2.drawMarker(img, _to_pixel(centre, zoom), _GREEN, cv2.MARKER_CROSS, 2 * size + 1, 2, cv2.LINE_AA)
    cv2.circle(img, _to_pixel(kernel_centroid(kernel), zoom), size, _RED, 2, cv2.LINE_AA)


def _grid_caption(kernel_size, scale):
    """The line naming the grid whose centre the green cross marks."""
    cx, _ = kernel_centre(kernel_size, scale)
    if not scale:
        return f"green +: the centre of the {kernel_size}x{kernel_size} grid ({cx:g}, {cx:g})"
    side = kernel_size - scale + 1
    return (f"green +: centre ({cx:g}, {cx:g}) of the authors' shifted grid (the green square: the "
            f"top-left {side}x{side} of {kernel_size}x{kernel_size} at x{scale})")


def _text_width(lines, scale=0.5):
    """Pixels the widest of ``lines`` takes in :func:`_label`'s font at ``scale``, with a margin."""
    return max(cv2.getTextSize(line, _FONT, scale, 3)[0][0] for line in lines) + 8


def _caption_block(lines, width, line_height=20, scale=0.5):
    """Caption lines under a figure: (len(lines) * line_height + 6, width, 3) black with white text."""
    block = np.zeros((len(lines) * line_height + 6, width, 3), np.uint8)
    for i, line in enumerate(lines):
        _label(block, line, (4, (i + 1) * line_height), scale)
    return block


def kernel_figure(k_est, k_true=None, kernel_psnr=None, zoom=16, gap=12, scale=None):
    """True and estimated kernel side by side, each normalised to its own maximum, with the grid's
    centre (green cross) and each kernel's centroid (red ring) marked, and a caption saying both.

    Args:
        k_est (np.ndarray | Tensor): (l, l) estimated kernel.
        k_true (np.ndarray | Tensor | None): (l, l) true kernel (None for real photos).
        kernel_psnr (float | None): written under the kernels, in dB.
        zoom (int): nearest-neighbour enlargement.
        gap (int): pixels between the two kernels.
        scale (int | None): the SR scale: the cross marks the centre of the authors' shifted grid
            (:func:`kernel_centre`); None: the array's centre.

    Returns:
        np.ndarray: uint8 (H, W, 3) RGB with the labels 'true' / 'estimated' and the caption.
    """
    panels = [("estimated", k_est)]
    if k_true is not None:
        panels.insert(0, ("true", k_true))
    size = _numpy(k_est).shape[0]
    centre = kernel_centre(size, scale)
    side = size * zoom
    top = 24
    panels_width = len(panels) * side + (len(panels) - 1) * gap
    lines = [_grid_caption(size, scale), "red o: centroid, " + ", ".join(
        f"{name} ({kernel_centroid(k)[0]:.1f}, {kernel_centroid(k)[1]:.1f})" for name, k in panels) + " (x, y in taps)"]
    if kernel_psnr is not None:
        lines.insert(0, f"kernel PSNR {kernel_psnr:.2f} dB")
    width = max(panels_width, _text_width(lines))
    canvas = np.zeros((top + side, width, 3), np.uint8)
    for i, (name, kernel) in enumerate(panels):
        img = kernel_image(kernel, zoom)
        _mark_kernel(img, kernel, centre, zoom)
        x = i * (side + gap)
        canvas[top:top + side, x:x + side] = img
        _label(canvas, name, (x + 2, 18), 0.6)
    return np.concatenate([canvas, _caption_block(lines, width)], axis=0)


def _scale_bar(height, colormap=None, width=12):
    """A vertical bar from the top (the maximum) to the bottom (0 or the minimum): (height, width, 3)."""
    ramp = np.linspace(255, 0, height).round().astype(np.uint8)[:, None].repeat(width, axis=1)
    if colormap is None:
        return np.repeat(ramp[:, :, None], 3, axis=2)
    return np.ascontiguousarray(cv2.applyColorMap(ramp, colormap)[:, :, ::-1])


def _with_legend(img, bar, top_label, bottom_label, caption, gap=6):
    """``img`` with ``bar`` on its right (labelled at its ends) and caption lines underneath
    (``caption``: a string or a list of lines)."""
    lines = [caption] if isinstance(caption, str) else list(caption)
    h, w = img.shape[:2]
    width = max(w + gap + bar.shape[1] + 4 + _text_width([top_label, bottom_label]), _text_width(lines))
    canvas = np.zeros((h, width, 3), np.uint8)
    canvas[:h, :w] = img
    x = w + gap
    canvas[:h, x:x + bar.shape[1]] = cv2.resize(bar, (bar.shape[1], h), interpolation=cv2.INTER_NEAREST)
    _label(canvas, top_label, (x + bar.shape[1] + 4, 14), 0.5)
    _label(canvas, bottom_label, (x + bar.shape[1] + 4, h - 4), 0.5)
    return np.concatenate([canvas, _caption_block(lines, width)], axis=0)


def kernel_scale_figure(kernel, zoom=16, scale=None):
    """A real photo's estimated kernel with its scale: the gray level's value (0 to the kernel's peak)
    on a bar beside it, the grid's centre (green cross) and the kernel's centroid (red ring) marked,
    its size in HR pixels and the grid named underneath.

    Args:
        kernel (np.ndarray | Tensor): (l, l), >= 0, sums to 1.
        zoom (int): nearest-neighbour enlargement.
        scale (int | None): the SR scale (see :func:`kernel_figure`).

    Returns:
        np.ndarray: uint8 (H, W, 3) RGB.
    """
    k = _numpy(kernel)
    img = kernel_image(k, zoom)
    _mark_kernel(img, k, kernel_centre(k.shape[0], scale), zoom)
    cx, cy = kernel_centroid(k)
    lines = [f"{k.shape[0]}x{k.shape[1]} HR pixels, sums to 1", _grid_caption(k.shape[0], scale),
             f"red o: the centroid ({cx:.1f}, {cy:.1f}) (x, y in taps)"]
    return _with_legend(img, _scale_bar(k.shape[0] * zoom), f"{k.max():.4f}", "0", lines)


def uncertainty_figure(log_var, size, colormap=cv2.COLORMAP_INFERNO):
    """:func:`uncertainty_map` with a colour bar (its absolute range) and a caption giving the map's own
    range of variances.

    Returns:
        np.ndarray: uint8 RGB: the (H, W) map, the bar on its right, the caption underneath.
    """
    heat, (lo, hi), (bar_lo, bar_hi) = uncertainty_map(log_var, size, colormap)
    lines = ["latent variance of the kernel estimate: bright = less certain",
             f"colour scale {bar_lo:g} to {bar_hi:.3g} (the prior: 1); this map {lo:.3g} to {hi:.3g}"]
    return _with_legend(heat, _scale_bar(heat.shape[0], colormap), f"{bar_hi:.3g}", f"{bar_lo:g}", lines)


def uncertainty_map(log_var, size, colormap=cv2.COLORMAP_INFERNO, value_range=UNCERTAINTY_RANGE):
    """Heat map of the estimator's latent variance ``exp(2 log_var)``, averaged over channels.

    ``exp(log_var)`` is the standard deviation of the latent (the authors' convention), so the
    variance is ``exp(2 log_var)``. The colours follow an absolute scale, ``value_range`` (0 to 2 by
    default, the prior's variance 1 in the middle; widened to the map's maximum when it is above), so
    that a map as unsure everywhere as the prior looks flat; then resized to ``size`` (bilinear).

    Args:
        log_var (Tensor | np.ndarray): (1, C, h, w) or (C, h, w) latent log-"variance".
        size (tuple): (H, W) of the output, e.g. the SR size.
        colormap (int): an OpenCV colormap.
        value_range (tuple): (low, high) variances of the colour scale's ends.

    Returns:
        tuple: (np.ndarray uint8 (H, W, 3) RGB heat map, (min, max) variance of the map, (low, high) of
        the colour scale), floats.
    """
    lv = _numpy(log_var)
    if lv.ndim == 4:
        lv = lv[0]
    var = np.exp(2.0 * lv).mean(axis=0)
    lo, hi = float(var.min()), float(var.max())
    bar_lo, bar_hi = float(value_range[0]), max(float(value_range[1]), hi)
    norm = (var - bar_lo) / (bar_hi - bar_lo)
    norm = cv2.resize(norm.astype(np.float32), (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    gray = np.round(np.clip(norm, 0, 1) * 255).astype(np.uint8)
    heat = cv2.applyColorMap(gray, colormap)[:, :, ::-1]  # BGR -> RGB
    return np.ascontiguousarray(heat), (lo, hi), (bar_lo, bar_hi)


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
