"""The house rules of codes/: imports run one way (utils ← options ← data ← models ← evaluation ←
the scripts), and the network_G option schema is the network's constructor."""
import ast
import inspect
import os

import pytest

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a package may import from its own floor and the floors below it, never from one above
FLOORS = {"utils": 0, "options": 1, "data": 2, "models": 3, "evaluation": 4}


def _imported_packages(path):
    """Top-level names of ``codes/`` packages that the module at ``path`` imports (anywhere in it)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & set(FLOORS)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_imports_run_one_way(package):
    wrong = []
    for root, _, files in os.walk(os.path.join(CODES_DIR, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                wrong += [f"{os.path.relpath(path, CODES_DIR)} imports {other}" for other in _imported_packages(path)
                          if FLOORS[other] > FLOORS[package]]
    assert not wrong, "; ".join(wrong)


def test_network_g_schema_is_the_constructor():
    from models.modules.kulnet import KULNet
    from models.networks import NETWORKS, TOP_LEVEL_ARGS
    from options.schema import NETWORK_G

    params = {n: p.default for n, p in inspect.signature(KULNet).parameters.items() if n not in TOP_LEVEL_ARGS}
    assert {k: v.default for k, v in NETWORK_G.items() if k != "which_model_G"} == params
    assert NETWORK_G["which_model_G"].choices == tuple(NETWORKS)
