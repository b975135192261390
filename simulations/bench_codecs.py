"""Benchmark: codec encode+decode speed against ``x.clone()`` and against client bottoms.

Usage: ``python -m simulations.bench_codecs [--config simulations/configs/bench_codecs.toml]
[--quick] [--results results]``

Every registered codec (`flwr_split.codecs.registered_codecs`, at its typical setting
`flwr_split.codecs.example_spec` unless the config's ``specs`` names another) encodes
and decodes three tensors:

- a large ReLU'd Gaussian tensor (``tensor_shape``, 256x64x32x32 fp32 = 67 MB), timed
  against ``x.clone()`` of the same tensor (the memory-bandwidth floor);
- the cut tensor of the ``cifar10`` task's ResNet-18 bottom (stem conv3x3(3, 64) + BN +
  ReLU and one BasicBlock(64), `flwr_split.tasks.models.resnet`) on a batch of random
  3x32x32 uint8 images, timed against that bottom's forward+backward;
- the cut tensor of a char-LSTM bottom (Embedding(80, 8) and a 2-layer LSTM with 256
  hidden units) on a batch of character sequences, timed against its forward+backward.

All calls are timed interleaved (one call of each per round, ``repeats`` rounds after
a warm-up round) on ``threads`` torch threads, and medians are reported. Per codec:
encode+decode time as a multiple of the clone, MB/s of fp32 input, the measured bytes
ratio ``4 * numel / codec.nbytes(encoded)`` on the large tensor, and the share of each
bottom's forward+backward. Writes ``runs.csv``, ``codecs.png`` and ``env.json`` to
``<results>/bench_codecs/<timestamp>/``.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from flwr_split.codecs import (  # noqa: E402
    Codec,
    CodecContext,
    example_spec,
    get_codec,
    registered_codecs,
)
from flwr_split.tasks import TaskConfig, build_model  # noqa: E402
from simulations.common import config_parser, output_dir, torch_threads, write_env  # noqa: E402

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "bench_codecs.toml"
VOCABULARY = 80
"""Characters the LSTM bottom embeds."""


class LSTMBottom(nn.Module):
    """Char-LSTM bottom: Embedding(80, 8) and a 2-layer LSTM(256); cut ``(B, T, 256)``."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCABULARY, 8)
        self.lstm = nn.LSTM(8, hidden, num_layers=2, batch_first=True)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """Return the top layer's hidden state at every position."""
        return self.lstm(self.embed(chars))[0]


def forward_backward(bottom: nn.Module, inputs: torch.Tensor) -> Callable[[], None]:
    """Return one client step of ``bottom``: forward, then backward of a fixed cut gradient."""
    with torch.no_grad():
        grad = torch.randn_like(bottom(inputs))

    def step() -> None:
        bottom.zero_grad(set_to_none=True)
        bottom(inputs).backward(grad)

    return step


def round_trip(codec: Codec, tensor: torch.Tensor, seed: int) -> Callable[[], torch.Tensor]:
    """Return a call that encodes ``tensor`` and decodes it again, seeded by ``seed``."""
    ctx = CodecContext(seed)
    return lambda: codec.decode(codec.encode(tensor, ctx), ctx)


def interleaved_medians(calls: dict[Any, Callable[[], object]], repeats: int) -> dict[Any, float]:
    """Median seconds of every call: a warm-up round, then ``repeats`` rounds of one each."""
    times: dict[Any, list[float]] = {key: [] for key in calls}
    for round_ in range(repeats + 1):
        for key, call in calls.items():
            started = time.perf_counter()
            call()
            if round_:
                times[key].append(time.perf_counter() - started)
    return {key: float(np.median(samples)) for key, samples in times.items()}


def spec_for(bench: dict, codec_id: str, tensor: torch.Tensor) -> str:
    """Return the spec that times ``codec_id`` on ``tensor``.

    That is the config's ``specs`` entry if it has one and it takes ``tensor``,
    else the codec's `example_spec` (its signed one if ``tensor`` has negatives).
    """
    signed = bool((tensor < 0).any())
    spec = bench["specs"].get(codec_id)
    if spec is not None and (get_codec(spec).accepts_negative or not signed):
        return spec
    return example_spec(codec_id, signed=signed)


def measure(bench: dict) -> pd.DataFrame:
    """Time every codec on the three tensors, interleaved; return one row per codec."""
    torch.manual_seed(bench["seed"])
    big = torch.randn(bench["tensor_shape"]).relu_()
    images = torch.randint(0, 256, (bench["resnet_batch"], 3, 32, 32), dtype=torch.uint8)
    chars = torch.randint(VOCABULARY, (bench["lstm_batch"], bench["lstm_chars"]))
    resnet_bottom = build_model(TaskConfig(task="cifar10", seed=bench["seed"]))[0]
    bottoms = {"resnet": (resnet_bottom, images), "lstm": (LSTMBottom(), chars)}
    tensors = {"big": big}
    calls: dict[tuple[str, str], Callable[[], object]] = {("clone", "big"): big.clone}
    for name, (bottom, inputs) in bottoms.items():
        with torch.no_grad():
            tensors[name] = bottom(inputs)
        calls[("bottom", name)] = forward_backward(bottom, inputs)
    specs = {
        (codec_id, name): spec_for(bench, codec_id, tensor)
        for codec_id in registered_codecs()
        for name, tensor in tensors.items()
    }
    for (codec_id, name), spec in specs.items():
        calls[(codec_id, name)] = round_trip(get_codec(spec), tensors[name], bench["seed"])
    seconds = interleaved_medians(calls, bench["repeats"])
    share_goals = bench["resnet_share_goals"]
    rows = []
    for codec_id in registered_codecs():
        spec = specs[(codec_id, "big")]
        codec = get_codec(spec)
        payload = codec.nbytes(codec.encode(big, CodecContext(bench["seed"])))
        codec_s = seconds[(codec_id, "big")]
        rows.append(
            {
                "codec": codec_id,
                "spec": spec,
                "codec_ms": 1e3 * codec_s,
                "clone_ms": 1e3 * seconds[("clone", "big")],
                "x_clone": codec_s / seconds[("clone", "big")],
                "goal_x_clone": bench["goals_x_clone"].get(codec_id, np.nan),
                "mb_per_s": big.numel() * 4 / 1e6 / codec_s,
                "bytes_ratio": big.numel() * 4 / payload,
                **_bottom_columns(seconds, codec_id, "resnet"),
                "resnet_share_goal": share_goals.get(codec_id, share_goals["default"]),
                **_bottom_columns(seconds, codec_id, "lstm"),
                "lstm_spec": specs[(codec_id, "lstm")],
            }
        )
    return pd.DataFrame(rows)


def _bottom_columns(seconds: dict, codec_id: str, bottom: str) -> dict[str, float]:
    """Codec and bottom milliseconds on ``bottom``'s cut, and the codec's share of the bottom."""
    codec_s, bottom_s = seconds[(codec_id, bottom)], seconds[("bottom", bottom)]
    return {
        f"{bottom}_codec_ms": 1e3 * codec_s,
        f"{bottom}_bottom_ms": 1e3 * bottom_s,
        f"{bottom}_share": codec_s / bottom_s,
    }


def plot(frame: pd.DataFrame, path: Path) -> None:
    """Bars of x clone (with goals) and of the share of each bottom, one group per codec."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    where = np.arange(len(frame))
    left.bar(where, frame["x_clone"], color="tab:blue", label="encode+decode")
    left.scatter(where, frame["goal_x_clone"], marker="_", s=400, color="k", label="goal")
    left.set_yscale("log")
    left.set_ylabel("time / x.clone()")
    for axis in (left, right):
        axis.set_xticks(where, frame["codec"], rotation=30, ha="right")
        axis.grid(axis="y", alpha=0.3)
    right.bar(where - 0.2, 100 * frame["resnet_share"], 0.4, label="ResNet-style bottom")
    right.bar(where + 0.2, 100 * frame["lstm_share"], 0.4, label="LSTM(256) bottom")
    right.scatter(where, 100 * frame["resnet_share_goal"], marker="_", s=400, color="k")
    right.set_yscale("log")
    right.set_ylabel("% of the bottom's forward+backward")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_bench(config: Path, quick: bool) -> dict:
    """Return the ``[bench]`` table of ``config``, updated by ``[quick]`` if ``quick``."""
    tables = tomllib.loads(config.read_text())
    return {**tables["bench"], **(tables["quick"] if quick else {})}


def main(argv: Sequence[str | Path] | None = None) -> pd.DataFrame:
    """Run the benchmark, write its results folder and return the per-codec table."""
    parser = config_parser(__doc__, DEFAULT_CONFIG)
    args = parser.parse_args(None if argv is None else [str(arg) for arg in argv])
    bench = read_bench(args.config, args.quick)
    with torch_threads(bench["threads"]):
        frame = measure(bench)
    out = output_dir("bench_codecs", args.results)
    frame.to_csv(out / "runs.csv", index=False)
    plot(frame, out / "codecs.png")
    write_env(out, config=bench, quick=args.quick, threads=bench["threads"])
    columns = ["spec", "x_clone", "mb_per_s", "bytes_ratio", "resnet_share", "lstm_share"]
    print(frame.set_index("codec")[columns].to_string(float_format="{:.3g}".format))
    print(f"results: {out}")
    return frame


if __name__ == "__main__":
    main()
