"""The device option: names, ``auto`` and CUDA where there is none."""

import pytest
import torch

from flwr_split.common.devices import resolve_device


def test_cpu_and_auto_resolve_to_a_device_torch_has():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:0", "", "auto:1"])
def test_unknown_device_names_are_refused(name):
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")
