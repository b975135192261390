"""Hostile arrays, metadata and replies become rejections with a reason, never exceptions."""

from __future__ import annotations

import math
import re
import struct
import tracemalloc

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from flwr_split.codecs import get_codec, registered_codecs
from flwr_split.wire import (
    KEY_INFO,
    MSG_HELLO,
    MSG_STEP,
    ProtocolError,
    payload_nbytes,
    read_client_info,
)
from flwr_split.wire.arrays import NPY_MAGIC, ArraySpec, array_nbytes, from_array, to_array
from flwr_split.wire.guard import bounded_json, untrusted
from flwr_split.wire.layouts import check_payload, payload_layout
from flwr_split.wire.limits import MAX_META_CHARS, MAX_SAMPLES
from tests.helpers import run_inprocess, tampering_app


def npy(header: str, body: bytes = b"", major: int = 1) -> bytes:
    """Return ``.npy`` bytes with an arbitrary header text."""
    size = struct.pack("<H" if major == 1 else "<I", len(header))
    return NPY_MAGIC + bytes([major, 0]) + size + header.encode("latin1") + body


def raw(dtype: str, shape: tuple, data: object, stype: str = "numpy.ndarray") -> Array:
    """Return an Array with these fields as they are (as a hostile peer could send)."""
    array = Array(dtype="uint8", shape=(0,), stype="numpy.ndarray", data=b"")
    array.__dict__.update(dtype=dtype, shape=shape, stype=stype, data=data)
    return array


HOSTILE = {
    "huge claimed shape": raw(
        "float32",
        (10**12,),
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"),
    ),
    "truncated header literal": raw(
        "float32", (3,), npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,")
    ),
    "empty data": raw("float32", (3,), b""),
    "nested header": raw("float32", (3,), npy("[" * 3000 + "]" * 3000)),
    "header length beyond the data": raw("float32", (3,), NPY_MAGIC + b"\x02\x00\xff\xff\xff\x7f"),
    "object dtype": raw(
        "object", (1,), npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}")
    ),
    "call in header": raw("float32", (1,), npy("__import__('os').getcwd()")),
    "negative dimension": raw(
        "float32", (-1,), npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}")
    ),
    "not bytes": raw("float32", (1,), "text"),
    "other stype": raw("float32", (1,), b"\x00" * 4, stype="torch"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_arrays_are_refused_without_allocating(name):
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            from_array(HOSTILE[name])
        data = HOSTILE[name].data
        assert array_nbytes(HOSTILE[name]) == (len(data) if isinstance(data, bytes) else 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_good_arrays_read_as_before_and_count_their_data_bytes():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(from_array(to_array(values), ArraySpec("float32", (3, 4))), values)
    assert array_nbytes(to_array(values)) == 48
    fortran = Array(np.asfortranarray(values.T))
    assert np.array_equal(from_array(fortran), values.T)
    record = ArrayRecord({"a": to_array(values), "b": HOSTILE["huge claimed shape"]})
    assert payload_nbytes(record) == 48 + len(HOSTILE["huge claimed shape"].data)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (ArraySpec("float64"), "dtype float32, expected float64"),
        (ArraySpec(shape=(4, 3)), "shape (3, 4), expected (4, 3)"),
        (ArraySpec(max_bytes=47), "48 bytes exceeds the 47"),
        (ArraySpec(ndim=1), "2 dimensions, expected 1"),
    ],
)
def test_a_spec_is_checked_before_the_data_is_read(spec, reason):
    with pytest.raises(ProtocolError, match=re.escape(reason)):
        from_array(to_array(np.zeros((3, 4), np.float32)), spec)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000, "characters"),
        ("[" * 50 + "]" * 50, "nests deeper"),
        ('{"a": "' + "[" * 100 + '"}', None),
        ("{not json", "not JSON"),
        (7, "must be a JSON string"),
    ],
)
def test_json_metadata_is_capped_before_it_is_parsed(text, reason):
    if reason is None:
        assert bounded_json(text, "meta") == {"a": "[" * 100}
        return
    with pytest.raises(ProtocolError, match=reason):
        bounded_json(text, "meta")


@pytest.mark.parametrize("error", [RecursionError, MemoryError, EOFError, OverflowError, KeyError])
def test_the_guard_turns_any_exception_into_a_protocol_error(error):
    with pytest.raises(ProtocolError, match=f"reading: {error.__name__}"):
        with untrusted("reading"):
            raise error("x" * 10_000)


def test_the_guard_lets_an_interrupt_through():
    with pytest.raises(KeyboardInterrupt):
        with untrusted("reading"):
            raise KeyboardInterrupt


def test_a_record_the_server_did_not_ask_for_is_rejected():
    def extra(content: RecordDict) -> None:
        content["sl.extra"] = ArrayRecord({"x": to_array(np.zeros(4, np.uint8))})

    _, result, _ = run_inprocess(3, client_app=tampering_app(0, MSG_STEP, extra), max_steps=2)
    reasons = [r for r in result.rejected if r[1] == 0]
    assert reasons and all("unexpected records ['sl.extra']" in r[2] for r in reasons)


def test_a_huge_compute_time_is_clamped_to_the_step_timeout():
    def slow(content: RecordDict) -> None:
        content[KEY_INFO] = MetricRecord({**content[KEY_INFO], "compute_s": 1e308})

    strategy, _, _ = run_inprocess(
        3, client_app=tampering_app(0, MSG_STEP, slow), max_steps=2, step_timeout=30.0
    )
    messenger = strategy.messenger
    assert math.isfinite(strategy.clock.seconds)
    assert messenger.client_compute <= 30.0 * messenger.messages_sent


def test_a_hello_count_beyond_the_limit_drops_that_client():
    def boast(content: RecordDict) -> None:
        content[KEY_INFO] = MetricRecord({**content[KEY_INFO], "test_count": 10**12})

    strategy, result, _ = run_inprocess(
        3, client_app=tampering_app(1, MSG_HELLO, boast), max_steps=2
    )
    assert [c.partition_id for c in strategy.clients] == [0, 2]
    assert "exceed" in result.rejected[0][2]


def _hello_reply(train_count: int, test_count: int) -> RecordDict:
    info = {"partition_id": 0, "num_partitions": 1, "input_shape": [4], "input_dtype": 0}
    counts = {"train_count": train_count, "test_count": test_count}
    return RecordDict({KEY_INFO: MetricRecord({**info, **counts})})


@pytest.mark.parametrize("counts", [(MAX_SAMPLES + 1, 0), (0, MAX_SAMPLES + 1), (10**12, 10**12)])
def test_counts_above_the_limit_are_refused(counts):
    with pytest.raises(ProtocolError, match="exceed"):
        read_client_info(1, _hello_reply(*counts))
    read_client_info(1, _hello_reply(MAX_SAMPLES, MAX_SAMPLES))


def test_a_reply_over_the_size_cap_is_rejected_before_it_is_read(monkeypatch):
    monkeypatch.setattr("flwr_split.wire.replies.MAX_REPLY_BYTES", 4096)
    _, result, _ = run_inprocess(2, max_steps=1)
    train = [r for r in result.rejected if "exceeds 4096" in r[2]]
    assert {r[1] for r in train} == {0, 1}


@pytest.mark.parametrize("codec", registered_codecs())
def test_probing_a_layout_leaves_the_global_random_state_alone(codec):
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    layout = payload_layout(get_codec(codec), (3, 7, 5))
    assert layout is not None and layout.max_bytes > 0
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


def test_an_honest_payload_whose_array_lengths_depend_on_the_values_fits_its_layout():
    # SL-FAC sends no bit width and no range for an empty component: a channel
    # whose energy sits in the last frequency band has no high component. The
    # fuzzer's honest clients refused such gradients while the layout pinned
    # 'bits' to the probes' (32,).
    codec = get_codec("slfac")
    board = (-1.0) ** (torch.arange(8)[:, None] + torch.arange(8)[None, :])
    tensor = torch.randn(4, 16, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.01
    tensor[:, :3] += board
    encoded = codec.encode(tensor)
    assert encoded.arrays["bits"].shape == (29,)  # three of the 32 components are empty
    layout = payload_layout(codec, (4, 16, 8, 8))
    check_payload(encoded, layout, "gradient")
    for name in codec.value_sized_arrays:
        assert layout.arrays[name].shape is None and layout.arrays[name].max_bytes


def test_a_huge_metadata_text_is_rejected_before_it_is_counted():
    def pad(content: RecordDict) -> None:
        content["sl.acts.meta"] = ConfigRecord({"json": "x" * (MAX_META_CHARS + 1)})

    strategy, result, _ = run_inprocess(3, client_app=tampering_app(0, MSG_STEP, pad), max_steps=1)
    assert any(f"> {MAX_META_CHARS}" in r[2] for r in result.rejected if r[1] == 0)
    rows = strategy.traffic.frame().query("partition_id == 0 and direction == 'up'")
    assert set(rows["phase"]) == {"eval"}  # its train replies were not counted
