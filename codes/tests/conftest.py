"""Shared pytest fixtures: repository paths, the reference files of the faithfulness checks (in
``codes/tests/reference``) and the photo sets (skipped, saying which folder to fill, when absent)."""
import os
import sys

import pytest

CODES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(CODES_DIR)
# the authors' outputs and other small files the faithfulness checks compare against (reference/README.md)
REFERENCE_DIR = os.path.join(CODES_DIR, "tests", "reference")
# photo sets: a folder of them beside the checkout when there (development), else the repository's datasets/
SHARED_DATASETS = os.path.join(os.path.dirname(REPO_ROOT), "shared", "datasets")
DATASETS = SHARED_DATASETS if os.path.isdir(SHARED_DATASETS) else os.path.join(REPO_ROOT, "datasets")

if CODES_DIR not in sys.path:
    sys.path.insert(0, CODES_DIR)


def pytest_configure(config):
    config.addinivalue_line("markers", "photo_sets(*folders): the folders of datasets/ the test reads "
                            "(default Set5/HR)")


@pytest.fixture
def shared_datasets(request):
    """The folder holding the photo sets (``datasets/`` of the checkout); the test is skipped, naming
    the folder to fill, when one it reads (its ``photo_sets`` mark, default ``Set5/HR``) is empty."""
    mark = request.node.get_closest_marker("photo_sets")
    for folder in mark.args if mark else ("Set5/HR",):
        path = os.path.join(DATASETS, folder)
        if not (os.path.isdir(path) and os.listdir(path)):
            pytest.skip(f"needs photos in datasets/{folder}: fill it to run this test (datasets/README.md)")
    return DATASETS


@pytest.fixture
def shared_reference():
    """The folder of the reference files (``codes/tests/reference``), part of the repository."""
    return REFERENCE_DIR


@pytest.fixture
def repo_root():
    return REPO_ROOT
