"""The test plugin ``flwr_split_testplugin``, "installed" by putting `PLUGIN_PATH` on the path.

`PLUGIN_PATH` holds the package and its ``.dist-info`` folder, whose
``entry_points.txt`` declares codec `CODEC_ID` in group ``flwr_split.codecs`` and
sampler `SAMPLER_ID` in group ``flwr_split.samplers``. On ``sys.path`` (in
process) or ``PYTHONPATH`` (subprocesses, Flower's Ray workers: `plugin_env`),
flwr-split finds both without an import line.
"""

from __future__ import annotations

import os
from pathlib import Path

PLUGIN_PATH = Path(__file__).resolve().parent
CODEC_ID = "plugin_scale"
SAMPLER_ID = "plugin_turns"
PLUGIN_MODULE = "flwr_split_testplugin"


def plugin_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Return a copy of ``base`` (default ``os.environ``) with `PLUGIN_PATH` first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_PATH), env.get("PYTHONPATH")]))
    return env


def write_dist_info(root: Path, name: str, entry_points: str) -> Path:
    """Write the metadata of a package ``name`` 0.1 declaring ``entry_points`` under ``root``.

    ``entry_points`` is the text of ``entry_points.txt`` (``[group]`` lines and
    ``name = module:attr`` lines); with ``root`` on ``sys.path`` the package
    counts as installed. Returns the ``.dist-info`` folder.
    """
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return info
