"""The run's SGD or Adam on torch's functional kernels, without a ``torch.optim.Optimizer``.

Every method of ``torch.optim.Optimizer`` (constructor, ``step``, ``zero_grad``,
``state_dict``) imports ``torch._dynamo`` on first use, which costs about as
much as importing torch itself; a deployment SuperNode starts a fresh
ClientApp process for every message and would pay it at every step. The
functional kernels ``torch.optim.sgd.sgd`` and ``torch.optim.adam.adam`` (the
public functions ``torch.optim.SGD`` and ``torch.optim.Adam`` call) do the
same arithmetic without it, and skip the optimizer's profiler hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

if TYPE_CHECKING:
    from flwr_split.tasks.optim import OptimizerConfig

ADAM_BETAS = (0.9, 0.999)
"""``torch.optim.Adam``'s default betas."""
ADAM_EPS = 1e-8
"""``torch.optim.Adam``'s default eps."""


class LeanOptimizer:
    """SGD with momentum or Adam of an `OptimizerConfig`, stepped by torch's functional kernels.

    Gives the same parameters, and the same ``state_dict()["state"]`` (parameter
    index -> ``momentum_buffer``, or ``step``, ``exp_avg``, ``exp_avg_sq``), as
    the ``torch.optim.SGD`` / ``torch.optim.Adam`` that ``OptimizerConfig.build``
    makes, with their other defaults (no weight decay, dampening, Nesterov or
    AMSGrad); `load_state_dict` reads that state back.

    Parameters
    ----------
    config : OptimizerConfig
        Name (``"sgd"`` or ``"adam"``), learning rate and SGD momentum.
    params : Iterable[torch.nn.Parameter]
        Parameters to optimize, in a fixed order (the state's indices).
    """

    def __init__(self, config: OptimizerConfig, params: Iterable[torch.nn.Parameter]) -> None:
        self.config = config
        self.params = list(params)
        self.state: dict[int, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (to None, or zero them in place)."""
        for param in self.params:
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.detach_().zero_()

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        indices = [i for i, param in enumerate(self.params) if param.grad is not None]
        if not indices:
            return
        params = [self.params[i] for i in indices]
        grads = [param.grad for param in params]
        with torch.no_grad():
            if self.config.name == "adam":
                self._adam(indices, params, grads)
            else:
                self._sgd(indices, params, grads)

    def _sgd(self, indices: list[int], params: list, grads: list) -> None:
        momentum = self.config.momentum
        buffers = [self.state.get(i, {}).get("momentum_buffer") for i in indices]
        sgd(
            params,
            grads,
            buffers,
            has_sparse_grad=any(grad.is_sparse for grad in grads),
            weight_decay=0.0,
            momentum=momentum,
            lr=self.config.lr,
            dampening=0.0,
            nesterov=False,
            maximize=False,
        )
        if momentum:
            for i, buffer in zip(indices, buffers, strict=True):
                self.state[i] = {"momentum_buffer": buffer}

    def _adam(self, indices: list[int], params: list, grads: list) -> None:
        for i, param in zip(indices, params, strict=True):
            if i not in self.state:
                self.state[i] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
                }
        states = [self.state[i] for i in indices]
        adam(
            params,
            grads,
            [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states],
            [],
            [state["step"] for state in states],
            has_complex=any(torch.is_complex(param) for param in params),
            amsgrad=False,
            beta1=ADAM_BETAS[0],
            beta2=ADAM_BETAS[1],
            lr=self.config.lr,
            weight_decay=0.0,
            eps=ADAM_EPS,
            maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"state": ...}`` in ``torch.optim.Optimizer.state_dict``'s layout."""
        return {"state": self.state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Adopt ``state_dict["state"]``, tensors moved to their parameter's device and dtype.

        Adam's ``step`` stays a CPU float32 scalar, as torch keeps it.
        """
        state: dict[int, dict[str, torch.Tensor]] = {}
        for index, entry in state_dict["state"].items():
            param = self.params[int(index)]
            state[int(index)] = {
                name: value if name == "step" else value.to(param.device, param.dtype)
                for name, value in entry.items()
            }
        self.state = state
