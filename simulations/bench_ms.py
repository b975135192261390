"""Benchmark: mask-encoded sparsification (MS) against fp32, top-k and 3-bit quantization.

Usage: ``python -m simulations.bench_ms [--config simulations/configs/bench_ms.toml] [--quick]``

For every task, cut and seed of the config (a task may stop early at
``max_steps``), parallel SL runs on the in-process grid
with each uplink codec (gradients go down uncompressed, as in the paper):
the fp32 baseline, MS over a grid of (ratio, bits), top-k at the byte budget
of each MS setting, and uniform quantization. Per run it records the measured
uplink activation bytes and their ratio to fp32, the test accuracy, the
activation bytes needed to first reach the baseline's accuracy (the paper's
Table 1 metric; INF if never) and the saving multiplier against the baseline.
Per codec it also measures the relative l2 error of the activations of the
trained fp32 bottom (first seed), and the encode+decode time of one client batch against
that batch's bottom forward+backward (medians of 200 calls, one torch thread;
pin the process to one core with ``taskset -c 0`` on a shared machine).
The optimizer is the config's ``optimizer``, ``lr`` and ``momentum``
(`simulations.common.bench_optimizer`). Writes ``runs.csv``, ``summary.csv``
(mean and standard deviation over the seeds), ``codecs.csv``,
``histories.csv``, ``accuracy_vs_bytes.png`` (first seed) and ``env.json``.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from flwr_split.codecs import get_codec  # noqa: E402
from flwr_split.codecs.bitpack import index_bits, packed_nbytes  # noqa: E402
from flwr_split.codecs.topk import TopK  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, builtin_cut_shape, client_data  # noqa: E402
from simulations.common import (  # noqa: E402
    bench_optimizer,
    bottom_step,
    config_parser,
    load_config,
    median_seconds,
    output_dir,
    run_split,
    save_figure,
    torch_threads,
    write_env,
)

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "bench_ms.toml"
BASELINE = "identity"
TIMING_THREADS = 1
"""Torch threads while timing the bottom and the codecs (one client runs on one core)."""
TIMING_REPEATS = 200
"""Calls whose median time is reported, for the bottom step and for each codec."""


def topk_nbytes(k: int, n: int) -> int:
    """Payload bytes of the `topk` codec keeping ``k`` of ``n`` values."""
    return 4 * k + min(packed_nbytes(1, n), packed_nbytes(index_bits(n), k))


def matched_topk(budget: int, n: int) -> str:
    """Spec of the top-k codec with the most values whose payload fits in ``budget`` bytes."""
    low, high = 0, n
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if topk_nbytes(mid, n) <= budget else (low, mid - 1)
    ratio = 1 - low / n
    while TopK(ratio).keep_count(n) < low:  # 1 - low / n rounded up past the exact value
        ratio = math.nextafter(ratio, 0)
    spec = f"topk:ratio={ratio!r}"
    kept = int(np.count_nonzero(get_codec(spec).decode(get_codec(spec).encode(torch.rand(n) + 1))))
    if kept != low:
        raise AssertionError(f"top-k spec {spec} keeps {kept} values, wanted {low}")
    return spec


def codec_grid(bench: dict, n: int) -> list[tuple[str, str, str]]:
    """Return ``(family, spec)`` of each uplink codec; top-k matched to each MS setting at n."""
    codecs = [("fp32", BASELINE, "")]
    for ratio in bench["ms_ratios"]:
        for bits in bench["ms_bits"]:
            ms = f"ms:ratio={ratio},bits={bits}"
            codecs.append(("ms", ms, ""))
            ms_bytes = get_codec(ms).nbytes(get_codec(ms).encode(torch.rand(n)))
            codecs.append(("topk", matched_topk(ms_bytes, n), ms))
    codecs.extend(("quant", f"quant:bits={bits}", "") for bits in bench["quant_bits"])
    return codecs


def _train(job: tuple[dict, str, str]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    task_config, uplink, _ = job
    torch.set_num_threads(1)
    task, run = TaskConfig(**task_config["task"]), task_config["run"]
    strategy, result = run_split(
        task,
        clients=run["clients"],
        epochs=run["epochs"],
        max_steps=run["max_steps"],
        uplink=uplink,
        batch_size=run["batch_size"],
        eval_every=run["eval_every"],
        optimizer=run["optimizer"],
    )
    state = {k: v.detach().numpy().copy() for k, v in strategy.bottom.state_dict().items()}
    return result.history, state


def bytes_to_reach(history: pd.DataFrame, target: float) -> float:
    """Activation bytes at the first evaluation with accuracy >= target (inf if never)."""
    reached = history[history["accuracy"] >= target]
    return float(reached["activation_bytes"].iloc[0]) if len(reached) else math.inf


def codec_costs(task: TaskConfig, bottom_state: dict, specs: list[str], batch: int) -> pd.DataFrame:
    """Relative l2 error on trained activations and encode+decode time vs bottom fwd+bwd.

    Both are timed with `TIMING_THREADS` torch threads; the caller's setting is restored.
    """
    with torch_threads(TIMING_THREADS):
        return _measure_costs(task, bottom_state, specs, batch)


def _measure_costs(task: TaskConfig, state: dict, specs: list[str], batch: int) -> pd.DataFrame:
    bottom, _ = build_model(task)
    bottom.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    _, test = client_data(task, 0, 1)
    inputs = torch.from_numpy(test.x)
    with torch.no_grad():
        acts = bottom(inputs)
    x = inputs[:batch]

    bottom_s = median_seconds(bottom_step(bottom, x), TIMING_REPEATS)
    rows = []
    for spec in specs:
        codec = get_codec(spec)
        chunks = acts.split(batch)
        errors = [
            float((codec.decode(codec.encode(c)) - c).norm() / c.norm().clamp_min(1e-12))
            for c in chunks
        ]
        first = chunks[0]
        codec_s = median_seconds(
            lambda codec=codec, first=first: codec.decode(codec.encode(first)), TIMING_REPEATS
        )
        rows.append(
            {
                "codec": spec,
                "rel_l2_error": float(np.mean(errors)),
                "encode_decode_ms": codec_s * 1e3,
                "bottom_fwd_bwd_ms": bottom_s * 1e3,
                "codec_time_share": codec_s / bottom_s,
            }
        )
    return pd.DataFrame(rows)


def run(config: dict, workers: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Run every (task, cut, seed, codec); return the runs table, the codec table and histories."""
    bench = config["bench"]
    jobs, meta = [], []
    for task_entry in bench["tasks"]:
        for cut in task_entry["cuts"]:
            for seed in bench["seeds"]:
                task = TaskConfig(task=task_entry["task"], cut=cut, seed=seed)
                n = bench["batch_size"] * math.prod(builtin_cut_shape(task))
                run_cfg = {
                    "clients": bench["clients"],
                    "epochs": task_entry["epochs"],
                    "max_steps": task_entry.get("max_steps"),
                    "batch_size": bench["batch_size"],
                    "eval_every": task_entry["eval_every"],
                    "optimizer": bench_optimizer(bench),
                }
                for family, spec, matched in codec_grid(bench, n):
                    jobs.append(({"task": task.as_dict(), "run": run_cfg}, spec, family))
                    meta.append((task, family, spec, matched))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        outputs = list(pool.map(_train, jobs))

    histories = {}
    rows, cost_tables = [], []
    by_setting: dict[tuple[str, int, int], list] = {}
    for (task, family, spec, matched), (history, state) in zip(meta, outputs, strict=True):
        by_setting.setdefault((task.task, task.cut, task.seed), []).append(
            (task, family, spec, matched, history, state)
        )
    for (task_name, cut, seed), runs in by_setting.items():
        base_task, _, _, _, base_history, base_state = next(r for r in runs if r[1] == "fp32")
        target = float(base_history["accuracy"].tail(3).median())
        base_bytes = bytes_to_reach(base_history, target)
        total_base = float(base_history["activation_bytes"].iloc[-1])
        for _, family, spec, matched, history, _ in runs:
            to_target = bytes_to_reach(history, target)
            rows.append(
                {
                    "task": task_name,
                    "cut": cut,
                    "seed": seed,
                    "family": family,
                    "codec": spec,
                    "matched_to": matched,
                    "activation_bytes": int(history["activation_bytes"].iloc[-1]),
                    "uplink_ratio": total_base / float(history["activation_bytes"].iloc[-1]),
                    "final_accuracy": float(history["accuracy"].iloc[-1]),
                    "best_accuracy": float(history["accuracy"].max()),
                    "target_accuracy": target,
                    "bytes_to_target": to_target,
                    "saving_to_target": base_bytes / to_target if math.isfinite(to_target) else 0.0,
                }
            )
            histories[(task_name, cut, seed, spec)] = history.assign(
                task=task_name, cut=cut, seed=seed, codec=spec
            )
        if seed != bench["seeds"][0]:
            continue
        costs = codec_costs(base_task, base_state, [r[2] for r in runs], bench["batch_size"])
        costs.insert(0, "cut", cut)
        costs.insert(0, "task", task_name)
        cost_tables.append(costs)
    return pd.DataFrame(rows), pd.concat(cost_tables, ignore_index=True), histories


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over the seeds of each (task, cut, codec)'s runs.

    Top-k rows are grouped by the MS setting they are matched to, since their
    spec can differ by a value when a seed's cut shape does not.
    """
    keys = ["task", "cut", "family", "matched_to"]
    grouped = runs.assign(matched_to=runs["matched_to"].fillna("")).groupby(keys, sort=False)
    summary = grouped.agg(
        codec=("codec", "first"),
        seeds=("seed", "count"),
        accuracy_mean=("final_accuracy", "mean"),
        accuracy_std=("final_accuracy", "std"),
        uplink_ratio_mean=("uplink_ratio", "mean"),
    )
    return summary.reset_index()


def timing_only(config: dict) -> pd.DataFrame:
    """Codec costs of every (task, cut, codec) on the untrained bottom, without training."""
    bench = config["bench"]
    tables = []
    for task_entry in bench["tasks"]:
        for cut in task_entry["cuts"]:
            task = TaskConfig(task=task_entry["task"], cut=cut, seed=bench["seeds"][0])
            n = bench["batch_size"] * math.prod(builtin_cut_shape(task))
            bottom, _ = build_model(task)
            state = {k: v.numpy() for k, v in bottom.state_dict().items()}
            specs = [spec for _, spec, _ in codec_grid(bench, n)]
            costs = codec_costs(task, state, specs, bench["batch_size"])
            costs.insert(0, "cut", cut)
            costs.insert(0, "task", task.task)
            tables.append(costs)
    return pd.concat(tables, ignore_index=True)


def plot(runs: pd.DataFrame, histories: dict, path: Path) -> None:
    """Accuracy vs cumulative uplink activation bytes, one panel per (task, cut), first seed.

    Shown: fp32, quantization, every MS setting with the highest ratio, and the
    top-k matched to its ``bits=2`` setting.
    """
    runs = runs[runs["seed"] == runs["seed"].iloc[0]]
    settings = runs[["task", "cut"]].drop_duplicates().itertuples(index=False)
    settings = list(settings)
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 4), squeeze=False)
    ms_specs = [get_codec(spec).get_config() for spec in runs["codec"] if spec.startswith("ms:")]
    top_ratio = max(config["ratio"] for config in ms_specs)
    highlighted = f"ms:ratio={top_ratio},"
    for ax, (task, cut) in zip(axes[0], settings, strict=True):
        subset = runs[(runs["task"] == task) & (runs["cut"] == cut)]
        for row in subset.itertuples():
            if (
                row.family in ("fp32", "quant")
                or row.codec.startswith(highlighted)
                or row.matched_to == f"{highlighted}bits=2"
            ):
                history = histories[(task, cut, row.seed, row.codec)]
                ax.plot(history["activation_bytes"] / 1e6, history["accuracy"], label=row.codec)
        ax.set_xscale("log")
        ax.set_title(f"{task}, cut {cut}")
        ax.set_xlabel("cumulative uplink activation MB (log)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = config_parser(__doc__, DEFAULT_CONFIG)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--timing-only", action="store_true", help="only codec time and error, untrained bottoms"
    )
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    config = load_config(args)
    if args.timing_only:
        costs = timing_only(config)
        out = output_dir("bench_ms_timing", args.results)
        costs.to_csv(out / "codecs.csv", index=False)
        write_env(out, config=config, quick=args.quick, timing_threads=TIMING_THREADS)
        print(costs.to_string(index=False))
        print(f"results in {out}")
        return costs
    runs, costs, histories = run(config, args.workers)
    out = output_dir("bench_ms", args.results)
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs)
    summary.to_csv(out / "summary.csv", index=False)
    pd.concat(histories.values(), ignore_index=True).to_csv(out / "histories.csv", index=False)
    costs.to_csv(out / "codecs.csv", index=False)
    plot(runs, histories, out / "accuracy_vs_bytes.png")
    write_env(out, config=config, quick=args.quick, timing_threads=TIMING_THREADS)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(runs.drop(columns=["target_accuracy"]).to_string(index=False))
        print(costs.to_string(index=False))
        print(summary.to_string(index=False))
    print(f"results in {out}")
    return runs


if __name__ == "__main__":
    main()
