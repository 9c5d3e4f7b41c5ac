"""Export one of our checkpoints for the authors' code: a bare state_dict their ``load_state_dict`` takes.

    python codes/scripts/export_authors.py pretrained/KULNet_x4.pth experiments/pretrained_models/x4/latest_G.pth

Our checkpoints are ``{format, params, meta}``; the authors' code (KULNet, built on MANet) loads a
plain ``{name: tensor}`` dict into their BlindNet. The weights are loaded into our network first (so a
broken file fails here), checked against the network of the paper's widths (the authors' BlindNet has
the same names and shapes at x2, x3 and x4), and written as float32 tensors without a wrapper, with
the names their checkpoints have. The scale is not stored in such a file: keep it in the file or folder
name (``x4/latest_G.pth``), as their released files do. The scale of the checkpoint read is taken from
its metadata, else from its file or folder name as the loader reads it, else from ``--scale``.

The output is written to a temporary file and moved into place; an existing file is replaced only
with ``--overwrite``, and the checkpoint read never.
"""
import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: put codes/ on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models.networks import (  # noqa: E402
    define_G,
    load_network,
    network_options_for_checkpoint,
    read_checkpoint,
    scale_from_name,
)
from utils.atomic_save import atomic_torch_save  # noqa: E402
from utils.errors import KULNetError, run_cli  # noqa: E402
from utils.output_dir import check_new_file  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="our checkpoint (or any file load_network reads)")
    p.add_argument("out", help="the bare state_dict to write (e.g. .../x4/latest_G.pth)")
    p.add_argument("--scale", type=int, help="the scale, when neither the checkpoint nor its path names one")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT (never the checkpoint read)")
    return p.parse_args(argv)


def export_authors(path, out, scale=None, overwrite=False):
    """Write the weights of ``path`` to ``out`` as a bare float32 state_dict of the authors' BlindNet.

    Returns:
        dict: the state_dict written.

    Raises:
        KULNetError: unreadable file, no scale known, weights of other widths than the authors' network,
            or an ``out`` that is the checkpoint, a folder, or an existing file without ``overwrite``.
    """
    check_new_file(out, "out", overwrite, {"checkpoint": path})
    contents = read_checkpoint(path)
    scale = scale or contents[2].get("scale") or scale_from_name(path)
    if scale is None:
        raise KULNetError(f"{path}: neither the checkpoint nor its file or folder name (x4/latest_G.pth) gives "
                          f"its scale; give --scale 2, 3 or 4")
    net_opt = network_options_for_checkpoint({}, path, contents)
    if net_opt.get("estimator_input", "image") != "image":  # their estimator takes the image itself
        raise KULNetError(f"{path}: its estimator was trained with network_G.estimator_input = "
                          f"{net_opt['estimator_input']}, which the authors' code does not have; it would "
                          f"estimate nonsense there")
    net = define_G({"scale": scale, "network_G": net_opt})
    load_network(net, path, strict=True, expected_scale=scale, contents=contents)
    theirs = define_G({"scale": scale}).state_dict()  # the paper's widths: the authors' BlindNet
    params = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    other = [k for k in theirs if k not in params or params[k].shape != theirs[k].shape]
    if other or len(params) != len(theirs):
        raise KULNetError(f"{path}: weights of other widths than the authors' network (e.g. {other[:2]}); "
                          f"their code builds est_nf 64, sr_nf 32 and 4 stages, and cannot load this checkpoint")
    try:
        atomic_torch_save(params, out)
    except OSError as err:
        raise KULNetError(f"out {out}: cannot be written ({err.strerror or err}); give a writable place") from None
    return params


def main(argv=None):
    args = parse_args(argv)
    params = export_authors(args.checkpoint, args.out, args.scale, args.overwrite)
    print(f"wrote {args.out}: a bare state_dict of {len(params)} float32 tensors, for the authors' "
          f"load_state_dict")
    return 0


if __name__ == "__main__":
    run_cli(main)
