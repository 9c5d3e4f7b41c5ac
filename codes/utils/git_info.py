"""The git commit of this checkout, for checkpoints and results files."""
import os
import subprocess

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def git_commit(short=False, mark_dirty=False):
    """str | None: ``$KULNET_CODE_VERSION`` when set (for a copy of the tree whose ``.git`` is stale
    or absent, such as a copy sent to a remote GPU machine, where HEAD reads an older commit); else the commit of HEAD
    (``short``: abbreviated), with ``+dirty`` when ``mark_dirty`` and tracked files differ from it;
    None outside a git checkout or without git."""
    if os.environ.get("KULNET_CODE_VERSION"):
        return os.environ["KULNET_CODE_VERSION"]

    def run(*args):
        return subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = run("rev-parse", *(["--short"] if short else []), "HEAD")
        if commit and mark_dirty and run("status", "--porcelain", "--untracked-files=no"):
            commit += "+dirty"
        return commit or None
    except (OSError, subprocess.SubprocessError):
        return None
