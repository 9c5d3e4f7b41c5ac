"""The device option: auto picks CUDA only when present; bad names are one-line errors."""
import pytest
import torch

from utils.device import resolve_device
from utils.errors import KULNetError


def test_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name, message", [("tpu", "not a device"), ("cuda:99", "cuda:99")])
def test_bad_devices(name, message):
    with pytest.raises(KULNetError, match=message):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda():
    with pytest.raises(KULNetError, match="CUDA is not available here"):
        resolve_device("cuda")
