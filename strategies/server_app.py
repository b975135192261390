"""The ServerApp that `flwr run .` starts: the run config's strategy, configured from it."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from flwr_split.metrics.results import run_paths, save_run
from flwr_split.options import RunSettings
from flwr_split.server.stream import ResultStream
from strategies.registry import build_strategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the configured split-learning strategy and save its history, traffic and plot.

    Rows are appended to the CSV files as they come (`ResultStream`), with a
    checkpoint every ``checkpoint-every`` steps; ``resume`` continues from it.
    """
    settings = RunSettings.from_run_config(dict(context.run_config))
    strategy = build_strategy(settings)
    out = Path(settings.output_dir).resolve()
    checkpoint = run_paths(out, settings.run_name)["checkpoint"]
    result = strategy.start(
        grid,
        num_epochs=settings.epochs,
        max_steps=settings.max_steps,
        progress=True,
        callbacks=[ResultStream(out, settings.run_name, strategy.traffic)],
        checkpoint_every=settings.checkpoint_every,
        checkpoint_path=checkpoint,
        resume_from=checkpoint if settings.resume else None,
    )
    paths = save_run(result.history, result.traffic, out, settings.run_name, result.steps)
    print(
        f"final test accuracy {result.final_accuracy:.4f}; results in {paths['history']}",
        flush=True,
    )
