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

from distlda.gibbs import kernels as K_
from distlda.gibbs.state import GibbsState, sweep_chunks


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
        try:
            for it in range(iterations):
                seeds = rng.integers(2 ** 32, size=len(state.chunks))
                if sampler == "sparse":
                    # Built once per run: the kernel keeps the word lists exact as it goes.
                    plan = plan or self._sparse_plan(state)
                    self._sweep_sparse(state, plan, seeds, pool)
                else:
                    self._sweep_mh(state, seeds, pool)
                on_sweep(it)
        finally:
            if pool is not None:
                pool.shutdown()

    def _sweep_mh(self, state: GibbsState, seeds: np.ndarray, pool) -> None:
        # WarpLDA's schedule: each phase split over the threads (documents, then words), on
        # the shared counts.
        from distlda.gibbs import mh as _mh
        chunks = state.chunks
        threads = len(partition([c.num_tokens for c in chunks], self.workers))
        if pool is None or threads == 1:
            sweep_chunks([c.words for c in chunks], [c.topics for c in chunks],
                         [c.doc_ptr for c in chunks], state.nwk, state.nk, state.alpha,
                         state.beta, state.vbeta, seeds, "mh", self.mh_steps)
            return
        _mh.sweep_chunks_mh([c.words for c in chunks], [c.topics for c in chunks],
                            [c.doc_ptr for c in chunks], state.nwk, state.nk, state.alpha,
                            state.beta, state.vbeta, seeds,
                            self.mh_steps or _mh.DEFAULT_MH_STEPS, pool=pool, threads=threads)

    def _sparse_plan(self, state: GibbsState):
        """Chunk groups, per-chunk block offsets and the shared word lists of a run."""
        groups = partition([c.num_tokens for c in state.chunks], self.workers)
        freq = np.zeros(state.num_terms, np.int64)  # chunk by chunk: no concatenated copy
        for c in state.chunks:
            freq += np.bincount(c.words, minlength=state.num_terms)
        blocks = self._block_layout(state, len(groups), freq)
        wt = K_.build_word_lists(state.nwk, freq)  # shared: rows are disjoint per thread
        return groups, blocks, wt

    def _sweep_sparse(self, state: GibbsState, plan, seeds: np.ndarray, pool) -> None:
        groups, blocks, wt = plan
        P = len(groups)
        for sub in range(P):
            nk0 = state.nk.copy()

            def work(p, sub=sub, nk0=nk0):
                b = (p + sub) % P
                nk = nk0.copy()
                for i in groups[p]:
                    c, bp = state.chunks[i], blocks[i]
                    seed = (int(seeds[i]) + sub * 0x9E3779B9) % 2 ** 32
                    K_.sweep_sparse(c.words, c.topics, c.doc_ptr, bp[b], bp[b + 1], state.nwk,
                                    nk, *wt, state.alpha, state.beta, state.vbeta, seed)
                return nk - nk0

            deltas = pool.map(work, range(P)) if P > 1 else [work(0)]
            for delta in deltas:
                state.nk += delta

    @staticmethod
    def _block_layout(state: GibbsState, P: int, freq: np.ndarray) -> list[np.ndarray]:
        """Per chunk, an int64 array ``(P+1, D)``: block b of document d is tokens
        ``[bp[b, d], bp[b+1, d])``. Tokens are reordered inside each document (order within a
        document means nothing to LDA) so that each block is one contiguous range; the P
        blocks of the vocabulary carry equal token mass (``freq``: tokens per word)."""
        if P == 1:
            return [np.stack([c.doc_ptr[:-1], c.doc_ptr[1:]]) for c in state.chunks]
        block_of_word = np.zeros(state.num_terms, np.int64)
        for b, words in enumerate(partition(freq.tolist(), P)):
            block_of_word[words] = b
        layout = []
        for c in state.chunks:
            D = c.num_docs
            doc_of_tok = np.repeat(np.arange(D), np.diff(c.doc_ptr))
            blk = block_of_word[c.words]
            order = np.lexsort((blk, doc_of_tok))
            c.words = np.ascontiguousarray(c.words[order])
            c.topics = np.ascontiguousarray(c.topics[order])
            counts = np.bincount(doc_of_tok * P + blk, minlength=D * P).reshape(D, P)
            bp = np.empty((P + 1, D), np.int64)
            bp[0] = c.doc_ptr[:-1]
            bp[1:] = c.doc_ptr[:-1] + np.cumsum(counts, axis=1).T
            layout.append(bp)
        return layout
