"""One-thread execution for the figures' many small float64 computations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["one_thread"]


@contextlib.contextmanager
def one_thread(*, fork_rng: bool = False) -> Iterator[None]:
    """Torch and BLAS on one thread (restored on exit); optionally fork torch's global RNG.

    Small float64 matrices gain nothing from threads, and on a loaded 2-core machine competing
    threads make them many times slower (measured: 0.5 s vs 41 s for one figure's training).
    ``fork_rng=True`` also restores torch's global RNG state on exit, so code that draws from it
    (e.g. module initialisation) leaves no trace.
    """
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"), contextlib.ExitStack() as stack:
            if fork_rng:
                stack.enter_context(torch.random.fork_rng(devices=[]))
            yield
    finally:
        torch.set_num_threads(before)
