"""The README is a user's guide that stays true: every script, option file and flag its commands name
exists, every file it links to is there, and it stays short."""
import os
import re
import shlex

import pytest
from conftest import REPO_ROOT

README = os.path.join(REPO_ROOT, "README.md")


def _text():
    with open(README, encoding="utf-8") as handle:
        return handle.read()


def _commands():
    """Every ``python codes/...`` command of the README's code blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", _text(), re.S)
    lines = " \n".join(blocks).replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        for part in line.split("&&"):
            part = part.split("#")[0].strip()
            words = shlex.split(part) if part else []
            if "codes/" in part and words:
                script = next((w for w in words if w.startswith("codes/") and w.endswith(".py")), None)
                if script:
                    commands.append((script, words[words.index(script) + 1:]))
    return commands


def test_readme_names_real_scripts_flags_and_files():
    commands = _commands()
    assert len(commands) >= 10
    for script, args in commands:
        path = os.path.join(REPO_ROOT, script)
        assert os.path.isfile(path), script
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        for arg in args:
            flag = arg.split("=")[0]
            if flag.startswith("-"):
                assert f'"{flag}"' in source, f"{script} has no flag {flag}"
            elif arg.startswith("options/"):
                assert os.path.isfile(os.path.join(REPO_ROOT, arg)), arg


def test_readme_links_exist_and_it_stays_short():
    text = _text()
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert os.path.exists(os.path.join(REPO_ROOT, target)), target
    assert len(text.splitlines()) <= 300
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "pip install -r requirements.txt" in quick and "python -m pytest" in quick


@pytest.mark.parametrize("marker", ["quick-start", "shipped-results", "speed"])
def test_readme_tables_are_rendered(marker):
    """The quick start's, the models' and the speed table come from their records, between their markers."""
    section = _text().split(f"<!-- {marker}:start -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    assert section.strip().startswith("|") and section.count("\n|") >= 3


def test_readme_tables_equal_their_records():
    """The models', speed and authors' key tables are what their records give today."""
    from scripts.render_readme import rendered

    assert rendered(_text()) == _text(), "run python codes/scripts/render_readme.py"


def test_readme_links_the_papers_code_and_data_and_installs_for_a_cpu():
    text = _text()
    for link in ("github.com/Fangzhenxuan/UncertaintySR", "github.com/JingyunLiang/MANet",
                 "data.vision.ee.ethz.ch/cvl/DIV2K", "github.com/LimBee/NTIRE2017",
                 "see.xidian.edu.cn/faculty/wsdong/Projects/ECCV22-UncertaintySR",
                 "](illustrations/visual_comparison_x4.png)"):
        assert link in text, link
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in quick
    assert "Python 3.11.7" in quick and "PyTorch 2.13.0" in quick and "PyTorch 2.4" in quick
    assert "options/train/train_cpu.yml" in text


def test_the_faithfulness_checks_need_nothing_outside_the_repository():
    """The Tests section speaks of no folder beside the checkout; the reference files are in the repository."""
    tests = _text().split("## Tests", 1)[1].split("\n## ", 1)[0]
    assert "shared" not in tests and "codes/tests/reference" in tests
    folder = os.path.join(REPO_ROOT, "codes", "tests", "reference")
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as handle:
        listed = re.findall(r"^\| `([^`]+)` \|", handle.read(), re.M)
    assert len(listed) == 6 and sorted(listed) == sorted(n for n in os.listdir(folder) if n != "README.md")
    from conftest import REFERENCE_DIR

    assert REFERENCE_DIR == folder
