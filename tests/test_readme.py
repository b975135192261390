"""The README's "Your own model" example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_LINES = 40


def readme_code(section: str) -> str:
    """Return the first ```python block under the README heading ``## <section>``."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", body, re.DOTALL)
    assert match, f"no python block under '## {section}'"
    return match.group(1)


def test_your_own_model_example_trains_a_task_defined_in_plain_pytorch(capsys):
    code = readme_code("Your own model")
    assert len(code.strip().splitlines()) <= MAX_LINES
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, f"{README}:Your own model", "exec"), namespace)  # noqa: S102
    history = namespace["result"].history
    assert history["accuracy"].iloc[-1] > 0.6
    assert "accuracy" in capsys.readouterr().out
