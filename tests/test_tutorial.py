"""docs/tutorial.ipynb runs top to bottom in a fresh kernel and shows what its text says."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
BUDGET_S = 600
"""Kernel timeout per cell; the whole notebook takes about a minute on 2 cores."""
REPORT = """
import json
print(json.dumps({
    codec: [result.final_accuracy, int(result.history["bytes_up"].iloc[-1]
                                       + result.history["bytes_down"].iloc[-1])]
    for codec, result in runs.items()
}))
"""


def test_tutorial_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_tutorial_runs_and_quantization_keeps_accuracy_on_an_eighth_of_the_bytes():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT))
    client = NotebookClient(
        notebook,
        timeout=BUDGET_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    # The kernel imports this checkout (not another editable install of the package).
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    client.execute(env={**os.environ, "PYTHONPATH": path})
    print(f"tutorial executed in {time.perf_counter() - started:.1f} s")

    plots = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(plots) == 1
    report = json.loads(notebook.cells[-1].outputs[0]["text"])
    fp32_accuracy, fp32_bytes = report["identity"]
    q4_accuracy, q4_bytes = report["quant:bits=4"]
    assert fp32_accuracy > 0.9
    assert q4_accuracy > fp32_accuracy - 0.02  # "the same accuracy"
    assert 7.5 < fp32_bytes / q4_bytes < 8.0  # "an eighth of the traffic"
