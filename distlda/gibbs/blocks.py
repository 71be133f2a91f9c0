"""Vocabulary blocks: the one layout that threads and cluster workers both sweep in.

A partitioned Gibbs schedule (Yan et al. 2009; LightLDA's model slices) cuts the vocabulary
into ``P`` blocks of about equal token mass and the chunks into ``P`` groups. In step ``s`` of
a sweep, group ``g`` resamples its tokens whose words lie in block ``(g + s) % P``
(:func:`block_of`): each word's row of the word-topic counts has one writer per step, and each
document's counts too. Blocks are word-id ranges (:func:`vocabulary_cuts`), and each
document's tokens are kept sorted by word id (:func:`sort_for_blocks`; order within a document
means nothing to LDA), so a block's tokens are one contiguous run per document
(:func:`block_ranges`): a kernel sweeps ``[lo[d], hi[d])`` of every document ``d``.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable, Protocol, Sequence

import numpy as np

from distlda.gibbs import kernels as K_
from distlda.gibbs.chunks import Chunk


def partition(sizes, parts: int) -> list[list[int]]:
    """Split item indices into ``parts`` groups of near-equal total size (greedy, largest first).

    Returns at most ``parts`` non-empty groups, each sorted.
    """
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += sizes[i]
    return [sorted(g) for g in groups if g]


def mass_ranges(ptr: np.ndarray, parts: int) -> np.ndarray:
    """Boundaries of ``parts`` contiguous item ranges of near-equal mass.

    Parameters
    ----------
    ptr : ndarray of shape (n + 1,)
        CSR offsets: item ``i`` weighs ``ptr[i + 1] - ptr[i]`` (e.g. a chunk's ``doc_ptr``).
    parts : int

    Returns
    -------
    ndarray of shape (parts + 1,), int64
        Range ``p`` is items ``cuts[p] <= i < cuts[p + 1]`` (some may be empty).
    """
    targets = np.linspace(0, ptr[-1], parts + 1)[1:-1]
    cuts = np.searchsorted(ptr, targets, side="left")
    return np.concatenate(([0], cuts, [ptr.shape[0] - 1])).astype(np.int64)


def word_frequencies(chunks, num_terms: int) -> np.ndarray:
    """Tokens per word over ``chunks``, int64[num_terms] (chunk by chunk: no concatenated copy)."""
    freq = np.zeros(num_terms, np.int64)
    for c in chunks:
        freq += np.bincount(c.words, minlength=num_terms)
    return freq


def vocabulary_cuts(freq: np.ndarray, parts: int) -> np.ndarray:
    """Word ids splitting the vocabulary into ``parts`` ranges of about equal token mass.

    Returns int32[parts + 1]: block ``b`` is the words ``cuts[b] <= w < cuts[b + 1]``.
    """
    cum = np.cumsum(freq)
    inner = np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts, side="right")
    return np.concatenate([[0], inner, [freq.shape[0]]]).astype(np.int32)


def sort_for_blocks(chunk: Chunk) -> None:
    """Order each document's tokens by word id, in place (topics move with their words)."""
    K_.sort_doc_tokens(chunk.words, chunk.topics, chunk.doc_ptr)


def split_chunk(chunk: Chunk, max_tokens: int) -> list[Chunk]:
    """``chunk`` cut at document boundaries into pieces of about ``max_tokens`` tokens or fewer
    (a longer document is a piece of its own). The pieces' ``words`` and ``topics`` are views
    of the chunk's, so resampling a piece changes the chunk; ``doc_ptr`` is rebased to 0."""
    ptr = chunk.doc_ptr
    D = ptr.shape[0] - 1
    pieces, a = [], 0
    while a < D:
        # the last document starting before the piece's token budget runs out
        b = int(np.searchsorted(ptr, ptr[a] + max_tokens, side="right")) - 1
        b = min(max(b, a + 1), D)
        lo, hi = int(ptr[a]), int(ptr[b])
        pieces.append(Chunk(chunk.words[lo:hi], ptr[a:b + 1] - lo, chunk.topics[lo:hi]))
        a = b
    return pieces


class Tokens(Protocol):
    """What the range helpers read of a chunk (a :class:`Chunk`, or a chunk message)."""

    @property
    def words(self) -> np.ndarray: ...

    @property
    def doc_ptr(self) -> np.ndarray: ...


def block_ranges(chunk: Tokens, cuts: np.ndarray) -> np.ndarray:
    """Token ranges of every block in every document of a sorted chunk.

    Returns int64[B + 1, D]: block ``b`` of document ``d`` is tokens ``[bp[b, d], bp[b + 1, d])``.
    """
    return K_.block_bounds(chunk.words, chunk.doc_ptr, cuts)


def whole_documents(chunk: Tokens) -> tuple[np.ndarray, np.ndarray]:
    """The token range ``(lo, hi)`` of each whole document (every token is resampled)."""
    return chunk.doc_ptr[:-1], chunk.doc_ptr[1:]


def block_of(group: int, step: int, parts: int) -> int:
    """The block group ``group`` resamples in step ``step`` of a sweep of ``parts`` steps."""
    return (int(group) + int(step)) % int(parts)


def sweep_steps(parts: int, nk: np.ndarray, pool: Executor | None,
                sweep_part: Callable[[int, int, np.ndarray], int | None]) -> int:
    """The partitioned schedule: ``parts`` steps, in step ``s`` ``sweep_part(p, s, nk_p)`` for
    every part ``p`` at once on ``pool``.

    Each call resamples part ``p``'s tokens of block :func:`block_of` ``(p, s, parts)`` on the
    shared counts (one writer per word row and per document), against its own copy ``nk_p`` of
    the topic totals taken at the start of the step; the copies' changes are added to ``nk``
    after the step, in part order (so the result does not depend on the threads' timing).

    Parameters
    ----------
    parts : int
        Parts, steps and blocks (>= 1; with 1, no pool is needed).
    nk : ndarray of shape (K,), int32
        Topic totals, updated in place.
    pool : concurrent.futures.Executor or None
        Runs the parts of a step (at least ``parts`` threads for them to run at once).
    sweep_part : callable
        ``(part, step, nk_p) -> moved``: resamples, updates ``nk_p`` in place, returns the
        tokens that changed topic (or None, counted as 0).

    Returns
    -------
    int
        The tokens that changed topic, summed over parts and steps.
    """
    moved = 0
    for step in range(parts):
        nk0 = nk.copy()

        def work(p, step=step, nk0=nk0):
            nk_p = nk0.copy()
            m = sweep_part(p, step, nk_p)
            return m, nk_p - nk0

        results = list(pool.map(work, range(parts))) if parts > 1 and pool is not None \
            else [work(p) for p in range(parts)]
        for m, delta in results:
            moved += int(m or 0)
            nk += delta
    return moved


def thread_layout(words: Sequence[np.ndarray], ranges: Sequence[tuple[np.ndarray, np.ndarray]],
                  num_rows: int, parts: int) -> tuple[list[list[tuple[int, int, int]]],
                                                      list[np.ndarray]]:
    """Cut a set of token ranges (a cluster job's) for :func:`sweep_steps` on ``parts``
    threads: the documents into ``parts`` contiguous groups of about equal token mass, the rows
    into ``parts`` blocks of about equal token mass (:func:`vocabulary_cuts` over the ranges'
    tokens), and each document's range into its ``parts`` block runs.

    Parameters
    ----------
    words : sequence of ndarray, int32
        Per chunk the row ids of its tokens, sorted within each document.
    ranges : sequence of (lo, hi)
        Per chunk, int64[D] token ranges to resample (one run per document).
    num_rows : int
        Rows of the counts (every word id is below it).
    parts : int
        Threads (>= 1).

    Returns
    -------
    groups : list of list of (chunk, a, b)
        Per part, its documents: ``a <= d < b`` of chunk ``chunk`` (index into ``words``).
    sub : list of ndarray of shape (parts + 1, D), int64
        Per chunk, block ``b`` of document ``d`` is tokens ``sub[b, d]:sub[b + 1, d]``.
    """
    freq = np.zeros(num_rows, np.int64)
    for w, (lo, hi) in zip(words, ranges):
        buf = np.empty(int((hi - lo).sum()), w.dtype)
        K_.gather_ranges(w, lo, hi, buf)
        freq += np.bincount(buf, minlength=num_rows)
    cuts = vocabulary_cuts(freq, parts) if num_rows else np.zeros(parts + 1, np.int32)
    sub = [K_.split_ranges(w, lo, hi, cuts) for w, (lo, hi) in zip(words, ranges)]
    sizes = np.concatenate([hi - lo for lo, hi in ranges] + [np.zeros(0, np.int64)])
    docs = mass_ranges(np.concatenate([[0], np.cumsum(sizes)]), parts)
    first = np.concatenate([[0], np.cumsum([lo.shape[0] for lo, _ in ranges])])
    groups: list[list[tuple[int, int, int]]] = []
    for p in range(parts):
        g = []
        for j in range(len(ranges)):
            a = max(int(docs[p]), int(first[j])) - int(first[j])
            b = min(int(docs[p + 1]), int(first[j + 1])) - int(first[j])
            if a < b:
                g.append((j, a, b))
        groups.append(g)
    return groups, sub
