"""Finished runs to the report's table: bytes per kind, accuracy and time, against fp32 SL.

A run is a history CSV (``<name>.csv``, as `flwr_split.metrics.results.save_run`
writes it) beside its traffic CSV (``<name>_traffic.csv``). What ran is read from
the history's configuration columns (``uplink``, ``downlink``, ``sampler``,
``task_seed`` and, where the report wrote it, ``strategy``), so runs of
``python -m simulations.run`` read as well as the report's own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

from flwr_split.metrics.traffic import DOWN, TRAINING_KINDS, UP
from flwr_split.options import RunSettings

BASELINE = "fp32"
"""Method label of parallel SL with identity codecs, the default sampler and strategy."""
GROUPS = ("baseline", "codec", "sampler", "strategy", "mixed")
"""What a method changes against the baseline, in table order."""
KIND_COLUMNS = {kind: f"{kind}_bytes" for kind in TRAINING_KINDS}
"""Table column of each kind of training traffic (both directions summed)."""


def megabytes(nbytes: float) -> str:
    """Bytes as MB for people: ``"1,506"``, ``"94.5"``, ``"0.0333"`` (never an exponent)."""
    value = nbytes / 1e6
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def defaults() -> tuple[str, str]:
    """Return the run options' default strategy and sampler (what a method label omits)."""
    settings = RunSettings.from_run_config({})
    return settings.strategy_name, settings.strategy["sampler"]


def method_label(uplink: str, downlink: str, sampler: str, strategy: str) -> tuple[str, str]:
    """Return ``(method, group)`` of a run from its codec ids, sampler spec and strategy.

    The codec part is ``fp32`` (identity both ways), ``<id> up`` (gradients
    dense), ``<id> down``, ``<id> up+down`` or ``<up> up, <down> down``; a
    sampler or strategy other than the defaults is appended.
    """
    default_strategy, default_sampler = defaults()
    if uplink == downlink:
        codecs = BASELINE if uplink == "identity" else f"{uplink} up+down"
    elif downlink == "identity":
        codecs = f"{uplink} up"
    elif uplink == "identity":
        codecs = f"{downlink} down"
    else:
        codecs = f"{uplink} up, {downlink} down"
    changed = {
        "codec": codecs != BASELINE,
        "sampler": sampler != default_sampler,
        "strategy": strategy != default_strategy,
    }
    parts = [codecs]
    parts += [f"sampler {sampler}"] if changed["sampler"] else []
    parts += [f"strategy {strategy}"] if changed["strategy"] else []
    groups = [group for group, yes in changed.items() if yes]
    group = "baseline" if not groups else groups[0] if len(groups) == 1 else "mixed"
    return ", ".join(parts), group


def codec_id(config_text: str) -> str:
    """Return the id of a codec config as a history stores it (``"{'id': 'quant', ...}"``)."""
    return str(ast.literal_eval(config_text)["id"])


def read_run(history_path: Path) -> dict[str, object]:
    """Return one run's row: what ran, bytes per kind and in total, accuracy and times.

    Raises
    ------
    ValueError
        If the traffic CSV is missing or its training bytes are not the
        history's final ``bytes_up + bytes_down`` (files of two different runs).
    """
    history = pd.read_csv(history_path)
    traffic_path = history_path.with_name(f"{history_path.stem}_traffic.csv")
    if not traffic_path.exists():
        raise ValueError(f"{history_path}: no traffic file {traffic_path.name} beside it")
    traffic = pd.read_csv(traffic_path)
    training = traffic[traffic["kind"].isin(TRAINING_KINDS)]
    by_kind = training.groupby("kind")["nbytes"].sum()
    by_direction = training.groupby("direction")["nbytes"].sum()
    last = history.iloc[-1]
    total = int(by_kind.sum())
    if total != int(last["bytes_up"]) + int(last["bytes_down"]):
        raise ValueError(
            f"{traffic_path}: {total} training bytes, but its history ends at "
            f"{int(last['bytes_up']) + int(last['bytes_down'])}"
        )
    uplink, downlink = codec_id(last["uplink"]), codec_id(last["downlink"])
    strategy = str(last["strategy"]) if "strategy" in history else defaults()[0]
    method, group = method_label(uplink, downlink, str(last["sampler"]), strategy)
    return {
        "run": history_path.stem,
        "method": method,
        "group": group,
        "task": last["task"],
        "strategy": strategy,
        "uplink": last.get("uplink_spec", uplink),
        "downlink": last.get("downlink_spec", downlink),
        "sampler": last["sampler"],
        "seed": int(last["task_seed"]),
        "clients": int(last["num_clients"]),
        "epochs": int(last["epoch"]) + 1,
        "steps": int(last["step"]),
        **{column: int(by_kind.get(kind, 0)) for kind, column in KIND_COLUMNS.items()},
        "up_bytes": int(by_direction.get(UP, 0)),
        "down_bytes": int(by_direction.get(DOWN, 0)),
        "total_bytes": total,
        "accuracy": float(last["accuracy"]),
        "sim_time_s": float(last["sim_time_s"]),
        "wall_s": float(last["wall_s"]),
    }


def read_runs(folder: Path) -> pd.DataFrame:
    """Return one row per run in ``folder`` (see `read_run`), in file-name order.

    Raises
    ------
    ValueError
        If the folder holds no run, or two runs of one method with one seed.
    """
    histories = sorted(
        path
        for path in Path(folder).glob("*.csv")
        if not path.stem.endswith(("_traffic", "_steps"))
    )
    if not histories:
        raise ValueError(f"{folder}: no run (a <name>.csv beside its <name>_traffic.csv)")
    runs = pd.DataFrame([read_run(path) for path in histories])
    twice = runs[runs.duplicated(["method", "seed"], keep=False)]
    if len(twice):
        raise ValueError(f"{folder}: more than one run per method and seed: {list(twice['run'])}")
    return runs


def method_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Return one row per method: means over seeds, and ratios and deltas against fp32 SL.

    Columns beside what ran: ``seeds``, the mean bytes of each kind, of each
    direction and in total, ``bytes_vs_fp32`` (total bytes / fp32's) and its
    inverse ``compression``, ``accuracy`` and ``accuracy_std`` (percent;
    std over seeds, 0 for one), ``delta_pp`` (accuracy minus fp32's, in
    percentage points), ``sim_time_s`` and ``time_vs_fp32``, ``wall_s``, and
    ``pareto`` (no other method has both fewer bytes and a higher accuracy).
    Baseline first, then by group and by total bytes.

    Raises
    ------
    ValueError
        If there is no fp32 run to compare with.
    """
    if BASELINE not in set(runs["method"]):
        raise ValueError(
            "no fp32 SL run (identity codecs, the default sampler and strategy) to compare with"
        )
    described = ["group", "task", "strategy", "uplink", "downlink", "sampler", "clients", "epochs"]
    averaged = [*KIND_COLUMNS.values(), "up_bytes", "down_bytes", "total_bytes"]
    grouped = runs.groupby("method", sort=False)
    table = grouped[described].first()
    table["seeds"] = grouped["seed"].nunique()
    table[averaged] = grouped[averaged].mean()
    table["accuracy"] = 100 * grouped["accuracy"].mean()
    table["accuracy_std"] = (100 * grouped["accuracy"].std(ddof=0)).fillna(0.0)
    table[["sim_time_s", "wall_s"]] = grouped[["sim_time_s", "wall_s"]].mean()
    base = table.loc[BASELINE]
    table["bytes_vs_fp32"] = table["total_bytes"] / base["total_bytes"]
    table["compression"] = base["total_bytes"] / table["total_bytes"]
    table["delta_pp"] = table["accuracy"] - base["accuracy"]
    table["time_vs_fp32"] = table["sim_time_s"] / base["sim_time_s"]
    table["pareto"] = pareto_front(table["total_bytes"], table["accuracy"])
    table["order"] = table["group"].map(GROUPS.index)
    table = table.sort_values(["order", "total_bytes"], kind="stable").drop(columns="order")
    return table.reset_index()


def pareto_front(total_bytes: pd.Series, accuracy: pd.Series) -> np.ndarray:
    """Return which points no other point beats on both (fewer bytes, higher accuracy)."""
    costs, gains = total_bytes.to_numpy(float), accuracy.to_numpy(float)
    beaten = (
        (costs[None, :] <= costs[:, None])
        & (gains[None, :] >= gains[:, None])
        & ((costs[None, :] < costs[:, None]) | (gains[None, :] > gains[:, None]))
    )
    return ~beaten.any(axis=1)


def markdown_table(table: pd.DataFrame) -> str:
    """Render the method table as Markdown: what ran, bytes, accuracy and simulated time."""
    header = (
        "| method | uplink | downlink | sampler | strategy | total MB | bytes / fp32 "
        "| test accuracy % | Δ accuracy pp | simulated time s | time / fp32 |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for row in table.itertuples():
        spread = f" ± {row.accuracy_std:.2f}" if row.seeds > 1 else ""
        name = f"**{row.method}**" if row.pareto else row.method
        lines.append(
            f"| {name} | `{row.uplink}` | `{row.downlink}` | `{row.sampler}` | {row.strategy} "
            f"| {megabytes(row.total_bytes)} | {row.bytes_vs_fp32:.3g} "
            f"| {row.accuracy:.2f}{spread} | {row.delta_pp:+.2f} "
            f"| {row.sim_time_s:.3g} | {row.time_vs_fp32:.3g} |"
        )
    return "\n".join(lines) + "\n"
