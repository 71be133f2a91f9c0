"""In-process executor: sweeps the chunks on this machine's cores.

With the exact sparse sampler, threads follow a partitioned schedule (as tomotopy's and
Yan et al.'s parallel Gibbs samplers do): the vocabulary is split into P blocks of equal token
mass and the chunks into P groups; in sub-epoch s, thread p resamples the tokens of its chunk
group whose words lie in block (p + s) mod P. Each word's counts and each document's counts
then have exactly one writer at a time, so threads update the global counts in place with no
copies and no stale word counts; only the K topic totals are per-thread during a sub-epoch and
are merged after it. The result mixes per sweep like a serial sampler.

The Metropolis-Hastings sampler has phases that visit tokens document by document, then word
by word; with several threads each phase is split (WarpLDA's schedule): thread p owns a range
of documents in the doc phase and a range of words in the word phase, again on the shared
counts with per-thread topic totals (see :func:`distlda.gibbs.mh.sweep_chunks_mh`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from distlda.gibbs import blocks, sampling
from distlda.gibbs import kernels as K_
from distlda.gibbs.blocks import partition
from distlda.gibbs.state import GibbsState

__all__ = ["LocalExecutor", "available_cores", "partition"]


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """Runs Gibbs sweeps in this process with ``workers`` threads."""

    def __init__(self, workers: int = 1, sampler: str = "sparse", mh_steps: int | None = None):
        self.workers = max(1, int(workers))
        self.sampler = sampler
        self.mh_steps = mh_steps

    def describe(self) -> str:
        return (f"serial, {self.workers} thread{'s' if self.workers > 1 else ''}, "
                f"{self.sampler} sampler")

    def run(self, state: GibbsState, iterations: int, rng: np.random.Generator,
            on_sweep: Callable[[int], None]) -> None:
        """Run ``iterations`` sweeps over all chunks, calling ``on_sweep(i)`` after each."""
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        sampler = state.resolve_sampler(self.sampler)
        plan = None
        self._fallbacks = np.zeros(1, np.int64) if sampling.check_mode() else None
        try:
            for it in range(iterations):
                seeds = rng.integers(2 ** 32, size=len(state.chunks))
                if sampler == "sparse":
                    # Built once per run: the kernel keeps the word lists exact as it goes.
                    plan = plan or self._sparse_plan(state)
                    self._sweep_sparse(state, plan, seeds, pool)
                    sampling.report_fallbacks(self._fallbacks, f"sweep {it + 1}")
                else:
                    self._sweep_mh(state, seeds, pool)
                on_sweep(it)
        finally:
            if pool is not None:
                pool.shutdown()

    def _sweep_mh(self, state: GibbsState, seeds: np.ndarray, pool) -> None:
        # WarpLDA's schedule: each phase split over the threads (documents, then words), on
        # the shared counts.
        chunks = state.chunks
        threads = len(partition([c.num_tokens for c in chunks], self.workers))
        sampling.sweep([c.words for c in chunks], [c.topics for c in chunks],
                       [c.doc_ptr for c in chunks], state.nwk, state.nk, state.alpha,
                       state.beta, state.vbeta, seeds, "mh", self.mh_steps,
                       pool=pool if threads > 1 else None, threads=threads)

    def _sparse_plan(self, state: GibbsState):
        """Chunk groups, per-chunk block ranges and the shared word lists of a run.

        With P groups the vocabulary is cut into P blocks (:mod:`distlda.gibbs.blocks`, the
        layout cluster workers use too); each chunk's tokens are sorted by word id in each
        document so that a block is one token run per document.
        """
        groups = partition([c.num_tokens for c in state.chunks], self.workers)
        P = len(groups)
        freq = blocks.word_frequencies(state.chunks, state.num_terms)
        if P == 1:
            layout = [np.stack(blocks.whole_documents(c)) for c in state.chunks]
        else:
            cuts = blocks.vocabulary_cuts(freq, P)
            for c in state.chunks:
                blocks.sort_for_blocks(c)
            layout = [blocks.block_ranges(c, cuts) for c in state.chunks]
        # shared: rows are disjoint per thread (a non-uniform prior's kernel needs none)
        wt = K_.build_word_lists(state.nwk, freq) if state.eta_kw is None else None
        return groups, layout, wt

    def _sweep_sparse(self, state: GibbsState, plan, seeds: np.ndarray, pool) -> None:
        groups, layout, wt = plan
        P = len(groups)
        for sub in range(P):
            nk0 = state.nk.copy()
            sub_seeds = sampling.step_seeds(seeds, sub)

            def work(p, sub=sub, nk0=nk0, sub_seeds=sub_seeds):
                b = blocks.block_of(p, sub, P)
                nk = nk0.copy()
                chunks = [state.chunks[i] for i in groups[p]]
                sampling.sweep([c.words for c in chunks], [c.topics for c in chunks],
                               [c.doc_ptr for c in chunks], state.nwk, nk, state.alpha,
                               state.beta, state.vbeta, sub_seeds[groups[p]],
                               ranges=[(layout[i][b], layout[i][b + 1]) for i in groups[p]],
                               word_lists=wt, fallbacks=self._fallbacks,
                               eta_kw=state.eta_kw, eta_sum=state.eta_sum)
                return nk - nk0

            deltas = pool.map(work, range(P)) if P > 1 else [work(0)]
            for delta in deltas:
                state.nk += delta
