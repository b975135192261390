"""Gradient correction (FedLite): add λ·(Z − Z̃) to the server's cut-layer gradient."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flwr_split.codecs import Codec, CodecContext


@dataclass(frozen=True)
class QuantizationResidual:
    """The uplink codec's error ``Z − Z̃`` on one forward's activations.

    A client builds it for one backward and drops it afterwards: it is
    recomputed (re-encoded with the forward's codec seed, then decoded) rather
    than kept between messages.

    Parameters
    ----------
    residual : torch.Tensor
        ``Z − Z̃``, detached, shaped like the activations.
    """

    residual: torch.Tensor

    @classmethod
    def recompute(cls, codec: Codec, acts: torch.Tensor, ctx: CodecContext) -> QuantizationResidual:
        """Encode and decode ``acts`` exactly as the forward did and keep the difference.

        Parameters
        ----------
        codec : Codec
            The uplink codec.
        acts : torch.Tensor
            The activations ``Z`` of the forward (autograd graph ignored; the
            residual is computed on the CPU, where the codec works).
        ctx : CodecContext
            The context the forward encoded with (same seed: same ``Z̃``).
        """
        values = acts.detach().cpu()
        return cls(values - codec.decode(codec.encode(values, ctx), ctx))

    def correct(self, grad: torch.Tensor, weight: float) -> torch.Tensor:
        """Return ``grad + weight * (Z − Z̃)`` (``grad`` itself when ``weight == 0``)."""
        return grad + weight * self.residual if weight else grad
