"""Strategy registry: the run config's ``strategy`` names to `SplitStrategy` classes.

``parallel`` is `ParallelSplitLearning`; a package adds a strategy through the
entry-point group ``flwr_split.strategies`` (see `flwr_split.common.registry`).
"""

from __future__ import annotations

from flwr_split.common.registry import Registry
from flwr_split.options import RunSettings
from strategies.base import SplitStrategy
from strategies.parallel import ParallelSplitLearning

STRATEGIES: Registry[type[SplitStrategy]] = Registry("strategy", "flwr_split.strategies")
STRATEGIES.register("parallel", ParallelSplitLearning)


def build_strategy(settings: RunSettings) -> SplitStrategy:
    """Return the strategy ``settings.strategy_name`` names, configured by ``settings``.

    Raises
    ------
    flwr_split.common.registry.RegistryError
        If no strategy has that name; the message names the known ones.
    """
    strategy_class = STRATEGIES.get(settings.strategy_name)
    return strategy_class(settings.task, optimizer=settings.optimizer, **settings.strategy)
