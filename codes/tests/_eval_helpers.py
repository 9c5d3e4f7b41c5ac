"""Helpers shared by the evaluation tests: tiny checkpoints, images, option files, script runs."""
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import yaml

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(CODES_DIR)
TINY_NET = {"which_model_G": "KULNet", "est_nf": 8, "sr_nf": 8, "n_stages": 2}
TINY_NET_YAML = "network_G: {est_nf: 8, sr_nf: 8, n_stages: 2}\n"  # the same widths in an option file


def make_thresholds_positive(net):
    """Make the LSM scale head of a KULNet output about 1 everywhere, so that every threshold
    ``t = w·δ`` is positive and the proximal step is the textbook soft-thresholding, a contraction.

    Random weights give ``t < 0`` at about half of the pixels, where the authors' step returns
    ``2R − u`` and amplifies small input differences stage after stage: tests that compare an
    approximation (bf16, tiles) with the reference need the contraction to bound the difference.
    Returns ``net``.
    """
    with torch.no_grad():
        last = net.SR_net.Decoding.w_generator[-1]
        last.weight.mul_(0.01)
        last.bias.fill_(1.0)
    return net


def tiny_model(scale=4, seed=0, positive_thresholds=False):
    """A random-init KULNet with tiny widths (plumbing tests, not quality), in eval mode;
    ``positive_thresholds``: see :func:`make_thresholds_positive`."""
    from models.networks import define_G

    torch.manual_seed(seed)
    net = define_G({"scale": scale, "network_G": dict(TINY_NET)}).eval()
    return make_thresholds_positive(net) if positive_thresholds else net


def write_tiny_checkpoint(path, scale=4, seed=0):
    """Save a tiny random KULNet with ``save_network``; returns the network_G block to use."""
    from models.networks import save_network

    save_network(tiny_model(scale, seed), str(path), {"iteration": 0})
    return dict(TINY_NET)


def smooth_image(h, w, seed=0, channels=3):
    """A smooth random uint8 image (H, W, C): low-resolution noise upsampled with cv2 bicubic."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, h // 6), max(2, w // 6), channels)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).round().astype(np.uint8)
    return img if channels > 1 and img.ndim == 3 else img.reshape(h, w)


def tiny_train_options(tmp_path, extra=""):
    """Parsed training options of a tiny x4 network on CPU (``tmp_path/hr`` as the unread training
    folder); ``extra``: YAML lines added to the file."""
    from options.options import parse

    (tmp_path / "hr").mkdir(exist_ok=True)
    path = tmp_path / "w.yml"
    path.write_text(f"name: w\nscale: 4\nkernel_size: 11\ndevice: cpu\n"
                    f"datasets:\n  train: {{dataroot_GT: {tmp_path / 'hr'}, GT_size: 32}}\n" + TINY_NET_YAML + extra)
    return parse(str(path))


def write_yaml(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, sort_keys=False)
    return str(path)


def run_script(script, *args, timeout=300, root=REPO_ROOT):
    """Run ``python codes/<script> args`` from the repository ``root``; returns CompletedProcess."""
    cmd = [sys.executable, os.path.join(root, "codes", script), *map(str, args)]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)


def checkout_without_pretrained(tmp_path):
    """A copy of ``codes/`` and ``options/`` under ``tmp_path``: a checkout whose ``pretrained/``
    folder is missing (scripts run there resolve relative paths against the copy). Returns its root."""
    root = os.path.join(str(tmp_path), "checkout")
    skip = shutil.ignore_patterns("__pycache__", "tests")
    for folder in ("codes", "options"):
        shutil.copytree(os.path.join(REPO_ROOT, folder), os.path.join(root, folder), ignore=skip)
    return root


def record_latent_mean(estimator):
    """Wrap ``estimator.latent`` so that each call appends whether it gave the latent mean (z = mean);
    returns that list."""
    used_mean, latent = [], estimator.latent

    def spy(mean, log_var):
        z = latent(mean, log_var)
        used_mean.append(torch.equal(z, mean))
        return z

    estimator.latent = spy
    return used_mean

