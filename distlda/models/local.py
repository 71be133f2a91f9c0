"""In-process executor: sweeps the chunks on this machine's cores (AD-LDA across threads).

With one thread the sweep runs directly on the global counts (plain collapsed Gibbs). With
several, each thread sweeps a disjoint set of chunks against its own copy of the counts taken
at the start of the sweep (Newman et al.'s approximate distributed LDA), and the new topics are
committed chunk by chunk afterwards, exactly as cluster workers' results are.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from distlda.models.state import GibbsState, sweep_chunks


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def partition(sizes, parts: int) -> list[list[int]]:
    """Split item indices into ``parts`` groups of near-equal total size (greedy, largest first)."""
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += sizes[i]
    return [sorted(g) for g in groups if g]


class LocalExecutor:
    """Runs Gibbs sweeps in this process with ``workers`` threads."""

    def __init__(self, workers: int = 1, sampler: str = "sparse"):
        self.workers = max(1, int(workers))
        self.sampler = sampler

    def describe(self) -> str:
        return f"serial ({self.workers} thread{'s' if self.workers > 1 else ''})"

    def run(self, state: GibbsState, iterations: int, rng: np.random.Generator,
            on_sweep: Callable[[int], None]) -> None:
        """Run ``iterations`` sweeps over all chunks, calling ``on_sweep(i)`` after each."""
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        try:
            for it in range(iterations):
                seeds = rng.integers(2 ** 32, size=len(state.chunks))
                self._sweep(state, seeds, pool)
                on_sweep(it)
        finally:
            if pool is not None:
                pool.shutdown()

    def _sweep(self, state: GibbsState, seeds: np.ndarray, pool) -> None:
        chunks = state.chunks
        groups = partition([c.num_tokens for c in chunks], self.workers)
        if pool is None or len(groups) == 1:
            sweep_chunks([c.words for c in chunks], [c.topics for c in chunks],
                         [c.doc_ptr for c in chunks], state.nwk, state.nk, state.alpha,
                         state.beta, state.vbeta, seeds, self.sampler)
            return
        nwk0, nk0 = state.nwk, state.nk

        def work(group):
            topics = [chunks[i].topics.copy() for i in group]
            sweep_chunks([chunks[i].words for i in group], topics,
                         [chunks[i].doc_ptr for i in group], nwk0.copy(), nk0.copy(),
                         state.alpha, state.beta, state.vbeta, seeds[group], self.sampler)
            return group, topics

        # Every thread has finished reading nwk0 before the first commit writes to it.
        results = list(pool.map(work, groups))
        for group, topics in results:
            for i, t in zip(group, topics):
                state.commit(i, t)
