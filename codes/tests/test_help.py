"""Each user-facing script's --help says what a run costs (time on 2 CPU cores, or on a GPU)."""
import importlib.util
import os
import re

import pytest

from options.options import REPO_ROOT


def _module(relative):
    name = "help_" + re.sub(r"\W", "_", relative)
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "codes", relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", ["test.py", "test_real.py", "train.py", "scripts/kernel_response.py"])
def test_help_states_the_cost(script, capsys):
    module = _module(script)
    with pytest.raises(SystemExit) as stop:
        module.parse_args(["--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Cost:" in text and "on 2 CPU cores" in text
    assert not re.search(r"in seconds|matter of seconds", text)  # kernel_response.py's old claim
