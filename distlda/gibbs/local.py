"""In-process executor: sweeps the chunks on this machine's cores.

With the exact samplers (sparse and dense), threads follow a partitioned schedule (as tomotopy's and
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
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Callable

import numpy as np

from distlda.gibbs import blocks, sampling
from distlda.gibbs import kernels as K_
from distlda.gibbs import mh as _mh
from distlda.gibbs.blocks import partition
from distlda.gibbs.state import GibbsState

__all__ = ["LocalExecutor", "available_cores", "partition", "sweep_threads"]

#: Added to a chunk's seed once per work unit before it in the chunk (an odd 32-bit constant).
UNIT_SEED = 0x632BE59B


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def sweep_threads(tokens: sampling.Tokens, nwk: np.ndarray, nk: np.ndarray,
                  prior: sampling.Prior, options: sampling.Options, seeds, pool: Executor,
                  threads: int) -> int:
    """:func:`distlda.gibbs.sampling.sweep` of an exact sampler on ``threads`` threads: the
    partitioned schedule inside ``tokens.ranges`` (what a cluster worker's job runs).

    The documents are cut into ``threads`` contiguous groups and the rows into ``threads``
    blocks, both of equal token mass (:func:`distlda.gibbs.blocks.thread_layout`); in step
    ``s`` thread ``p`` resamples its group's tokens of block ``(p + s) % threads`` on the
    shared counts (one writer a row and a document: the sparse word lists, per row, are shared
    too) with its own copy of ``nk`` (:func:`distlda.gibbs.blocks.sweep_steps`). Chunk ``j``'s
    tokens in thread ``p`` of step ``s`` are drawn from seed ``step_seeds(seeds, s)[j] + p *
    UNIT_SEED`` (mod 2**32): the chain depends on the seeds and ``threads`` only.

    Parameters
    ----------
    tokens : Tokens
        Chunks sorted by word id in each document; ``ranges`` the token runs to resample (None:
        whole documents).
    nwk : ndarray of shape (rows, K), int32
    nk : ndarray of shape (K,), int32
        Updated in place, exactly.
    prior : Prior
    options : SparseOptions or DenseOptions
    seeds : sequence of int
        One per chunk.
    pool : concurrent.futures.Executor
        With at least ``threads`` threads.
    threads : int

    Returns
    -------
    int
        Tokens whose topic changed.

    Raises
    ------
    TypeError
        For MH options (it splits its own phases: :class:`~distlda.gibbs.sampling.MhOptions`).
    """
    if not isinstance(options, (sampling.SparseOptions, sampling.DenseOptions)):
        raise TypeError(f"sweep_threads runs the exact samplers, not {options!r}")
    ranges = (tokens.ranges if tokens.ranges is not None
              else [(p[:-1], p[1:]) for p in tokens.doc_ptr])  # whole documents
    groups, sub = blocks.thread_layout(tokens.words, ranges, nwk.shape[0], threads)

    def part(p: int, step: int, nk_p: np.ndarray):
        b = blocks.block_of(p, step, threads)
        step_seeds = sampling.step_seeds(seeds, step)
        g = groups[p]
        piece = sampling.Tokens(
            [tokens.words[j] for j, _, _ in g], [tokens.topics[j] for j, _, _ in g],
            [tokens.doc_ptr[j][a:e + 1] for j, a, e in g],  # not rebased: absolute tokens
            [(sub[j][b][a:e], sub[j][b + 1][a:e]) for j, a, e in g])
        return sampling.sweep(piece, nwk, nk_p, prior, options,
                              [(int(step_seeds[j]) + p * UNIT_SEED) % 2 ** 32 for j, _, _ in g])

    return blocks.sweep_steps(threads, nk, pool, part)


class LocalExecutor:
    """Runs Gibbs sweeps in this process with ``workers`` threads.

    Parameters
    ----------
    workers : int
    sampler : str
    mh_steps : int, optional
    workspace : distlda.gibbs.mh.Workspace, optional
        The MH sampler's memory. None: a new one each :meth:`run` (so a run's first sweep
        draws fresh proposals); whoever trains the same chunks in several runs and wants them
        to chain exactly as one long run passes the one it keeps (one run at a time).
    """

    def __init__(self, workers: int = 1, sampler: str = "sparse", mh_steps: int | None = None,
                 workspace: _mh.Workspace | None = None):
        self.workers = max(1, int(workers))
        self.sampler = sampler
        self.mh_steps = mh_steps
        self.workspace = workspace

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
        # The MH sampler's memory: this run's alone unless given (rebuilt if the chunks change).
        workspace = self.workspace if self.workspace is not None else _mh.Workspace()
        try:
            for it in range(iterations):
                seeds = rng.integers(2 ** 32, size=len(state.chunks))
                if sampler in sampling.EXACT:
                    # Built once per run: the kernel keeps the word lists exact as it goes.
                    plan = plan or self._exact_plan(state, sampler)
                    self._sweep_exact(state, plan, sampler, seeds, pool)
                    sampling.report_fallbacks(self._fallbacks, f"sweep {it + 1}")
                else:
                    self._sweep_mh(state, seeds, pool, workspace)
                on_sweep(it)
        finally:
            if pool is not None:
                pool.shutdown()

    def _sweep_mh(self, state: GibbsState, seeds: np.ndarray, pool,
                  workspace: _mh.Workspace) -> None:
        # WarpLDA's schedule: each phase split over the threads (documents, then words), on
        # the shared counts; swept from this thread only, so the workspace is never shared.
        chunks = state.chunks
        threads = len(partition([c.num_tokens for c in chunks], self.workers))
        options = sampling.MhOptions(self.mh_steps, workspace,
                                     pool if threads > 1 else None, threads)
        sampling.sweep(sampling.Tokens.of(chunks), state.nwk, state.nk,
                       sampling.Prior.of(state), options, seeds)

    def _exact_plan(self, state: GibbsState, sampler: str):
        """Work units, their groups, per-unit block ranges and the shared word lists of a run.

        One thread: the units are the chunks (so a one-worker cluster runs the same chain).
        Several: the chunks are cut at document boundaries into units of about 1/8 of a
        thread's share, so that P groups of equal token mass exist however few and uneven the
        chunks are (2 chunks of 2000 and 147 long documents left one thread idle 90% of a
        sweep); units are views, so sweeping them updates the chunks' topics in place. The
        vocabulary is cut into P blocks (:mod:`distlda.gibbs.blocks`, the layout cluster
        workers use too); each chunk's tokens are sorted by word id in each document so that
        a block is one token run per document.
        """
        freq = blocks.word_frequencies(state.chunks, state.num_terms)
        if self.workers == 1 or len(state.chunks) == 0:
            units = [(i, 0, c) for i, c in enumerate(state.chunks)]
        else:
            for c in state.chunks:
                blocks.sort_for_blocks(c)
            size = max(1, state.num_tokens // (8 * self.workers))
            units = [(i, j, u) for i, c in enumerate(state.chunks)
                     for j, u in enumerate(blocks.split_chunk(c, size))]
        groups = partition([u.num_tokens for _, _, u in units], self.workers)
        P = len(groups)
        if P == 1:
            layout = [np.stack(blocks.whole_documents(u)) for _, _, u in units]
        else:
            cuts = blocks.vocabulary_cuts(freq, P)
            layout = [blocks.block_ranges(u, cuts) for _, _, u in units]
        # shared: rows are disjoint per thread (the dense and non-uniform kernels need none)
        wt = (K_.build_word_lists(state.nwk, freq)
              if sampler == "sparse" and state.eta_kw is None else None)
        return units, groups, layout, wt

    def _sweep_exact(self, state: GibbsState, plan, sampler: str, seeds: np.ndarray,
                     pool) -> None:
        units, groups, layout, wt = plan
        P = len(groups)
        prior = sampling.Prior.of(state)
        options = (sampling.SparseOptions(wt, self._fallbacks) if sampler == "sparse"
                   else sampling.DenseOptions(self._fallbacks))

        def part(p, sub, nk):
            b = blocks.block_of(p, sub, P)
            chunk_seeds = sampling.step_seeds(seeds, sub)
            # a unit's seed: its chunk's, moved on by the unit's place in the chunk
            unit_seeds = [(int(chunk_seeds[units[g][0]]) + units[g][1] * UNIT_SEED) % 2 ** 32
                          for g in groups[p]]
            tokens = sampling.Tokens.of(
                [units[g][2] for g in groups[p]],
                [(layout[g][b], layout[g][b + 1]) for g in groups[p]])
            return sampling.sweep(tokens, state.nwk, nk, prior, options, unit_seeds)

        blocks.sweep_steps(P, state.nk, pool, part)
