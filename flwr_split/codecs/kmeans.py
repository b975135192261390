"""Batched k-means (Lloyd) in torch: many independent point sets fitted at once.

Every function works on a batch of ``G`` groups: points of shape ``(G, N, p)``
and codebooks of shape ``(G, L, p)``. Groups never mix; the work is vectorized
over them. Randomness comes only from the ``torch.Generator`` passed in, so the
same points and the same seeded generator give bit-identical results.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

INITS = ("random", "kmeans++")
"""Codebook initializations `fit_kmeans` knows."""

UPDATE_BLOCK = 2**20
"""Values of points per block in `update`: small temporaries, yet few torch calls (each call
on two threads may wait for a core that another process holds)."""

CHUNK_ELEMENTS = 2**22
"""Largest ``G * rows * L`` distance block computed at once (bounds memory)."""


def assign(points: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Return the index of the nearest codeword of every point, shape ``(G, N)``.

    Distances are squared Euclidean, computed as ``|c|^2 - 2 x.c`` (the
    ``|x|^2`` term does not change the minimum) in chunks of points; among
    equal distances the lowest index wins.

    Parameters
    ----------
    points : torch.Tensor
        ``(G, N, p)`` float tensor.
    codebooks : torch.Tensor
        ``(G, L, p)`` float tensor.

    Returns
    -------
    torch.Tensor
        ``int64`` codes in ``[0, L)``.
    """
    groups, count, _ = points.shape
    clusters = codebooks.shape[1]
    norms = codebooks.square().sum(dim=2).unsqueeze(1)
    rows = max(1, CHUNK_ELEMENTS // max(1, groups * clusters))
    transposed = codebooks.transpose(1, 2)
    if rows >= count:
        return torch.baddbmm(norms, points, transposed, beta=1.0, alpha=-2.0).min(dim=2).indices
    codes = torch.empty(groups, count, dtype=torch.int64)
    for start in range(0, count, rows):
        chunk = points[:, start : start + rows]
        scores = torch.baddbmm(norms, chunk, transposed, beta=1.0, alpha=-2.0)
        codes[:, start : start + rows] = scores.min(dim=2).indices
    return codes


def sse(points: torch.Tensor, codebooks: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Return the within-group sum of squared errors of an assignment, shape ``(G,)``."""
    return (points - reconstruct(codebooks, codes)).square().sum(dim=(1, 2))


def reconstruct(codebooks: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Return ``codebooks[g, codes[g, n]]`` for every point, shape ``(G, N, p)``."""
    groups, clusters, width = codebooks.shape
    rows = _flat_codes(codes, clusters)
    return (
        codebooks.reshape(groups * clusters, width).index_select(0, rows).reshape(groups, -1, width)
    )


def _flat_codes(codes: torch.Tensor, clusters: int) -> torch.Tensor:
    """Codes as row numbers of the ``(G * L, p)`` stack of all codebooks."""
    return (codes + _offsets(codes.shape[0], clusters)).reshape(-1)


def _offsets(groups: int, clusters: int) -> torch.Tensor:
    """First row of every group's codebook in the ``(G * L, p)`` stack, shape ``(G, 1)``."""
    return torch.arange(0, groups * clusters, clusters).unsqueeze(1)


def update(points: torch.Tensor, codebooks: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Move each codeword to the mean of its points; an empty cluster keeps its codeword.

    The mean is computed as ``c + mean(x - c)``, so a cluster whose points all
    equal its codeword keeps it bit for bit (the lossless limit of the spec).
    """
    width = codebooks.shape[2]
    flat_books = codebooks.reshape(-1, width)
    moved = _update_rows(
        points.reshape(-1, width), flat_books, _flat_codes(codes, codebooks.shape[1])
    )
    return moved.reshape(codebooks.shape)


def _update_rows(points: torch.Tensor, books: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`update` on flat ``(G N, p)`` points, ``(G L, p)`` codewords and codeword rows ``(G N,)``.

    The residuals are made block by block of points in one reused buffer and added with
    ``scatter_add_`` on an expanded index: torch sorts the rows stably and adds each
    codeword's residuals in point order in float32, as ``index_add_`` did row by row
    (bit for bit the same sums), without a kernel launch per point.
    """
    sums = torch.zeros_like(books)
    width = books.shape[1]
    step = max(1, UPDATE_BLOCK // max(width, 1))
    buffer = torch.empty(min(step, points.shape[0]), width, dtype=points.dtype)
    for start in range(0, points.shape[0], step):
        part = rows[start : start + step]
        residuals = buffer[: part.numel()]
        torch.index_select(books, 0, part, out=residuals)
        torch.sub(points[start : start + step], residuals, out=residuals)
        sums.scatter_add_(0, part.unsqueeze(1).expand(-1, width), residuals)
    counts = torch.bincount(rows, minlength=books.shape[0]).clamp_min_(1)
    return sums.div_(counts.unsqueeze(1)).add_(books)


def init_random(points: torch.Tensor, clusters: int, generator: torch.Generator) -> torch.Tensor:
    """Pick ``clusters`` distinct points per group as the initial codebooks.

    The points of each group are visited in a seeded random order and the first
    ``clusters`` distinct ones are taken: a uniform draw without replacement
    that skips repeats. A group with fewer distinct points takes all of them
    and repeats the last one.
    """
    groups, count, width = points.shape
    order = torch.stack([torch.randperm(count, generator=generator) for _ in range(groups)])
    head = torch.gather(points, 1, order[:, :clusters, None].expand(-1, -1, width))
    if head.shape[1] == clusters and _all_distinct(head):
        return head
    return torch.stack(
        [_first_distinct(group, rows, clusters) for group, rows in zip(points, order, strict=True)]
    )


def _all_distinct(codebooks: torch.Tensor) -> bool:
    """Whether no group holds the same codeword twice (``==`` on every value, so -0.0 == 0.0).

    Only codewords whose `_row_hashes` agree are compared value by value: equal
    codewords always hash alike, so the answer is exact whatever the hash; a
    good hash just leaves few pairs to compare (all ``L^2 p`` comparisons took
    7.6 ms for one 128 x 64 codebook, the hashes 0.05 ms).
    """
    hashes = _row_hashes(codebooks)
    same_hash = hashes.unsqueeze(2) == hashes.unsqueeze(1)
    same_hash.diagonal(dim1=1, dim2=2).fill_(False)
    group, first, second = same_hash.nonzero(as_tuple=True)
    if group.numel() == 0:
        return True
    equal = (codebooks[group, first] == codebooks[group, second]).all(dim=1)
    return not bool(equal.any())


def _row_hashes(codebooks: torch.Tensor) -> torch.Tensor:
    """Hash every ``(G, L, p)`` codeword to an ``int64``, shape ``(G, L)``.

    The bit patterns of the values as float32 (-0.0 turned into 0.0 first; equal
    values of any float dtype stay equal), each times a fixed weight below
    ``2**16``, summed: every term stays below ``2**47``, so sums of up to
    ``2**16`` values cannot overflow.
    """
    width = codebooks.shape[2]
    bits = (codebooks.float() + 0.0).view(torch.int32).to(torch.int64)
    weights = torch.randint(1, 2**16, (width,), generator=torch.Generator().manual_seed(0))
    return (bits * weights).sum(dim=2)


def _first_distinct(points: torch.Tensor, order: torch.Tensor, clusters: int) -> torch.Tensor:
    """Return the first ``clusters`` distinct rows of ``points[order]``, the last repeated if short.

    Only a prefix of ``order`` is deduplicated: it starts at ``2 * clusters``
    rows and doubles until it holds ``clusters`` distinct rows or all of
    ``order``. The first ``clusters`` distinct rows of such a prefix are those
    of the whole sequence, so the result does not depend on where it stopped.
    """
    size = 2 * clusters
    _, inverse = torch.unique(points[order[:size]], dim=0, return_inverse=True)
    while int(inverse.max()) + 1 < clusters and size < order.numel():
        size *= 2
        _, inverse = torch.unique(points[order[:size]], dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), inverse.numel(), dtype=torch.int64)
    first.scatter_reduce_(0, inverse, torch.arange(inverse.numel()), reduce="amin")
    chosen = first.sort().values[:clusters]
    chosen = torch.cat([chosen, chosen[-1:].expand(clusters - chosen.numel())])
    return points[order[chosen]]


def init_kmeanspp(points: torch.Tensor, clusters: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next codeword is a point drawn with probability ~ D^2.

    A group whose points all coincide with chosen codewords (fewer distinct
    points than ``clusters``) repeats its last codeword.
    """
    groups, count, _ = points.shape
    rows = torch.arange(groups)
    first = torch.randint(count, (groups,), generator=generator)
    chosen = [points[rows, first]]
    nearest = (points - chosen[0].unsqueeze(1)).square().sum(dim=2)
    for _ in range(1, clusters):
        weights = nearest.double()
        exhausted = weights.sum(dim=1) == 0
        pick = torch.multinomial(weights + exhausted.unsqueeze(1), 1, generator=generator)[:, 0]
        centre = torch.where(exhausted.unsqueeze(1), chosen[-1], points[rows, pick])
        chosen.append(centre)
        nearest = torch.minimum(nearest, (points - centre.unsqueeze(1)).square().sum(dim=2))
    return torch.stack(chosen, dim=1)


def fit_kmeans(
    points: torch.Tensor,
    clusters: int,
    iters: int,
    generator: torch.Generator,
    init: str = "random",
    cast: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit one codebook per group with at most ``iters`` Lloyd iterations.

    Iterating stops early once an iteration leaves every code unchanged (the
    codebooks are then the means of their clusters and would stay put).
    With ``cast``, the returned codebooks are ``cast`` of the fitted ones and
    the returned codes are assigned to them; the fit itself is unchanged.

    Parameters
    ----------
    points : torch.Tensor
        ``(G, N, p)`` float32 points, ``N >= 1``.
    clusters : int
        Codewords per codebook ``L``.
    iters : int
        Most Lloyd iterations (update, then assign); ``0`` keeps the initial codebooks.
    generator : torch.Generator
        Source of the initialization's randomness.
    init : {"random", "kmeans++"}
        Distinct random points (`init_random`) or k-means++ (`init_kmeanspp`).
    cast : callable, optional
        The codebooks as they will be used (e.g. rounded to float16). After
        the last iteration it comes before the assignment, which then serves
        both; after an early stop or with ``iters = 0`` it costs one more.

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        ``(codebooks (G, L, p), codes (G, N))``, the codes assigned to the
        final codebooks.
    """
    seeding = init_random if init == "random" else init_kmeanspp
    codebooks = seeding(points, clusters, generator)
    codes = assign(points, codebooks)
    groups, clusters, width = codebooks.shape
    flat_points = points.reshape(-1, width)
    offsets = _offsets(groups, clusters)
    for done in range(1, iters + 1):
        rows = (codes + offsets).view(-1)
        codebooks = _update_rows(flat_points, codebooks.view(-1, width), rows).view(codebooks.shape)
        if done == iters and cast is not None:
            break  # the cast codewords get the final assignment below
        previous, codes = codes, assign(points, codebooks)
        if torch.equal(previous, codes):
            break
    if cast is None:
        return codebooks, codes
    codebooks = cast(codebooks)
    return codebooks, assign(points, codebooks)
