"""The README's "Your own model" App runs as printed: in process and through `flwr run`."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from flwr.app import Context, RecordDict

from flwr_split.launch.simulation import SimulationSuperLink
from flwr_split.testing import InProcessGrid
from tests.helpers import on_path

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_LINES = 40
NODES = 4
PYPROJECT = """[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "mysplit"
version = "0.1.0"
dependencies = ["flwr[simulation]>=1.41,<1.43"]

[tool.hatch.build.targets.wheel]
packages = ["mysplit"]

[tool.flwr.app]
publisher = "readme"

[tool.flwr.app.components]
serverapp = "mysplit.app:server_app"
clientapp = "mysplit.app:client_app"

[tool.flwr.app.config]
"""


def readme_code(section: str) -> str:
    """Return the first ```python block under the README heading ``## <section>``."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", body, re.DOTALL)
    assert match, f"no python block under '## {section}'"
    return match.group(1)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory) -> Path:
    """A Flower App folder whose module ``mysplit/app.py`` is the README block, unchanged."""
    code = readme_code("Your own model")
    assert len(code.strip().splitlines()) <= MAX_LINES
    root = tmp_path_factory.mktemp("readme-app")
    (root / "mysplit").mkdir()
    (root / "mysplit" / "__init__.py").write_text("")
    (root / "mysplit" / "app.py").write_text(code)
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def _final_accuracy(printed: str) -> float:
    """Read the accuracy of the last row of the printed history table."""
    rows = [line.split() for line in printed.splitlines() if re.match(r"\s*\d+\s+\d+\s", line)]
    assert rows, printed
    return float(rows[-1][2])


def test_your_own_model_app_trains_in_process(app_dir, capsys):
    with on_path(app_dir):
        app = importlib.import_module("mysplit.app")
        context = Context(1, 0, node_config={}, state=RecordDict(), run_config={})
        app.main(InProcessGrid(app.client_app, NODES), context)
    assert _final_accuracy(capsys.readouterr().out) > 0.6


@pytest.mark.slow
def test_your_own_model_app_trains_through_flwr_run(app_dir, tmp_path):
    with SimulationSuperLink(tmp_path / "flwr-home") as superlink:
        done = superlink.run(app_dir, {}, NODES, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _final_accuracy(done.stdout) > 0.6, done.stdout + done.stderr
