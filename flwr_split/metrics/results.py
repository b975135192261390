"""Save a run's tables as CSV and draw accuracy against bytes and steps (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def run_paths(output_dir: str | Path, name: str) -> dict[str, Path]:
    """Return where a run named ``name`` keeps its files in ``output_dir``.

    ``history`` (``<name>.csv``), ``steps`` (``<name>_steps.csv``), ``traffic``
    (``<name>_traffic.csv``), ``plot`` (``<name>.png``) and ``checkpoint``
    (``<name>.ckpt``).
    """
    out = Path(output_dir)
    return {
        "history": out / f"{name}.csv",
        "steps": out / f"{name}_steps.csv",
        "traffic": out / f"{name}_traffic.csv",
        "plot": out / f"{name}.png",
        "checkpoint": out / f"{name}.ckpt",
    }


def traffic_summary(traffic: pd.DataFrame) -> pd.DataFrame:
    """Sum a traffic log's bytes per step, phase, direction and kind (what is saved)."""
    return traffic.groupby(["step", "phase", "direction", "kind"], as_index=False)["nbytes"].sum()


def save_run(
    history: pd.DataFrame,
    traffic: pd.DataFrame,
    output_dir: str | Path,
    name: str,
    steps: pd.DataFrame | None = None,
    *,
    label: str | None = None,
    plot: bool = True,
) -> dict[str, Path]:
    """Write a run's history CSV, its traffic CSV and its plot; return the paths.

    ``label`` says what ran (task, codecs, sampler; default ``name``): the
    plot's title and legend carry it, with the run's total training bytes.

    Files (`run_paths`): ``<name>.csv`` (history), ``<name>_traffic.csv``
    (`traffic_summary`), ``<name>.png`` (unless ``plot`` is false) and, if
    ``steps`` is given, ``<name>_steps.csv`` (one row per training step, see
    `flwr_split.server.result.SplitResult`).
    """
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    every = run_paths(output_dir, name)
    paths = {key: every[key] for key in ("history", "traffic")}
    history.to_csv(paths["history"], index=False)
    traffic_summary(traffic).to_csv(paths["traffic"], index=False)
    if plot:
        paths["plot"] = every["plot"]
        plot_history({label or name: history}, paths["plot"], title=label or name)
    if steps is not None:
        paths["steps"] = every["steps"]
        steps.to_csv(paths["steps"], index=False)
    return paths


def plot_history(
    histories: dict[str, pd.DataFrame], path: str | Path, title: str | None = None
) -> None:
    """Plot test accuracy against cumulative training bytes and against steps, one line per run.

    Each run's legend entry is its key in ``histories`` and its total training
    bytes (up + down); ``title`` goes above both panels.
    """
    fig, (ax_bytes, ax_steps) = plt.subplots(1, 2, figsize=(11, 4))
    for label, history in histories.items():
        total_mb = (history["bytes_up"] + history["bytes_down"]) / 1e6
        entry = f"{label}: {total_mb.iloc[-1]:.1f} MB" if len(total_mb) else label
        ax_bytes.plot(total_mb, history["accuracy"], marker=".", label=entry)
        ax_steps.plot(history["step"], history["accuracy"], marker=".", label=entry)
    ax_bytes.set_xlabel("cumulative training traffic, up + down (MB)")
    ax_steps.set_xlabel("step")
    for ax in (ax_bytes, ax_steps):
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
