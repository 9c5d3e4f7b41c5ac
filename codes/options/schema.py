"""The schema of the training options: every known key with its type, default and constraints.

A YAML option file is checked against :data:`TRAIN_SCHEMA` by :func:`options.options.parse`.
Leaves are :class:`Key` objects; nested dicts are sections. Keys that are not in the schema are
errors (with the nearest valid key suggested), so a misspelt key never silently becomes ``None``.

The ``network_G`` section holds the constructor arguments of the network (:data:`NETWORK_G`), so a
network block maps straight onto its constructor (a test keeps the two in step).
"""
from dataclasses import dataclass

REQUIRED = object()  # default marker: the key must be given


@dataclass(frozen=True)
class Key:
    """One option.

    Attributes:
        type: one of 'int', 'float', 'bool', 'str', 'path', 'int_list', 'float_list'.
        default: value used when the key is absent; ``REQUIRED`` makes it mandatory.
        nullable: whether ``~`` (None) is accepted.
        choices: allowed values, or None.
        help: one line for the options reference.
    """

    type: str
    default: object = None
    nullable: bool = False
    choices: tuple = None
    help: str = ""
    minimum: float = None


def _k(type_, default=None, nullable=False, choices=None, help="", minimum=None):
    return Key(type_, default, nullable or default is None, choices, help, minimum)


def _dataset_common(phase):
    return {
        "name": _k("str", phase, help="a label for logs"),
        "mode": _k("str", "HR", choices=("HR",),
                   help="HR images only: the LR is synthesised on the device from each HR batch"),
        "dataroot_GT": _k("path", REQUIRED, help="folder of HR images, or a prepared LMDB folder "
                                                  "(relative to the repo root)"),
        "data_type": _k("str", None, choices=("img", "lmdb"),
                        help="img: image files; lmdb: a folder made by codes/scripts/prepare_dataset.py "
                             "(data.mdb, meta_info.pkl); ~: lmdb for such a folder or a name ending "
                             "in lmdb, else img"),
    }


TRAIN_DATASET = {
    **_dataset_common("train"),
    "GT_size": _k("int", None, minimum=8,
                  help="HR crop size; default 48*scale (96/144/192), must be divisible by scale"),
    "batch_size": _k("int", 16, minimum=1, help="global batch (split over DDP ranks)"),
    "n_workers": _k("int", 8, minimum=0, help="data-loader workers (in total, split over ranks)"),
    "use_shuffle": _k("bool", True, help="shuffle every epoch (seeded by manual_seed and epoch)"),
    "use_flip": _k("bool", True, help="random horizontal/vertical flips"),
    "use_rot": _k("bool", True, help="random 90-degree rotations"),
    "texture_tries": _k("int", 1, minimum=1, help="draw this many crops per item and keep the most textured "
                                                  "(1: one random crop, the paper); a flat crop shows no blur"),
}

VAL_DATASET = {
    **_dataset_common("val"),
    "sig1": _k("float", 3.5, help="validation kernel first eigenvalue (a variance: authors' quirk)"),
    "sig2": _k("float", 1.5, help="validation kernel second eigenvalue"),
    "theta": _k("float", 0.5233, help="validation kernel angle, radians"),
    "noise": _k("float", 10.0, minimum=0, help="validation noise level, 0..255 units"),
    "max_images": _k("int", None, minimum=1, help="validate on the first N images only (None: all)"),
    "center_crop": _k("int", None, minimum=8, help="validate on the centre crop of this many HR pixels a side "
                                                   "(None: whole images): faster learning curves"),
}

DEGRADATION = {
    "random_kernel": _k("bool", True, help="draw a random anisotropic kernel per image"),
    "sig_min": _k("float", 0.2, minimum=0, help="smallest kernel eigenvalue"),
    "sig_max": _k("float", 4.0, minimum=0, help="largest kernel eigenvalue"),
    "rate_iso": _k("float", 0.0, minimum=0, help="fraction of isotropic kernels"),
    "random_noise": _k("bool", True, help="noise level ~ U(0, noise_high) per image"),
    "noise_high": _k("float", 25.0, minimum=0, help="largest training noise level, 0..255 units"),
    "noise": _k("float", 0.0, minimum=0, help="fixed noise level when random_noise is false"),
    "sig1": _k("float", None, help="fixed kernel (random_kernel false): first eigenvalue"),
    "sig2": _k("float", None, help="fixed kernel: second eigenvalue"),
    "theta": _k("float", None, help="fixed kernel: angle in radians"),
    "jpeg_low": _k("int", None, minimum=0, help="JPEG quality ~ U(jpeg_low, 100); None: no JPEG"),
    "curriculum_iter": _k("int", 0, minimum=0, help="the first N iterations draw kernels from the narrowest and "
                                                    "widest fifth of [sig_min, sig_max] only, half a batch each "
                                                    "(0: the full range from the start, the paper)"),
}

TRAIN = {
    "lr_G": _k("float", 2e-4, minimum=0, help="Adam learning rate"),
    "beta1": _k("float", 0.9, help="Adam beta1"),
    "beta2": _k("float", 0.999, help="Adam beta2"),
    "weight_decay_G": _k("float", 0.0, minimum=0, help="Adam weight decay"),
    "niter": _k("int", 480000, minimum=1, help="total iterations"),
    "lr_scheme": _k("str", "MultiStepLR", choices=("MultiStepLR", "CosineAnnealingRestartLR"),
                    help="learning-rate schedule"),
    "lr_steps": _k("int_list", [120000, 240000, 360000, 480000],
                   help="MultiStepLR milestones (iterations)"),
    "lr_gamma": _k("float", 0.5, help="MultiStepLR decay factor"),
    "T_period": _k("int_list", None, help="cosine: length of each cycle (iterations)"),
    "restart_weights": _k("float_list", None, help="cosine: peak lr factor of each cycle"),
    "eta_min": _k("float", 1e-7, minimum=0, help="cosine: lowest lr"),
    "warmup_iter": _k("int", 0, minimum=0, help="linear warm-up iterations (0: none)"),
    "pixel_criterion": _k("str", "l1", choices=("l1",), help="SR loss"),
    "pixel_weight": _k("float", 1.0, minimum=0, help="weight of the SR L1 loss"),
    "kernel_weight": _k("float", 1.0, minimum=0, help="weight of the kernel loss"),
    "kernel_loss": _k("str", "authors", choices=("authors", "l1", "map"),
                      help="authors: 1e4*mean|k_est-k|/(h*w*s^2), whose weight falls with the patch size and "
                           "the scale (the paper's numbers); l1: the L1 distance between the kernels (sum over "
                           "their entries), the same weight at every patch size; map: that distance between "
                           "every pixel's kernel and the true one, averaged (as MANet; train.mode estimator)"),
    "mode": _k("str", "joint", choices=("joint", "estimator", "sr"),
               help="joint: the whole network with every loss (the paper); estimator: the kernel estimator "
                    "alone with the kernel loss and the KL term, the SR part neither run nor trained; sr: the SR "
                    "part alone with the pixel loss on a frozen estimator's kernels (its latent mean)"),
    "kl_weight": _k("float", 1e-3, minimum=0, help="weight of the KL term"),
    "kl_free_bits": _k("float", 0.0, minimum=0, help="free bits: each latent channel's KL counts only above this "
                                                     "floor (0: the plain mean, the paper)"),
    "kl_warmup_iter": _k("int", 0, minimum=0, help="the KL weight grows linearly from 0 over this many "
                                                   "iterations (0: full weight from the start, the paper)"),
    "estimator_lr_mult": _k("float", 1.0, minimum=0, help="the kernel estimator's learning rate is lr_G times this "
                                                          "(1: one rate for the whole network, the paper)"),
    "kernel_head_lr_mult": _k("float", 1.0, minimum=0, help="the estimator's last layer (the kernel logits) "
                                                            "gets a further factor on its learning rate"),
    "latent_mean_iter": _k("int", 0, minimum=0,
                           help="the first N iterations train with the estimator's latent mean (z = mean) "
                                "instead of a sample z = mean + noise (0: sample from the start, the paper); "
                                "the unit noise of a sample hides the kernel from the estimator early on"),
    "lr_consistency_weight": _k("float", 0.0, minimum=0,
                                help="LR-consistency L1 weight (0: off, the released setting)"),
    "kl_weight_lr_consistency": _k("float", 1e-4, minimum=0,
                                   help="KL weight used instead of kl_weight when LR consistency is on"),
    "precision": _k("str", "auto", choices=("auto", "fp16", "bf16", "fp32"),
                    help="auto: fp16 + GradScaler on CUDA (authors), fp32 on CPU"),
    "grad_clip": _k("float", None, minimum=0, help="clip the gradient norm to this (None: off)"),
    "max_nonfinite": _k("int", 100, minimum=1,
                        help="stop after this many non-finite losses in a row"),
    "compile": _k("str", "auto", choices=("auto", "eager", "default", "reduce-overhead", "max-autotune"),
                  help="torch.compile of the training step: auto = reduce-overhead (CUDA graphs) on CUDA "
                       "for runs of 10,000 iterations or more, eager otherwise; a failed compilation "
                       "goes on eagerly"),
    "blur_impl": _k("str", "auto", choices=("auto", "direct", "fft", "transposed"),
                    help="the DLSM's 21x21 blurs (speed only, equal to float rounding): auto = what was "
                         "measured to win (FFT on the CPU, FFT for x4 training crops on CUDA, direct "
                         "elsewhere); fft; direct; transposed (the literal path's)"),
    "deterministic": _k("bool", False, help="deterministic CUDA kernels (bit-exact GPU resume, slower)"),
    "manual_seed": _k("int", 0, minimum=0, help="seed of every random generator (per rank: seed+rank)"),
    "val_freq": _k("int", 1000, minimum=1, help="validate every N iterations"),
    "val_at_start": _k("bool", False, help="validate once before the first iteration too (the starting point of "
                                           "the learning curve in val_curve.csv)"),
}

LOGGER = {
    "print_freq": _k("int", 100, minimum=1, help="log losses every N iterations"),
    "save_checkpoint_freq": _k("int", 5000, minimum=1, help="save weights + state every N iterations"),
    "use_tb_logger": _k("bool", True, help="write TensorBoard events (experiment/tb_logger)"),
    "n_val_images": _k("int", 3, minimum=0, help="SR/kernel images saved at each validation"),
    "progress_bar": _k("bool", True, help="tqdm progress bar on the console"),
}

# KULNet's constructor arguments other than scale and kernel_size (set at the top level)
NETWORK_G = {
    "which_model_G": _k("str", "KULNet", choices=("KULNet",), help="the network class"),
    "in_nc": _k("int", 3, minimum=1, help="image channels"),
    "est_nf": _k("int", 64, minimum=1, help="kernel estimator width (64 in the paper)"),
    "sr_nf": _k("int", 32, minimum=1, help="DLSM width (32 in the paper)"),
    "n_stages": _k("int", 4, minimum=1, help="DLSM stages T (4 in the paper)"),
    "sample_at_eval": _k("bool", False, help="sample the latent at test time too, as the authors' test code"),
    "estimator_input": _k("str", "image", choices=("image", "contrast"),
                          help="what the kernel estimator sees: image (the paper) or contrast (each channel minus its "
                               "local mean over its local spread, 9x9 windows): blur is fine detail relative to "
                               "contrast; recorded in checkpoints (weights trained with one do not work with the "
                               "other)"),
}

PATH = {
    "experiments_root": _k("path", "experiments", help="parent of the experiment folders"),
    "pretrain_model_G": _k("path", None, help="initial weights (ours or the authors' .pth)"),
    "pretrain_model_K": _k("path", None, help="initial weights of the kernel estimator alone, loaded after "
                           "pretrain_model_G (a whole-network checkpoint's kernel_extra.* or an estimator's own)"),
    "strict_load": _k("bool", True, help="require every key when loading pretrain_model_G"),
    "resume_state": _k("path", None, help="training state to resume from (.state file)"),
}

TRAIN_SCHEMA = {
    "name": _k("str", REQUIRED, help="experiment name: experiments/<name>/"),
    "model": _k("str", "kulnet", choices=("kulnet",), help="training wrapper (models.MODELS)"),
    "scale": _k("int", REQUIRED, choices=(2, 3, 4), help="SR scale"),
    "kernel_size": _k("int", 21, minimum=3, help="blur kernel size l"),
    "device": _k("str", "auto", help="auto (CUDA if present), cpu, cuda or cuda:N"),
    "datasets": {"train": TRAIN_DATASET, "val": VAL_DATASET},
    "degradation": DEGRADATION,
    "network_G": NETWORK_G,
    "train": TRAIN,
    "logger": LOGGER,
    "path": PATH,
}
# Sections that may be omitted entirely (then all their defaults apply).
OPTIONAL_SECTIONS = ("datasets.val", "degradation", "network_G", "logger", "path", "train")


def options_reference(schema, prefix=""):
    """Every key of ``schema`` with its type, default and help, as a Markdown table (``--help-options``).

    Returns:
        str: one row per key, sections flattened as ``section.key``.
    """
    def rows(node, path):
        for key, spec in node.items():
            where = f"{path}.{key}" if path else key
            if isinstance(spec, dict):
                yield from rows(spec, where)
            elif isinstance(spec, Key):
                default = "(required)" if spec.default is REQUIRED else repr(spec.default)
                choices = f" ({' / '.join(map(str, spec.choices))})" if spec.choices else ""
                yield f"| `{where}` | {spec.type}{choices} | {default} | {spec.help} |"
    return "\n".join(["| key | type | default | help |", "| --- | --- | --- | --- |", *rows(schema, prefix)])

