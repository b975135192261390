"""Check a run config before anything starts, with one-line messages that name the fix.

`check_run_config` is what a launcher calls before it starts a SuperLink or
Ray: it reads every option (`read_options`: unknown keys, types, choices),
builds the codecs, the sampler and the model the options name, and checks
``min-nodes`` against the nodes that will run. Each problem is a
`RunConfigError` whose message names the key, the bad value and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flwr_split.codecs import get_codec
from flwr_split.options.settings import RunSettings
from flwr_split.sampling import get_sampler
from flwr_split.tasks import build_model


class RunConfigError(ValueError):
    """A run config that cannot run; the message is one line that names the fix."""


def _try(key: str, value: object, build: Callable[[], object]) -> None:
    try:
        build()
    except (ValueError, TypeError, LookupError) as exc:
        raise RunConfigError(f"run config {key}={value!r}: {_one_line(exc)}") from exc


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def check_run_config(run_config: Mapping[str, Any], num_nodes: int | None = None) -> RunSettings:
    """Return the settings of ``run_config`` if it can run on ``num_nodes`` nodes.

    Parameters
    ----------
    run_config : Mapping[str, Any]
        ``--run-config`` overrides (missing keys take their declared defaults).
    num_nodes : int or None (default: None)
        Nodes the run will have (SuperNodes of a simulation or deployment);
        ``None`` skips the ``min-nodes`` check.

    Raises
    ------
    RunConfigError
        At the first problem: an unknown key (with the closest valid one), a
        value of the wrong type or not among its choices, a codec or sampler
        spec that does not build, a task or cut that does not exist, or more
        ``min-nodes`` than nodes.
    """
    try:
        settings = RunSettings.from_run_config(run_config)
    except (ValueError, TypeError, LookupError) as exc:
        text = _one_line(exc)
        raise RunConfigError(text if "run config" in text else f"run config: {text}") from exc
    for key in ("uplink", "downlink"):
        spec = settings.strategy[key]
        _try(key, spec, lambda spec=spec: get_codec(spec))
    _try("sampler", settings.strategy["sampler"], lambda: get_sampler(settings.strategy["sampler"]))
    task = settings.task
    _try("task", task.task, lambda: build_model(task))
    min_nodes = settings.strategy["min_available_nodes"]
    if num_nodes is not None and min_nodes > num_nodes:
        raise RunConfigError(
            f"run config min-nodes={min_nodes} but only {num_nodes} node"
            f"{'s' if num_nodes != 1 else ''} will run, so the run would wait for nodes that "
            f"never come: pass min-nodes={num_nodes} or --num-supernodes {min_nodes}"
        )
    return settings
