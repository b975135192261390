"""The report's Pareto figure: test accuracy against total training bytes, one point per method."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from simulations.common import save_figure  # noqa: E402
from simulations.report_table import BASELINE, GROUPS  # noqa: E402

PALETTE = [plt.get_cmap("tab10")(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
"""Codec colours: tab10 without its grey, which marks samplers and strategies."""
MARKERS = {"up": "o", "up+down": "s", "down": "v"}
"""Marker of a codec method by the directions it compresses."""
OTHER_MARKERS = "^<>DPXh*"
"""Markers of sampler, strategy and mixed methods, in table order."""
ZOOM_PP = 3.0
"""The zoom panel shows accuracies from this many percentage points below fp32 up."""


def style(method: str, group: str, colors: dict[str, object], others: list[str]) -> dict:
    """Return the matplotlib style of a method's point: colour by codec, marker by directions."""
    if group == "codec":
        codec, _, directions = method.partition(" ")
        color = colors.setdefault(codec, PALETTE[len(colors) % len(PALETTE)])
        return {"color": color, "marker": MARKERS.get(directions, "d"), "markeredgecolor": "k"}
    others.append(method)
    marker = OTHER_MARKERS[(len(others) - 1) % len(OTHER_MARKERS)]
    return {"color": "0.35", "marker": marker, "markerfacecolor": "none", "markeredgewidth": 1.5}


def _table_order(column: pd.Series) -> pd.Series:
    """Sort key: groups in `GROUPS` order, methods by name (a codec's points side by side)."""
    return column.map(GROUPS.index) if column.name == "group" else column


def draw(ax: plt.Axes, table: pd.DataFrame) -> None:
    """Draw every method's point, the fp32 star and the Pareto front on ``ax`` (log x)."""
    colors: dict[str, object] = {}
    others: list[str] = []
    for row in table.sort_values(["group", "method"], key=_table_order).itertuples():
        total_mb = row.total_bytes / 1e6
        if row.method == BASELINE:
            ax.scatter(total_mb, row.accuracy, marker="*", s=420, color="k", zorder=2)
            ax.annotate(
                "fp32 SL",
                (total_mb, row.accuracy),
                xytext=(12, -4),
                textcoords="offset points",
                fontsize=11,
                fontweight="bold",
            )
            continue
        look = style(row.method, row.group, colors, others)
        ax.errorbar(
            total_mb,
            row.accuracy,
            yerr=row.accuracy_std if row.seeds > 1 else None,
            linestyle="none",
            markersize=8,
            label=row.method,
            zorder=3,
            **{"markeredgewidth": 0.5, **look},
        )
    front = table[table["pareto"]].sort_values("total_bytes")
    ax.step(
        front["total_bytes"] / 1e6,
        front["accuracy"],
        where="post",
        color="0.6",
        linestyle="--",
        linewidth=1,
        label="Pareto front",
        zorder=1,
    )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("total training traffic per run: up + down + labels + sync (MB, log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.grid(alpha=0.3, which="both")


def plot_pareto(table: pd.DataFrame, path: Path, title: str) -> None:
    """Draw accuracy (%) against total bytes (MB, log x) with the Pareto front; write a PNG.

    fp32 SL is a large black star with its name beside it; every other
    method has one legend entry, a codec's methods side by side. Codecs are
    coloured by codec, with a circle for the uplink only and a square for both
    directions; samplers and strategies (fp32 codecs) are hollow grey
    markers, drawn over the star. Error bars: std over seeds. When a method
    falls more than `ZOOM_PP` below fp32, a second panel shows the band from
    `ZOOM_PP` below fp32 up, where the methods that keep its accuracy crowd.
    """
    base = float(table.loc[table["method"] == BASELINE, "accuracy"].iloc[0])
    zoom = bool((table["accuracy"] < base - ZOOM_PP).any())
    fig, axes = plt.subplots(1, 1 + zoom, figsize=(15.5 if zoom else 10, 5.6), squeeze=False)
    for ax in axes[0]:
        draw(ax, table)
    axes[0][0].set_title(title)
    if zoom:
        top = float(table["accuracy"].max())
        axes[0][1].set_ylim(base - ZOOM_PP, top + 0.1 * (top - base + ZOOM_PP))
        axes[0][1].set_title(f"zoom: from {ZOOM_PP:g} pp below fp32 up")
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    save_figure(fig, path)
