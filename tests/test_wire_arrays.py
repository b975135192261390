"""Arrays made with a cached .npy header are byte-identical to Flower's and read back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_split.wire import ProtocolError
from flwr_split.wire.arrays import (
    FAST_DTYPES,
    MAX_DIMS,
    array_record,
    from_array,
    npy_header,
    to_array,
)

dtypes = st.sampled_from(sorted(FAST_DTYPES))
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@given(dtype=dtypes, shape=shapes, data=st.data())
def test_same_bytes_as_flower_and_exact_round_trip(dtype, shape, data):
    values = data.draw(hnp.arrays(np.dtype(dtype), shape))
    ours, flowers = to_array(values), Array(values)
    assert (ours.dtype, tuple(ours.shape), ours.stype, ours.data) == (
        flowers.dtype,
        tuple(flowers.shape),
        flowers.stype,
        flowers.data,
    )
    back = from_array(flowers)
    assert back.dtype == values.dtype and back.shape == values.shape
    assert back.tobytes() == values.tobytes() and back.flags.writeable
    # built without Flower's constructor, yet the same object as the constructor makes
    direct = Array(dtype=ours.dtype, shape=ours.shape, stype=ours.stype, data=ours.data)
    assert vars(ours) == vars(direct) and ours.object_id == flowers.object_id


def test_array_record_holds_what_item_assignment_holds():
    arrays = {
        "w": to_array(np.ones((2, 3), np.float32)),
        "y": to_array(np.arange(4, dtype=np.uint8)),
    }
    ours, assigned = array_record(arrays), ArrayRecord()
    for name, array in arrays.items():
        assigned[name] = array
    assert vars(ours) == vars(assigned) and ours.object_id == assigned.object_id
    assert all(ours[name] is array for name, array in arrays.items())
    with pytest.raises(TypeError):
        array_record({"w": np.ones(2)})
    with pytest.raises(TypeError):
        array_record({1: arrays["w"]})


def test_non_contiguous_input_is_written_in_c_order():
    values = np.arange(12, dtype=np.float32).reshape(3, 4).T
    assert to_array(values).data == Array(np.ascontiguousarray(values)).data


def test_most_dimensions_numpy_allows():
    shape = (1,) * MAX_DIMS
    assert npy_header("uint8", shape)[6:8] == b"\x01\x00"
    assert to_array(np.zeros(shape, np.uint8)).data == Array(np.zeros(shape, np.uint8)).data


def test_other_dtypes_take_flowers_path():
    values = np.array([1 + 2j], dtype=np.complex64)
    assert to_array(values).data == Array(values).data
    assert from_array(Array(values)).tolist() == [1 + 2j]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda a: Array(a.dtype, tuple(a.shape), a.stype, a.data[:-4]),  # truncated
        lambda a: Array("float64", tuple(a.shape), a.stype, a.data),  # declared dtype lies
        lambda a: Array(a.dtype, (2, 2), a.stype, a.data),  # declared shape lies
        lambda a: Array(a.dtype, tuple(a.shape), a.stype, b"\x00" * len(a.data)),  # no header
        lambda a: Array(a.dtype, (1,) * (MAX_DIMS + 1), a.stype, a.data),  # too many dims
    ],
)
def test_payloads_that_do_not_match_their_declaration_are_refused(tamper):
    good = Array(np.arange(6, dtype=np.float32))
    with pytest.raises(ProtocolError):
        from_array(tamper(good))
