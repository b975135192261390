"""`ResultStream`: a run's history, step and traffic rows appended to their CSV files as they come.

A run killed at step 271 leaves its rows up to there on disk. The files are
those of `flwr_split.metrics.results.save_run`, which rewrites them whole
when a run returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from flwr_split.metrics import TrafficLog
from flwr_split.metrics.results import run_paths, traffic_summary
from flwr_split.metrics.traffic import COLUMNS
from flwr_split.server.callbacks import SplitCallback
from flwr_split.server.result import SplitResult


class CsvRows:
    """A CSV file that rows are appended to; a row with a new column rewrites it with that column.

    The first append of a `CsvRows` replaces whatever file was there.

    Parameters
    ----------
    path : Path
        The file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] | None = None

    def reset(self, frame: pd.DataFrame) -> None:
        """Make the file hold ``frame`` exactly."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(self.path, index=False)
        self.columns = list(frame.columns)

    def append(self, rows: list[Mapping[str, object]]) -> None:
        """Append ``rows`` (dicts of column to value; missing columns stay empty)."""
        if not rows:
            return
        if self.columns is None:
            self.reset(pd.DataFrame(rows))
            return
        new = list(dict.fromkeys(k for row in rows for k in row if k not in self.columns))
        if new:
            self.reset(pd.concat([pd.read_csv(self.path), pd.DataFrame(rows)], ignore_index=True))
            return
        pd.DataFrame(rows, columns=self.columns).to_csv(
            self.path, mode="a", header=False, index=False
        )


class ResultStream(SplitCallback):
    """Append each step row, evaluation row and the traffic booked since to the run's CSV files.

    Traffic is appended as `traffic_summary` of the rows booked since the last
    append, after every step, evaluation and epoch end. On a resume the files
    are rewritten to hold the checkpoint's tables, so rows of a killed run
    after its checkpoint are dropped and made again.

    Parameters
    ----------
    output_dir : str or Path
        The run's folder.
    name : str
        The run's name (`flwr_split.metrics.results.run_paths`).
    traffic : TrafficLog
        The strategy's traffic log (``strategy.traffic``).
    """

    def __init__(self, output_dir: str | Path, name: str, traffic: TrafficLog) -> None:
        paths = run_paths(output_dir, name)
        self.history = CsvRows(paths["history"])
        self.steps = CsvRows(paths["steps"])
        self.traffic_rows = CsvRows(paths["traffic"])
        self.traffic = traffic
        self._flushed = 0

    def on_step(self, row: Mapping[str, object]) -> None:
        """Append the step's row and its traffic."""
        self._flush_traffic()
        self.steps.append([row])

    def on_evaluation(self, row: Mapping[str, object]) -> None:
        """Append the evaluation's row and its traffic."""
        self._flush_traffic()
        self.history.append([row])

    def on_epoch_end(self, epoch: int, step: int) -> None:
        """Append the traffic of the epoch's sync."""
        self._flush_traffic()

    def on_restore(self, result: SplitResult) -> None:
        """Rewrite the files with the checkpoint's rows (and the resumed run's hello)."""
        self.history.reset(result.history)
        self.steps.reset(result.steps)
        self.traffic_rows.reset(traffic_summary(result.traffic))
        self._flushed = len(result.traffic)

    def _flush_traffic(self) -> None:
        rows = self.traffic.rows[self._flushed :]
        self._flushed = len(self.traffic.rows)
        if rows:
            summary = traffic_summary(pd.DataFrame(rows, columns=COLUMNS))
            self.traffic_rows.append(summary.to_dict("records"))
