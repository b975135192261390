"""Every page of docs/ and the README points only at what the repository holds.

Markdown links (and their ``#anchors``) must resolve to files and headings in the
repository, repository paths quoted in backticks must exist, and no page may send a
reader to the project's private notes (``shared/...``), which a user of the
repository does not have. The tutorial notebook's markdown cells count as a page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "docs" / "tutorial.ipynb",
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
REPO_FOLDERS = ("flwr_split/", "strategies/", "simulations/", "tests/", "docs/", ".ci/")
OUTSIDE = re.compile(r"shared/(specs|design|style|data)|\.\./shared\b")


def text_of(page: Path) -> str:
    """Return a page's markdown: the file, or a notebook's markdown cells."""
    if page.suffix != ".ipynb":
        return page.read_text()
    cells = json.loads(page.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def anchors(page: Path) -> set[str]:
    """Return GitHub's anchor of every heading of a markdown page."""
    slugs = set()
    for line in text_of(page).splitlines():
        match = re.match(r"#{1,6} (.*)", line)
        if match:
            text = re.sub(r"[`*]", "", match.group(1)).strip().lower()
            slugs.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return slugs


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Return the relative links of ``page`` whose file (under ``root``) or heading is missing."""
    broken = []
    for target in LINK.findall(text_of(page)):
        if re.match(r"[a-z]+:", target):
            continue
        name, _, anchor = target.partition("#")
        path = (page.parent / name).resolve() if name else page
        if not path.exists() or not path.is_relative_to(root):
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    return broken


def missing_paths(page: Path) -> list[str]:
    """Return the repository paths quoted in backticks on ``page`` that do not exist."""
    missing = []
    for quoted in CODE_SPAN.findall(text_of(page)):
        path = quoted.split("::")[0].rstrip("/")
        if path.startswith(REPO_FOLDERS) and not re.search(r"[*<>{}]", path):
            if not (ROOT / path).exists():
                missing.append(quoted)
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_resolve_in_the_repository(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_quoted_repository_paths_exist(page):
    assert missing_paths(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_points_outside_the_repository(page):
    assert [match.group(0) for match in OUTSIDE.finditer(text_of(page))] == []


def test_the_checks_catch_what_they_should(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Real heading\n")
    page = docs / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#real-heading) [web](https://flower.ai) [here](#b)\n"
        "# B\n[gone](nothere.md) [bad anchor](a.md#nope) [out](../../etc/passwd)\n"
        "`flwr_split/no_such_module.py` `flwr_split/codecs/` `results/x/`\n"
        "see `../shared/specs/fedlite.md`\n"
    )
    assert broken_links(page, tmp_path) == ["nothere.md", "a.md#nope", "../../etc/passwd"]
    assert missing_paths(page) == ["flwr_split/no_such_module.py"]
    assert OUTSIDE.findall(page.read_text())
