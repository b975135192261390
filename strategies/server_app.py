"""The ServerApp that `flwr run .` starts: the run config's strategy, configured from it."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from flwr_split.metrics.results import save_run
from flwr_split.options import RunSettings
from strategies.registry import build_strategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the configured split-learning strategy and save its history, traffic and plot."""
    settings = RunSettings.from_run_config(dict(context.run_config))
    strategy = build_strategy(settings)
    result = strategy.start(
        grid, num_epochs=settings.epochs, max_steps=settings.max_steps, progress=True
    )
    paths = save_run(
        result.history,
        result.traffic,
        Path(settings.output_dir).resolve(),
        settings.run_name,
        result.steps,
    )
    print(
        f"final test accuracy {result.final_accuracy:.4f}; results in {paths['history']}",
        flush=True,
    )
