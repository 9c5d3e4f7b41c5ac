"""Training models: ``create_model(opt)`` picks the wrapper named by ``opt['model']``."""
from utils.errors import KULNetError


def _kulnet(opt, **kwargs):
    from models.kulnet_model import KULNetModel

    return KULNetModel(opt, **kwargs)


MODELS = {"kulnet": _kulnet}


def create_model(opt, device=None, rank=0, world_size=1):
    """Build the training wrapper.

    Args:
        opt (dict): parsed training options; ``opt['model']`` names the wrapper (``'kulnet'``).
        device (torch.device | str | None): None: ``opt['device']`` (auto: CUDA if present).
        rank (int), world_size (int): DDP placement (1 process by default).
    """
    name = opt.get("model", "kulnet")
    if name not in MODELS:
        raise KULNetError(f"options: model={name!r} is unknown; use one of {sorted(MODELS)}")
    return MODELS[name](opt, device=device, rank=rank, world_size=world_size)
