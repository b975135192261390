"""all_finite: the NaN/inf check behind codec inputs and decoded payloads."""

from __future__ import annotations

import pytest
import torch

from flwr_split.codecs.base import all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_any_non_finite_value_is_found(dtype, bad):
    tensor = torch.zeros(3, 70, dtype=dtype)
    assert all_finite(tensor)
    tensor[2, 69] = bad
    assert not all_finite(tensor)


def test_empty_and_graph_tensors():
    assert all_finite(torch.zeros(0, 4))
    weights = torch.ones(5, requires_grad=True)
    assert all_finite(weights * 2)
