"""Codec passes run on `torch.get_num_threads` threads, in contiguous shares.

numpy's ufuncs, reductions, ``take`` and ``nonzero`` release the GIL while they loop, so
block passes over disjoint parts of a large array run side by side in a thread pool. Each
task writes its own part of the result (or returns it, collected in order), so the output
does not depend on the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import pairwise

import torch

MIN_SHARE = 2**18
"""Fewest values per thread: below this a pool hand-off (~0.1 ms) costs more than it saves."""


@cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """Return a pool of ``workers`` threads, made once per size and process.

    Keyed by the process id: a forked child inherits the cache but not the threads.
    """
    return ThreadPoolExecutor(workers, thread_name_prefix="codecs")


def run_all(tasks: list[tuple]) -> list:
    """Run each ``(function, *args)`` of ``tasks``; on `torch.get_num_threads` threads if > 1.

    Each thread runs one contiguous share of the tasks (one hand-off per thread, not per
    task); the calling thread runs the last share itself. Returns the results in order.
    """
    workers = min(torch.get_num_threads(), len(tasks))
    if workers < 2:
        return _run(tasks)
    shares = [
        tasks[i * len(tasks) // workers : (i + 1) * len(tasks) // workers] for i in range(workers)
    ]
    pending = [_pool(workers - 1, os.getpid()).submit(_run, share) for share in shares[:-1]]
    last = _run(shares[-1])
    return [result for done in pending for result in done.result()] + last


def _run(tasks: list[tuple]) -> list:
    return [function(*args) for function, *args in tasks]


def spans(count: int, unit: int) -> list[tuple[int, int]]:
    """Cut ``range(count)`` into one ``(start, stop)`` per thread, starts multiples of ``unit``.

    As many spans as `torch.get_num_threads` allows with at least `MIN_SHARE` values each
    (one span for a small ``count``); empty spans are left out.
    """
    workers = max(1, min(torch.get_num_threads(), count // MIN_SHARE))
    units = -(-count // unit)
    cuts = [min(count, (i * units // workers) * unit) for i in range(workers + 1)]
    return [(start, stop) for start, stop in pairwise(cuts) if stop > start]
