"""x8 self-ensemble (flips and transposes) that respects the authors' kernel placement.

Why the plain recipe (flip the LR, run, flip the SR back, average) is wrong here
--------------------------------------------------------------------------------
The synthetic LR pixel ``i`` is a blur centred on HR pixel ``s*i - (s-1)/2``: the Gaussian sits in
the top-left ``l' x l'`` block (``l' = l - s + 1``) of the 21x21 kernel, whose centre is
``(s-1)/2`` pixels before the centre ``l // 2`` of the replicate padding (the authors' top-left kernel grid, a quirk).
The network learns that convention. Flip an LR image and its pixel ``i`` is centred on
``s*i + 3(s-1)/2`` of the flipped HR: ``2(s-1)`` HR pixels off the convention (6 pixels at x4).
Exactly (up to the image border, see ``tests/test_self_ensemble.py``)::

    flip(degrade(x, k)) == degrade(shift(flip(x), 2(s-1)), flip_block(k))

where ``flip_block`` mirrors the kernel inside its top-left block (the 21x21 kernel flipped, then
rolled back by ``s-1`` so that it sits top-left again) and ``shift(z, d)[X] = z[X + d]``.
So a flipped LR is an ordinary in-distribution input whose HR is the flipped HR moved by ``2(s-1)``
pixels, and whose kernel is ``flip_block(k)``. Each pass therefore

1. transforms the LR (optional transpose, then flips),
2. gives the network ``flip_block``/transpose of the known kernel (non-blind path), or lets it
   estimate its own kernel (blind path, the default),
3. moves the SR output back by ``2(s-1)`` HR pixels along every flipped axis (the strip that has no
   value is left out of that pass's average: each output pixel is averaged over the passes that
   cover it; the identity pass covers all), and undoes the flips and the transpose;
4. the kernels the passes estimated are brought back the same way (``flip_block`` is its own
   inverse) and averaged, so the ensemble also reports one kernel.

A transpose needs no correction (both axes follow the same convention). The latent maps
(``mean``, ``log_var``) of the result are those of the identity pass.

Public API:
    TRANSFORMS, transform_image, inverse_image, transform_kernel, inverse_kernel, sr_shift,
    self_ensemble
"""
import torch

# (transpose, flip along H, flip along W): the 8 elements of the dihedral group of the square.
TRANSFORMS = [(t, fh, fw) for t in (False, True) for fh in (False, True) for fw in (False, True)]


def _flip_dims(fh, fw):
    return [d for d, on in ((-2, fh), (-1, fw)) if on]


def transform_image(x, transpose, flip_h, flip_w):
    """Apply one dihedral transform to images (B, C, H, W): transpose first, then flips."""
    if transpose:
        x = x.transpose(-2, -1)
    dims = _flip_dims(flip_h, flip_w)
    return x.flip(dims) if dims else x


def inverse_image(x, transpose, flip_h, flip_w):
    """Undo :func:`transform_image`."""
    dims = _flip_dims(flip_h, flip_w)
    if dims:
        x = x.flip(dims)
    return x.transpose(-2, -1) if transpose else x


def _flip_block(k, dim, scale):
    """Mirror a top-left-placed kernel inside its block: flip the l x l array, roll by -(s-1)."""
    return k.flip(dim).roll(-(scale - 1), dim)


def transform_kernel(k, transpose, flip_h, flip_w, scale):
    """The kernel that goes with :func:`transform_image` of the LR (authors' top-left placement).

    Args:
        k (Tensor): (B, l, l) kernels whose support lies in the top-left (l-s+1)^2 block.
        transpose, flip_h, flip_w (bool): the transform.
        scale (int): s.

    Returns:
        Tensor: (B, l, l), still top-left placed, sums to 1.
    """
    if transpose:
        k = k.transpose(-2, -1)
    for dim in _flip_dims(flip_h, flip_w):
        k = _flip_block(k, dim, scale)
    return k


def inverse_kernel(k, transpose, flip_h, flip_w, scale):
    """Undo :func:`transform_kernel` (a block flip is its own inverse)."""
    for dim in _flip_dims(flip_h, flip_w):
        k = _flip_block(k, dim, scale)
    return k.transpose(-2, -1) if transpose else k


def sr_shift(scale):
    """HR pixels by which a flipped pass's output is off the convention: ``2(s-1)``."""
    return 2 * (scale - 1)


def _realign(sr, flip_h, flip_w, shift):
    """Move ``sr`` by ``+shift`` along each flipped axis; returns (moved, valid mask (1, 1, H, W))."""
    valid = torch.ones((1, 1) + tuple(sr.shape[-2:]), dtype=sr.dtype, device=sr.device)
    for dim, on in ((-2, flip_h), (-1, flip_w)):
        if on and shift:
            sr = torch.cat([sr.narrow(dim, 0, shift), sr.narrow(dim, 0, sr.shape[dim] - shift)], dim)
            valid = valid.clone()
            valid.narrow(dim, 0, shift).zero_()
    return sr, valid


def self_ensemble(forward, lr, scale, kernel=None):
    """x8 self-ensemble of a KULNet-like forward function.

    Args:
        forward (callable): ``forward(lr, kernel=None) -> KULNetOutput``-like NamedTuple with
            ``sr`` (B, 3, s*h, s*w) and ``kernel`` (B, l, l) (e.g. ``model`` itself, or a tiled run).
        lr (Tensor): (B, 3, h, w) in [0, 1].
        scale (int): s.
        kernel (Tensor | None): (B, l, l) known kernel for the non-blind path; None: blind.

    Returns:
        NamedTuple of the same type as ``forward``'s: ``sr`` averaged over the 8 passes, ``kernel``
        the mean of the 8 kernels brought back to the input's orientation (the given kernel on the
        non-blind path), the other fields from the identity pass.
    """
    shift = sr_shift(scale)
    total = count = kernels = None
    identity = None
    for t, fh, fw in TRANSFORMS:
        k_in = None if kernel is None else transform_kernel(kernel, t, fh, fw, scale)
        out = forward(transform_image(lr, t, fh, fw), k_in)
        if identity is None:
            identity = out
        sr, valid = _realign(out.sr, fh, fw, shift)
        sr, valid = inverse_image(sr, t, fh, fw), inverse_image(valid, t, fh, fw)
        k_back = inverse_kernel(out.kernel, t, fh, fw, scale)
        if total is None:
            total, count, kernels = sr * valid, valid, k_back
        else:
            total, count, kernels = total + sr * valid, count + valid, kernels + k_back
    k_out = kernel if kernel is not None else kernels / len(TRANSFORMS)
    return identity._replace(sr=total / count, kernel=k_out)
