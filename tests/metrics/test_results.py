"""A run's files and plot: names, the plot's title and legend."""

from __future__ import annotations

import matplotlib.figure
import pandas as pd

from flwr_split.metrics.results import save_run
from flwr_split.options import RunSettings


def _history() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": [10, 20],
            "accuracy": [0.5, 0.8],
            "bytes_up": [1e6, 2e6],
            "bytes_down": [1e6, 1.5e6],
        }
    )


def test_the_plot_says_what_ran_and_its_total_bytes(tmp_path, monkeypatch):
    figures = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "savefig",
        lambda fig, *a, **k: figures.append(fig) or original(fig, *a, **k),
    )
    settings = RunSettings.from_run_config({"uplink": "quant:bits=8", "sampler": "ugs"})
    traffic = pd.DataFrame(columns=["step", "phase", "partition_id", "direction", "kind", "nbytes"])
    paths = save_run(_history(), traffic, tmp_path, settings.run_name, label=settings.label())
    assert paths["plot"] == tmp_path / "digits_up-quant-bits8_down-identity.png"
    assert paths["plot"].stat().st_size > 0
    (fig,) = figures
    title = fig._suptitle.get_text()
    assert title == "digits cut 1, up quant:bits=8, down identity, sampler ugs"
    for ax in fig.axes:
        (entry,) = [text.get_text() for text in ax.get_legend().get_texts()]
        assert entry == f"{title}: 3.5 MB"
