"""Shared pytest fixtures: repository paths and the shared datasets (skipped when absent)."""
import os
import sys

import pytest

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(CODES_DIR)
SHARED_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared")
SHARED_DATASETS = os.path.join(SHARED_DIR, "datasets")
SHARED_REFERENCE = os.path.join(SHARED_DIR, "reference")

if CODES_DIR not in sys.path:
    sys.path.insert(0, CODES_DIR)


def _require(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent (the ../shared folder is not beside this checkout)")
    return path


@pytest.fixture
def shared_datasets():
    """Path of ``../shared/datasets``; the test is skipped when it is absent."""
    return _require(SHARED_DATASETS)


@pytest.fixture
def shared_reference():
    """Path of ``../shared/reference``; the test is skipped when it is absent."""
    return _require(SHARED_REFERENCE)


@pytest.fixture
def repo_root():
    return REPO_ROOT
