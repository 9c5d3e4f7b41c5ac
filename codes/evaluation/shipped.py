"""The models shipped in ``pretrained/`` as their manifest describes them (``pretrained/manifest.json``,
written by ``codes/scripts/ship_model.py``).

Public API:
    MANIFEST, LOW_RESPONSE, load_manifest, shipped_entry, low_response_note
"""
import json
import os

from evaluation.results import sha256_file
from options.options import REPO_ROOT
from utils.errors import KULNetError

MANIFEST = os.path.join(REPO_ROOT, "pretrained", "manifest.json")
LOW_RESPONSE = 0.5  # a kernel response under this: the estimator barely follows the blur


def load_manifest(path=MANIFEST):
    """dict ``{'files': {name: entry}}``; empty when the file does not exist yet."""
    if not os.path.exists(path):
        return {"files": {}}
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as err:
        raise KULNetError(f"{path}: cannot read the manifest ({err}); restore it from git")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise KULNetError(f"{path}: not a manifest (no 'files' object); restore it from git")
    return manifest


def shipped_entry(checkpoint, manifest=MANIFEST):
    """(name, entry) of the shipped file whose sha256 is ``checkpoint``'s, else None."""
    if not os.path.isfile(checkpoint) or not os.path.exists(manifest):
        return None
    digest = sha256_file(checkpoint)
    return next(((name, entry) for name, entry in load_manifest(manifest)["files"].items()
                 if entry.get("sha256") == digest), None)


def low_response_note(checkpoint, manifest=MANIFEST):
    """One line when ``checkpoint`` is a shipped file whose kernel response (Set5, noise 0) is known and
    under :data:`LOW_RESPONSE`, else None."""
    found = shipped_entry(checkpoint, manifest)
    if found is None:
        return None
    name, entry = found
    row = next((r for r in entry.get("results", []) if r["dataset"] == "Set5" and r["noise"] == 0), None)
    response = (row or {}).get("kulnet", {}).get("kernel_response")
    if response is None or response >= LOW_RESPONSE:
        return None
    return (f"note: the kernel estimator of {name} does not follow the blur (kernel response {response:.2f} on "
            f"Set5, 1 = follows it; pretrained/MANIFEST.md): its kernel and uncertainty images say little "
            f"about this photo")
