"""The report's summary: what a person should take from the method table, in a few lines."""

from __future__ import annotations

import pandas as pd

from simulations.report_table import BASELINE, KIND_COLUMNS, megabytes

NEAR_PP = 1.0
"""An accuracy within this many percentage points of fp32 SL counts as kept."""
LOST_PP = 5.0
"""A method this many percentage points or more below fp32 SL is listed as a loss."""


def plural(count: int, noun: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _mb(nbytes: float) -> str:
    """``"1,506 MB"``."""
    return f"{megabytes(nbytes)} MB"


def _versus(row: pd.Series) -> str:
    """``name (R× fewer bytes, Δ pp)`` of a method row."""
    factor = row["compression"]
    size = f"{factor:.3g}× fewer bytes" if factor >= 1 else f"{1 / factor:.3g}× more bytes"
    return f"`{row['method']}` ({size}, {row['delta_pp']:+.2f} pp)"


def summary_markdown(table: pd.DataFrame, command: str) -> str:
    """Return the summary: setup, the fp32 baseline, the front, the best near-fp32, the losses.

    ``table`` is `simulations.report_table.method_table`'s output; ``command``
    the command line that made the report.
    """
    base = table[table["method"] == BASELINE].iloc[0]
    others = table[table["method"] != BASELINE]
    kinds = ", ".join(
        f"{kind} {_mb(base[column])}" for kind, column in KIND_COLUMNS.items() if base[column]
    )
    seeds = int(table["seeds"].max())
    lines = [
        f"# {base['task']}: {len(table)} methods against fp32 split learning",
        "",
        f"`{command}`: {base['clients']} clients, {plural(base['epochs'], 'epoch')}, "
        f"{plural(seeds, 'seed')} per method; accuracy is the final test accuracy"
        f"{' (mean over seeds)' if seeds > 1 else ''}, "
        "bytes are all training traffic (up + down + labels + sync), time is simulated.",
        "",
        f"- **fp32 SL** (`{base['strategy']}`, identity codecs, sampler `{base['sampler']}`): "
        f"**{base['accuracy']:.2f} %**, **{_mb(base['total_bytes'])}** ({kinds}), "
        f"{base['sim_time_s']:.3g} s simulated.",
    ]
    near = others[others["delta_pp"] >= -NEAR_PP].sort_values("total_bytes")
    if len(near):
        lines.append(f"- **Fewest bytes within {NEAR_PP:g} pp of fp32**: {_versus(near.iloc[0])}.")
    else:
        lines.append(f"- **No method stays within {NEAR_PP:g} pp of fp32.**")
    front = others[others["pareto"]].sort_values("total_bytes")
    lines.append(
        "- **Pareto front** (no other method has fewer bytes and a higher accuracy): "
        + (", ".join(_versus(row) for _, row in front.iterrows()) or "fp32 alone")
        + "."
    )
    lost = others[others["delta_pp"] <= -LOST_PP].sort_values("delta_pp")
    lines.append(
        f"- **{LOST_PP:g} pp or more below fp32**: "
        + (", ".join(_versus(row) for _, row in lost.iterrows()) or "none")
        + "."
    )
    fp32_codecs = others[others["group"].isin(["sampler", "strategy"])]
    if len(fp32_codecs):
        lines.append(
            "- **Samplers and strategies** (fp32 codecs): "
            + ", ".join(
                f"`{row['method']}` {row['delta_pp']:+.2f} pp, {row['time_vs_fp32']:.3g}× the time"
                for _, row in fp32_codecs.iterrows()
            )
            + "."
        )
    fastest = others.sort_values("sim_time_s").iloc[0] if len(others) else base
    lines += [
        f"- **Shortest simulated time**: `{fastest['method']}`, "
        f"{fastest['time_vs_fp32']:.3g}× fp32's ({fastest['sim_time_s']:.3g} s).",
        "",
        "Figure: `pareto.png`; every method: `table.md` (`table.csv`); every run: `runs/`.",
        "",
    ]
    return "\n".join(lines)
