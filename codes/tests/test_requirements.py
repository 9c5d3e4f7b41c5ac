"""requirements.txt lists what the code imports, with lower bounds, and nothing it does not use."""
import ast
import os
import re
import sys

from conftest import CODES_DIR, REPO_ROOT

# import name -> distribution name, where they differ
DISTRIBUTIONS = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml", "skimage": "scikit-image"}
OURS = {"data", "models", "evaluation", "options", "utils", "benchmarks", "scripts", "conftest", "train", "test",
        "test_real", "codes"}


def _requirements():
    """{distribution: lower bound} of requirements.txt."""
    found = {}
    with open(os.path.join(REPO_ROOT, "requirements.txt"), encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#")[0].strip()
            if line:
                name, bound = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", line).groups()
                found[name.lower()] = bound
    return found


def _imported():
    """Top-level names of the modules our code imports (absolute imports only)."""
    names = set()
    for folder, _, files in os.walk(CODES_DIR):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    tree = ast.parse(handle.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        names.update(a.name.split(".")[0] for a in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.level == 0:
                        names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_required_with_a_lower_bound():
    third_party = {n for n in _imported() - OURS - set(sys.stdlib_module_names) if not n.startswith("_")}
    required = _requirements()
    wanted = {DISTRIBUTIONS.get(n, n).lower() for n in third_party}
    assert wanted <= set(required), wanted - set(required)
    # tensorboard is imported through torch.utils.tensorboard
    assert set(required) - wanted == {"tensorboard"}
    assert "torchvision" not in required
    assert tuple(int(p) for p in required["torch"].split(".")) >= (2, 4)  # torch.amp.is_autocast_available
