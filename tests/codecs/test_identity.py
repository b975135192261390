"""Tests for the identity codec beyond the shared contract."""

import numpy as np
import pytest
import torch

from flwr_split.codecs import CodecError, get_codec


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_decode_refuses_non_finite_values_from_the_network(bad):
    codec = get_codec("identity")
    encoded = codec.encode(torch.ones(2, 3))
    encoded.arrays["values"][4] = bad
    with pytest.raises(CodecError, match="NaN or inf"):
        codec.decode(encoded)
