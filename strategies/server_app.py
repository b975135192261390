"""The ServerApp that `flwr run .` starts: the run config's strategy, configured from it."""

from __future__ import annotations

import os
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from flwr_split.launch.run_log import failure_line, result_line
from flwr_split.metrics.results import run_paths, save_run
from flwr_split.options import RunSettings
from flwr_split.server.callbacks import ProgressLog
from flwr_split.server.progress import PROGRESS_ENV, Progress, ProgressSink
from flwr_split.server.stream import ResultStream
from strategies.registry import build_strategy

app = ServerApp()


def print_progress(progress: Progress) -> None:
    """Print a progress snapshot as the line our launchers read (`Progress.to_line`)."""
    print(progress.to_line(), flush=True)


def progress_mode() -> bool | ProgressSink:
    """Return how the run shows its progress.

    Started by our launchers (`PROGRESS_ENV` set), it prints `Progress` lines
    for the launcher's bar; else a progress line every few seconds in the log.
    """
    return print_progress if os.environ.get(PROGRESS_ENV) else True


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the configured split-learning strategy and save its history, traffic and plot.

    Rows are appended to the CSV files as they come (`ResultStream`), with a
    checkpoint every ``checkpoint-every`` steps; ``resume`` continues from it.
    The last line it prints says how the run ended: a result line with the
    final score and the result files, or, if anything raised, a failure line
    with the error (`flwr_split.launch.run_log`), since ``flwr run`` may exit
    0 after a ServerApp failed.
    """
    try:
        settings = RunSettings.from_run_config(dict(context.run_config))
        strategy = build_strategy(settings)
        out = Path(settings.output_dir).resolve()
        checkpoint = run_paths(out, settings.run_name)["checkpoint"]
        result = strategy.start(
            grid,
            num_epochs=settings.epochs,
            max_steps=settings.max_steps,
            callbacks=[ProgressLog(), ResultStream(out, settings.run_name, strategy.traffic)],
            progress=progress_mode(),
            checkpoint_every=settings.checkpoint_every,
            checkpoint_path=checkpoint,
            resume_from=checkpoint if settings.resume else None,
        )
        paths = save_run(
            result.history,
            result.traffic,
            out,
            settings.run_name,
            result.steps,
            label=settings.label(),
        )
    except Exception as exc:
        print(failure_line(exc), flush=True)
        raise
    print(
        f"final test accuracy {result.final_accuracy:.4f}; results in {paths['history']}",
        flush=True,
    )
    last = result.history.iloc[-1]
    summary = {
        "accuracy": result.final_accuracy,
        "steps": int(last["step"]),
        "bytes": int(last["bytes_up"] + last["bytes_down"]),
        "files": {key: str(path) for key, path in paths.items()},
    }
    print(result_line(summary), flush=True)
