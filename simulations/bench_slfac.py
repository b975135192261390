"""Benchmark: SL-FAC against top-k, PowerQuant and SplitFC at matched bytes, both directions.

Usage: ``python -m simulations.bench_slfac [--config simulations/configs/bench_slfac.toml]
[--quick] [--timing-only]``

For every task and partition of the config, parallel SL runs on the in-process
grid with the same codec family on the uplink (activations) and the downlink
(gradients): fp32, SL-FAC, and the baselines TK (``topk``), PQ
(``powerquant``) and FC (``splitfc``) set to fit the bits per value that
SL-FAC measured in each direction (matched bytes). On the first partition
named in ``sweep_partition`` it also runs the theta sweep and the ablations
(codec options of SL-FAC). Per run it records bytes per direction and their
ratio to fp32, accuracy, and the training bytes needed to first reach the
target accuracy. Per codec it measures the encode+decode time of one client
batch of activations and of gradients against that batch's bottom
forward+backward, at every cut in ``timing_cuts`` (one thread for both).
Writes ``runs.csv``, ``histories.csv``, ``codecs.csv``, ``accuracy.png``,
``theta.png`` and ``env.json``.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from flwr_split.codecs import get_codec  # noqa: E402
from flwr_split.codecs.dct import dct2_bands, idct2_bands  # noqa: E402
from flwr_split.codecs.slfac import planes_shape  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, builtin_cut_shape, client_data  # noqa: E402
from flwr_split.tasks.optim import OptimizerConfig  # noqa: E402
from simulations.common import (  # noqa: E402
    bottom_step,
    config_parser,
    load_config,
    median_seconds,
    output_dir,
    run_split,
    save_figure,
    write_env,
)

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "bench_slfac.toml"
FP32 = "identity"
MAIN_GROUPS = ("fp32", "slfac", "baseline")


def matched_specs(bits_per_value: float, fc_bits: int, features: int) -> dict[str, str]:
    """Baseline specs whose payload fits in ``bits_per_value`` bits per value.

    TK keeps ``k`` values at 32 bits plus a 1-bit position bitmap, PQ sends
    ``floor(bits)``-bit codes, FC keeps whole features (of ``features``) at
    ``fc_bits`` bits (side information of a few bytes per tensor is ignored).
    """
    bits_per_value = float(bits_per_value)
    keep_topk = max(bits_per_value - 1, 0.0) / 32
    kept = min(features, max(1, math.floor(features * bits_per_value / fc_bits)))
    return {
        "topk": f"topk:ratio={round(1 - keep_topk, 4)!r}",
        "powerquant": f"powerquant:bits={max(1, math.floor(bits_per_value))}",
        "splitfc": f"splitfc:keep={kept / features!r},bits={fc_bits}",
    }


def bytes_to_reach(history: pd.DataFrame, target: float) -> float:
    """Training bytes (up + down) at the first evaluation with accuracy >= target."""
    reached = history[history["accuracy"] >= target]
    if not len(reached):
        return math.inf
    return float(reached["bytes_up"].iloc[0] + reached["bytes_down"].iloc[0])


def _train(task: TaskConfig, run: dict, uplink: str, downlink: str) -> pd.DataFrame:
    _, result = run_split(
        task,
        clients=run["clients"],
        epochs=run["epochs"],
        max_steps=run.get("max_steps"),  # a config may stop inside the first epoch
        uplink=uplink,
        downlink=downlink,
        batch_size=run["batch_size"],
        eval_every=run["eval_every"],
        optimizer=OptimizerConfig(run["optimizer"], run["lr"]),
        sync=run["sync"],
    )
    return result.history


def plan(
    bench: dict, partition: str, slfac_bits: tuple[float, float], features: int
) -> list[tuple]:
    """``(group, label, uplink, downlink)`` of every run after fp32 and SL-FAC."""
    up, down = (matched_specs(b, bench["fc_bits"], features) for b in slfac_bits)
    families = bench.get("baselines", list(up))  # a config may run only some baselines
    runs = [("baseline", family, up[family], down[family]) for family in families]
    if partition == bench["sweep_partition"]:
        for theta in bench["thetas"]:
            spec = f"slfac:theta={theta}"
            runs.append(("theta", f"theta={theta}", spec, spec))
        for label, options in bench["ablations"].items():
            spec = f"slfac:{options}"
            runs.append(("ablation", label, spec, spec))
    return runs


def run(bench: dict) -> tuple[pd.DataFrame, dict]:
    """Train every run of the config; return the runs table and the histories."""
    rows, histories = [], {}
    for entry in bench["tasks"]:
        settings = {**bench, **entry}  # a task entry may override any [bench] key
        for partition in settings["partitions"]:
            task = TaskConfig(
                task=entry["task"],
                cut=entry["cut"],
                partitioner=partition,
                dirichlet_alpha=bench["dirichlet_alpha"],
                seed=bench["seed"],
            )
            base = _train(task, settings, FP32, FP32)
            slfac = _train(task, settings, bench["slfac"], bench["slfac"])
            fp32_up, fp32_down = base["activation_bytes"].iloc[-1], base["gradient_bytes"].iloc[-1]
            slfac_bits = (
                32 * slfac["activation_bytes"].iloc[-1] / fp32_up,
                32 * slfac["gradient_bytes"].iloc[-1] / fp32_down,
            )
            trained = [
                ("fp32", "fp32", FP32, FP32, base),
                ("slfac", "slfac", bench["slfac"], bench["slfac"], slfac),
            ]
            features = builtin_cut_shape(task)[0]
            for group, label, up, down in plan(settings, partition, slfac_bits, features):
                trained.append((group, label, up, down, _train(task, settings, up, down)))
            target = settings["target_accuracy"]
            for group, label, up, down, history in trained:
                last = history.iloc[-1]
                rows.append(
                    {
                        "task": task.task,
                        "cut": task.cut,
                        "partition": partition,
                        "group": group,
                        "label": label,
                        "uplink": up,
                        "downlink": down,
                        "activation_bytes": int(last["activation_bytes"]),
                        "gradient_bytes": int(last["gradient_bytes"]),
                        "up_ratio": fp32_up / last["activation_bytes"],
                        "down_ratio": fp32_down / last["gradient_bytes"],
                        "final_accuracy": float(last["accuracy"]),
                        "best_accuracy": float(history["accuracy"].max()),
                        "target_accuracy": target,
                        "bytes_to_target": bytes_to_reach(history, target),
                    }
                )
                histories[(task.task, partition, label)] = history.assign(
                    task=task.task, partition=partition, label=label, group=group
                )
    return pd.DataFrame(rows), histories


def transforms(acts: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Return a call of SL-FAC's forward and inverse DCT on the planes of ``acts``."""
    batch, channels, height, width = planes_shape(tuple(acts.shape))
    planes = acts.reshape(batch, channels, height, width).contiguous()
    return lambda: idct2_bands(dct2_bands(planes), height, width)


def codec_costs(bench: dict, specs: dict[str, list[str]]) -> pd.DataFrame:
    """Encode+decode time of activations and gradients vs the bottom forward+backward.

    ``specs`` maps each task name to the codec specs timed on it; every task is
    timed at each cut of ``bench["timing_cuts"]``, as the median of
    ``bench["timing_repeats"]`` calls on one batch of ``bench["batch_size"]``.
    ``transforms_ms`` is SL-FAC's floor at that cut: its DCT and inverse DCT
    alone on the batch's planes, without quantization or packing.
    """
    rows = []
    repeats = bench["timing_repeats"]
    for entry, cut in itertools.product(bench["tasks"], bench["timing_cuts"]):
        task = TaskConfig(task=entry["task"], cut=cut, seed=bench["seed"])
        bottom, top = build_model(task)
        train, _ = client_data(task, 0, 1)
        x = torch.from_numpy(train.x[: bench["batch_size"]])
        y = torch.from_numpy(train.y[: bench["batch_size"]]).long()
        acts = bottom(x)
        smashed = acts.detach().requires_grad_()
        torch.nn.functional.cross_entropy(top(smashed), y).backward()
        grads = smashed.grad

        bottom_s = median_seconds(bottom_step(bottom, x), repeats)
        transforms_s = median_seconds(transforms(acts.detach()), repeats)
        for spec in specs[task.task]:
            codec = get_codec(spec)
            for direction, tensor in (("up", acts.detach()), ("down", grads)):
                seconds = median_seconds(lambda c=codec, t=tensor: c.decode(c.encode(t)), repeats)
                rows.append(
                    {
                        "task": task.task,
                        "cut": task.cut,
                        "codec": spec,
                        "direction": direction,
                        "values": tensor.numel(),
                        "encode_decode_ms": seconds * 1e3,
                        "bottom_fwd_bwd_ms": bottom_s * 1e3,
                        "codec_time_share": seconds / bottom_s,
                        "transforms_ms": transforms_s * 1e3,
                        "transforms_share": transforms_s / bottom_s,
                    }
                )
    return pd.DataFrame(rows)


def plot_accuracy(histories: dict, path: Path) -> None:
    """Accuracy vs cumulative training bytes (up + down) of fp32, SL-FAC and the baselines."""
    keys = sorted({(task, partition) for task, partition, _ in histories})
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, (task, partition) in zip(axes[0], keys, strict=True):
        for (t, p, label), history in histories.items():
            if (t, p) == (task, partition) and history["group"].iloc[0] in MAIN_GROUPS:
                total = (history["bytes_up"] + history["bytes_down"]) / 1e6
                ax.plot(total, history["accuracy"], label=label, marker=".")
        ax.set_xscale("log")
        ax.set_title(f"{task}, {partition}")
        ax.set_xlabel("cumulative up+down training MB (log)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_theta(runs: pd.DataFrame, path: Path) -> None:
    """Plot final accuracy and up+down compression ratio against theta."""
    sweep = runs[runs["group"] == "theta"].copy()
    sweep["theta"] = sweep["label"].str.removeprefix("theta=").astype(float)
    sweep = sweep.sort_values("theta")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(sweep["theta"], sweep["final_accuracy"], marker="o", label="final accuracy")
    ax.set_xlabel("theta")
    ax.set_ylabel("test accuracy")
    ratio = ax.twinx()
    total = 2 / (1 / sweep["up_ratio"] + 1 / sweep["down_ratio"])
    ratio.plot(sweep["theta"], total, marker="s", color="tab:orange", label="up+down ratio")
    ratio.set_ylabel("compression ratio (up+down)")
    fig.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = config_parser(__doc__, DEFAULT_CONFIG)
    parser.add_argument("--timing-only", action="store_true", help="only codec costs")
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    config = load_config(args)
    bench = config["bench"]
    if args.timing_only:
        task = TaskConfig(task=bench["tasks"][0]["task"], cut=bench["tasks"][0]["cut"])
        matched = matched_specs(bench["timing_bits"], bench["fc_bits"], builtin_cut_shape(task)[0])
        specs = [bench["slfac"], *matched.values()]
        costs = codec_costs(bench, {entry["task"]: specs for entry in bench["tasks"]})
        out = output_dir("bench_slfac_timing", args.results)
        costs.to_csv(out / "codecs.csv", index=False)
        write_env(out, config=config, quick=args.quick)
        print(costs.to_string(index=False))
        print(f"results in {out}")
        return costs
    runs, histories = run(bench)
    main_runs = runs[runs["group"].isin(MAIN_GROUPS[1:])]
    specs = {
        task: list(dict.fromkeys([*group["uplink"], *group["downlink"]]))
        for task, group in main_runs.groupby("task")
    }
    costs = codec_costs(bench, specs)
    out = output_dir("bench_slfac", args.results)
    runs.to_csv(out / "runs.csv", index=False)
    pd.concat(histories.values(), ignore_index=True).to_csv(out / "histories.csv", index=False)
    costs.to_csv(out / "codecs.csv", index=False)
    plot_accuracy(histories, out / "accuracy.png")
    if (runs["group"] == "theta").any():
        plot_theta(runs, out / "theta.png")
    write_env(out, config=config, quick=args.quick)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(runs.drop(columns=["target_accuracy", "cut"]).to_string(index=False))
        print(costs.to_string(index=False))
    print(f"results in {out}")
    return runs


if __name__ == "__main__":
    main()
