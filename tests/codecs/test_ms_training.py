"""Mask-encoded sparsification in training: split gradients (C10) and gradient error (C12)."""

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from flwr_split.codecs.bitpack import index_bits, packed_nbytes
from flwr_split.codecs.ms import MaskSparsification
from flwr_split.codecs.topk import TopK

# --- C10 ----------------------------------------------------------------------------------


def _split_step(client: nn.Module, server: nn.Module, x, y, codec) -> list[torch.Tensor]:
    """One split step with straight-through compression; return all parameter gradients."""
    client.zero_grad()
    server.zero_grad()
    z = client(x)
    z_hat = z.detach() if codec is None else codec.decode(codec.encode(z.detach()))
    z_hat.requires_grad_(True)
    F.cross_entropy(server(z_hat), y).backward()
    z.backward(z_hat.grad)
    return [p.grad.clone() for p in (*client.parameters(), *server.parameters())]


def _small_cnn(seed: int, channels: int = 4) -> tuple[nn.Module, nn.Module]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        client = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        server = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 5),
        )
    return client, server


def test_c10_client_gradient_is_jacobian_transpose_times_cut_gradient():
    client, server = _small_cnn(0)
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(4, 3, 6, 6, generator=gen), torch.randint(0, 5, (4,), generator=gen)
    codec = MaskSparsification(ratio=0.9, bits=2)
    z = client(x).detach()
    z_hat = codec.decode(codec.encode(z)).requires_grad_(True)
    F.cross_entropy(server(z_hat), y).backward()
    cut_grad = z_hat.grad.reshape(-1)
    grads = _split_step(client, server, x, y, codec)[:2]
    params = dict(client.named_parameters())
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(client, p, (x,)))(params)
    for (name, p), grad in zip(params.items(), grads, strict=True):
        jt_g = jac[name].reshape(z.numel(), p.numel()).T @ cut_grad
        torch.testing.assert_close(grad.reshape(-1), jt_g, rtol=1e-5, atol=1e-6)


def test_c10_lossless_split_gradients_equal_the_unsplit_model():
    client, server = _small_cnn(1)
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(8, 3, 6, 6, generator=gen), torch.randint(0, 5, (8,), generator=gen)
    split = _split_step(client, server, x, y, MaskSparsification(ratio=0.0, bits=2))
    whole = nn.Sequential(client, server)
    whole.zero_grad()
    F.cross_entropy(whole(x), y).backward()
    for got, p in zip(split, whole.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-6, atol=1e-7)


# --- C12 ----------------------------------------------------------------------------------


def test_c12_unbiased_rand_k_gives_biased_server_output():
    """C12 (Theorem 1): E[rand-k(z)] = z, but E[ReLU(W rand-k(z))] != ReLU(W z)."""
    gen = torch.Generator().manual_seed(7)
    d, k, draws = 64, 8, 20_000
    z = torch.relu(torch.randn(d, generator=gen, dtype=torch.float64))
    weight = torch.randn(16, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    picks = torch.rand(draws, d, generator=gen).argsort(dim=1)[:, :k]
    mask = torch.zeros(draws, d, dtype=torch.float64).scatter_(1, picks, 1.0)
    z_hat = mask * z * (d / k)
    # The compressor is unbiased (within 5 standard errors per entry) ...
    se = z_hat.std(dim=0) / math.sqrt(draws)
    assert bool(((z_hat.mean(dim=0) - z).abs() <= 5 * se + 1e-12).all())
    # ... but the server output after a ReLU is not.
    out = torch.relu(z_hat @ weight.T)
    bias = out.mean(dim=0) - torch.relu(weight @ z)
    out_se = out.std(dim=0) / math.sqrt(draws)
    assert float(bias.norm()) > 20 * float(out_se.norm())
    assert bool((bias >= -5 * out_se).all())  # Jensen: ReLU is convex


def test_c12_ms_gradient_error_is_below_topk_at_equal_wire_size():
    """C12: mean ||g_hat - g|| over 20 batches, MS(0.99, 2) < top-k with as many bytes."""
    client, server = _small_cnn(2, channels=16)
    gen = torch.Generator().manual_seed(8)
    ms = MaskSparsification(ratio=0.99, bits=2)
    probe = torch.rand(16, 16, 16, 16)
    budget = ms.nbytes(ms.encode(probe))
    # Top-k keeps as many values as fit in the same bytes (in its cheaper index format).
    n = probe.numel()
    index_bytes = min(packed_nbytes(index_bits(n), n // 10), packed_nbytes(1, n))
    keep = max(
        k
        for k in range(n // 10)
        if 4 * k + min(index_bytes, (k * index_bits(n) + 7) // 8) <= budget
    )
    topk = TopK(ratio=1 - keep / n)
    assert 0.99 * budget <= topk.nbytes(topk.encode(probe)) <= budget
    assert topk.keep_count(n) >= math.floor((1 - 0.95875) * n)  # at least the paper's SP
    errors = {"ms": [], "topk": []}
    for _ in range(20):
        x = torch.randn(16, 3, 16, 16, generator=gen)
        y = torch.randint(0, 5, (16,), generator=gen)
        exact = torch.cat([g.reshape(-1) for g in _split_step(client, server, x, y, None)])
        for name, codec in (("ms", ms), ("topk", topk)):
            grads = torch.cat([g.reshape(-1) for g in _split_step(client, server, x, y, codec)])
            errors[name].append(float((grads - exact).norm()))
    assert np.mean(errors["ms"]) < np.mean(errors["topk"])
    assert sum(m < t for m, t in zip(errors["ms"], errors["topk"], strict=True)) >= 15
