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

from typing import Protocol

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
