"""Probe: FedLite's distortion and best correction weight on a task's real cut-layer activations.

Usage: ``python -m simulations.probe_fedlite [--spec SPEC ...] [--steps 160] [--probe-every 40]``

Trains the task's fp32 model centrally (Adam, union batches of ``clients x batch``
samples drawn uniformly, as many steps as the FedLite benchmark's parallel SL
run takes) and, every ``probe-every`` steps, encodes one fixed union batch
``batch`` rows at a time (one codebook per client batch, as the clients do)
with each codec. Per codec and probe it records the measured uplink ratio, the
reconstruction error relative to the activations' energy, how often the top
predicts the same class from ``Z̃`` as from ``Z``, and the spec's F8
quantities on the mean loss: ``λ* = <v, Δ>/|v|²`` with ``v = Z − Z̃`` and
``Δ = ∇φ(Z) − ∇φ(Z̃)``, and the cut-layer gradient error ``|Δ − λ v|/|∇φ(Z)|`` at
``λ = 0`` and at ``λ*``. Writes ``probe.csv``, ``probe.png`` and ``env.json``.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from flwr_split.codecs import CodecContext, get_codec  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, load_task_data  # noqa: E402
from simulations.common import output_dir, save_figure, write_env  # noqa: E402

DEFAULT_SPECS = (
    "fedlite:q=80,clusters=128,precision=float16",
    "fedlite:q=80,clusters=128,precision=float16,init=kmeans++",
    "fedlite:q=160,clusters=128,precision=float16",
    "fedlite:q=160,clusters=64,precision=float16",
    "fedlite:q=40,clusters=80,precision=float16",
    "fedlite:q=320,clusters=16,precision=float16",
)


def cut_gradient(top: nn.Module, acts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Return the gradient of the top's mean cross-entropy with respect to ``acts``."""
    leaf = acts.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(top(leaf), labels), leaf)
    return grad


def probe_codec(
    spec: str, top: nn.Module, acts: torch.Tensor, labels: torch.Tensor, batch: int
) -> dict[str, float]:
    """Encode ``acts`` ``batch`` rows at a time with ``spec``; return the probe's measurements."""
    codec = get_codec(spec)
    decoded, wire = [], 0
    for start in range(0, len(acts), batch):
        ctx = CodecContext(seed=start)
        encoded = codec.encode(acts[start : start + batch], ctx)
        wire += codec.nbytes(encoded)
        decoded.append(codec.decode(encoded, ctx))
    approx = torch.cat(decoded)
    exact_grad = cut_gradient(top, acts, labels)
    residual = (acts - approx).flatten()
    bias = (exact_grad - cut_gradient(top, approx, labels)).flatten()
    best = float(residual @ bias / (residual @ residual)) if residual.any() else 0.0
    with torch.no_grad():
        agree = (top(approx).argmax(1) == top(acts).argmax(1)).float().mean()
    grad_norm = float(exact_grad.norm())
    return {
        "ratio": acts.numel() * acts.element_size() / wire,
        "relative_mse": float(residual.pow(2).mean() / acts.pow(2).mean()),
        "top1_agreement": float(agree),
        "best_lambda": best,
        "grad_error_lambda0": float(bias.norm()) / grad_norm,
        "grad_error_best_lambda": float((bias - best * residual).norm()) / grad_norm,
    }


def probe(args: argparse.Namespace) -> pd.DataFrame:
    """Train the fp32 model and probe every codec along the way; return one row per probe."""
    task = TaskConfig(task=args.task, cut=args.cut, seed=args.seed)
    bottom, top = build_model(task)
    train, _ = load_task_data(task)
    inputs, labels = torch.from_numpy(train.x), torch.from_numpy(train.y).long()
    rng = np.random.default_rng(args.seed)
    union = args.clients * args.batch
    probe_rows = torch.from_numpy(np.random.default_rng([args.seed, 1]).choice(len(labels), union))
    optimizer = torch.optim.Adam([*bottom.parameters(), *top.parameters()], lr=args.lr)
    rows = []
    for step in range(args.steps + 1):
        if step % args.probe_every == 0:
            with torch.no_grad():
                acts = bottom(inputs[probe_rows])
            for spec in args.spec or DEFAULT_SPECS:
                measured = probe_codec(spec, top, acts, labels[probe_rows], args.batch)
                rows.append({"step": step, "spec": spec, **measured})
                print(rows[-1], flush=True)
        if step < args.steps:
            batch_rows = torch.from_numpy(rng.choice(len(labels), union, replace=False))
            loss = nn.functional.cross_entropy(top(bottom(inputs[batch_rows])), labels[batch_rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path) -> None:
    """Relative MSE and the cut-gradient error at λ = 0 against the training step, per codec."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for spec, rows in frame.groupby("spec"):
        label = spec.removeprefix("fedlite:").replace(",precision=float16", "")
        axes[0].plot(rows["step"], rows["relative_mse"], marker="o", label=label)
        axes[1].plot(rows["step"], rows["grad_error_lambda0"], marker="o", label=label)
    axes[0].set(xlabel="fp32 training step", ylabel="|Z − Z̃|² / |Z|²", yscale="log")
    axes[1].set(xlabel="fp32 training step", ylabel="|∇φ(Z) − ∇φ(Z̃)| / |∇φ(Z)|")
    axes[0].legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the probe, write ``probe.csv``, ``probe.png`` and ``env.json``; return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", action="append", help="codec spec (repeatable)")
    parser.add_argument("--task", default="shakespeare")
    parser.add_argument("--cut", type=int, default=1)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--probe-every", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    frame = probe(args)
    out = output_dir("probe_fedlite", args.results)
    frame.to_csv(out / "probe.csv", index=False)
    plot(frame, out / "probe.png")
    write_env(out, **vars(args))
    print(f"wrote {out}")
    return frame


if __name__ == "__main__":
    main()
