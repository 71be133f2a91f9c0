"""Turn any bag-of-words corpus into validated chunks of contiguous int32 tokens.

A :class:`Chunk` is the unit of work everywhere: the serial sampler sweeps it, threads and
cluster workers hold and sweep disjoint sets of chunks, and the model is saved as chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, cast

import numpy as np
import scipy.sparse as sp

from distlda.params import _as_bow

#: Size limits, all checked against the sizes the input declares before anything of that
#: size is allocated (see :func:`iter_chunks` and :func:`distlda.gibbs.state.check_sizes`).
#: int32 counts (``nwk``, ``nk``) cap the tokens of a model, hence of a chunk, at this many.
MAX_TOKENS = int(np.iinfo(np.int32).max)
#: Documents of a model: as many as tokens (an empty document holds nothing to learn but
#: costs its offsets, so a reader's header claiming 10**12 of them is refused, not streamed).
MAX_DOCS = MAX_TOKENS
#: int32 word ids in the chunks cap the vocabulary at this many words.
MAX_TERMS = int(np.iinfo(np.int32).max)
#: Topics: every sampler thread keeps several float64[K] scratch rows and the cluster sends
#: topics as at most int32; past a million topics these costs dominate any corpus we can hold.
MAX_TOPICS = 1 << 20


@dataclass
class Chunk:
    """Documents as contiguous token arrays (see :mod:`distlda.gibbs.kernels`).

    Attributes
    ----------
    words : ndarray of shape (n_tokens,), int32
    topics : ndarray of shape (n_tokens,), int32
    doc_ptr : ndarray of shape (n_docs + 1,), int64
    width : int
        1 + the largest word id of the chunk's entries, zero counts included (0: not known),
        so that a word seen only with count 0 is still in the model's vocabulary.
    """

    words: np.ndarray
    doc_ptr: np.ndarray
    topics: np.ndarray = field(default=cast(np.ndarray, None))  # None: zeros (__post_init__)
    width: int = 0

    def __post_init__(self):
        if self.topics is None:
            self.topics = np.zeros(self.words.shape[0], np.int32)

    @property
    def num_tokens(self) -> int:
        return int(self.words.shape[0])

    @property
    def num_docs(self) -> int:
        return int(self.doc_ptr.shape[0] - 1)


def _check_counts(ids: np.ndarray, counts: np.ndarray, num_terms: int | None, where,
                  max_terms: int = MAX_TERMS) -> tuple:
    """Validate flat word-id / count arrays; ``where(i)`` names entry ``i`` in error messages.

    Ids and counts are compared with their limits before any cast, so a huge float or
    integer never wraps around.
    """
    if ids.shape != counts.shape:
        raise ValueError(f"{where(0)}: {ids.size} word ids but {counts.size} counts")
    if ids.size == 0:
        return ids.astype(np.int64), counts.astype(np.int64)
    for name, arr in (("word id", ids), ("count", counts)):
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"{where(0)}: {name}s must be numbers, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating):
            bad = ~np.isfinite(arr) | (arr != np.floor(arr))
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{where(i)}: {name} must be an integer, got {arr[i].item()!r}")
    bad = ids < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where(i)}: negative word id {ids[i].item()!r}")
    if num_terms is not None:
        bad = ids >= num_terms
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{where(i)}: word id {ids[i].item()!r} is out of range for a vocabulary "
                             f"of {num_terms} words (id2word / num_terms)")
    bad = ids >= max_terms
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where(i)}: word id {ids[i].item()!r} is beyond the limit of "
                         f"{max_terms} words ({_terms_reason(max_terms)}): renumber the "
                         f"vocabulary compactly (Dictionary.compactify) or filter it")
    bad = counts < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where(i)}: negative count {counts[i].item()!r}")
    bad = counts > MAX_TOKENS
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where(i)}: count {counts[i].item()!r} is more than the {MAX_TOKENS} "
                         f"tokens a model can hold (int32 counts): split the document or "
                         f"scale its counts down")
    return ids.astype(np.int64), counts.astype(np.int64)


def _terms_reason(max_terms: int) -> str:
    return ("word ids are int32" if max_terms >= MAX_TERMS
            else "the model's V x K int32 word-topic table must fit in this machine's memory")


def _check_budget(counts: np.ndarray, max_tokens: int, what: str) -> int:
    """Tokens the entries expand to, checked against ``max_tokens`` before expanding them."""
    total = int(counts.sum(dtype=np.int64))  # every count <= MAX_TOKENS: no overflow
    if total > max_tokens:
        raise ValueError(
            f"{what} {'holds' if what.startswith('document ') else 'hold'} {total} tokens, more than the {max_tokens} the model can still take "
            f"(it holds at most {MAX_TOKENS} tokens in all, int32 counts): train on fewer "
            f"documents, split very long documents, or train several models")
    return total


def _chunk_from_csr(indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> Chunk:
    """Expand CSR-like (doc offsets, word ids, counts) into one token per occurrence."""
    words = np.repeat(ids.astype(np.int32), counts)
    tok_per_entry = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    doc_ptr = tok_per_entry[indptr].astype(np.int64)
    return Chunk(words=words, doc_ptr=doc_ptr, width=int(ids.max()) + 1 if ids.size else 0)


class _Budget:
    """Tokens and documents a stream of chunks may still hold (counted down as chunks are
    built, checked before each is expanded)."""

    def __init__(self, max_tokens: int, max_docs: int = MAX_DOCS):
        self.left = int(max_tokens)
        self.docs_left = int(max_docs)

    def chunk(self, indptr, ids, counts, first: int) -> Chunk:
        n = indptr.shape[0] - 1
        if n > self.docs_left:
            raise ValueError(f"documents {first}..{first + n - 1}: more than the "
                             f"{self.docs_left + first} documents the model can take (it "
                             f"holds at most {MAX_DOCS}): train on fewer documents or several "
                             f"models")
        self.docs_left -= n
        what = f"document {first}" if n == 1 else f"documents {first}..{first + n - 1}"
        self.left -= _check_budget(counts, self.left, what)
        return _chunk_from_csr(indptr, ids, counts)


def _iter_csr_blocks(matrix: sp.spmatrix, chunksize: int, num_terms, first_doc: int = 0,
                     budget: _Budget | None = None, max_terms: int = MAX_TERMS):
    budget = budget or _Budget(MAX_TOKENS)
    X = sp.csr_matrix(matrix)
    if num_terms is not None and X.shape[1] > num_terms:
        # Columns beyond the vocabulary are only an error if they hold counts.
        tail = X[:, num_terms:]
        if tail.nnz and np.any(tail.data != 0):
            r, c = tail.nonzero()
            raise ValueError(f"document {first_doc + int(r[0])}: word id {num_terms + int(c[0])} "
                             f"is out of range for a vocabulary of {num_terms} words")
    for s in range(0, X.shape[0], chunksize):
        block = X[s:s + chunksize]
        block.sum_duplicates()
        d0 = first_doc + s
        ids, counts = _check_counts(
            block.indices, block.data, num_terms,
            lambda i, b=block, d0=d0: f"document {d0 + int(np.searchsorted(b.indptr, i, 'right')) - 1}",
            max_terms)
        yield budget.chunk(block.indptr, ids, counts, d0)


def declared_terms(corpus) -> int:
    """The vocabulary width a corpus declares before any token is read: the widest of a
    matrix's column count and a reader's ``num_terms`` (0: none declared)."""
    shape = getattr(corpus, "shape", None)
    width = int(shape[1]) if shape is not None and len(shape) == 2 else 0
    return max(width, int(getattr(corpus, "num_terms", 0) or 0))


def iter_chunks(corpus, num_terms: int | None, chunksize: int = 2000,
                max_tokens: int = MAX_TOKENS, max_terms: int = MAX_TERMS,
                max_docs: int = MAX_DOCS) -> Iterator[Chunk]:
    """Stream ``corpus`` once and yield validated :class:`Chunk` s of ``chunksize`` documents.

    Parameters
    ----------
    corpus : iterable of list of (int, int), or scipy.sparse matrix (documents x words)
        Any re-iterable bag-of-words corpus (every gensim corpus works); a document may also
        be a sparse row (1 x V) or a 1-D array of V counts, so a dense 2-D count array works. Objects with an
        ``iter_csr(chunksize)`` method (our :class:`~distlda.corpora.MmCorpus` and
        :class:`~distlda.corpora.UciCorpus`) are read through it, vectorised.
    num_terms : int or None
        Vocabulary size; word ids must lie in ``[0, num_terms)``. None accepts any id >= 0.
    chunksize : int
        Documents per chunk.
    max_tokens : int
        Tokens all the chunks together may hold (default :data:`MAX_TOKENS`); checked on each
        chunk's counts before they are expanded into tokens.
    max_terms : int
        Word ids must be below this (default :data:`MAX_TERMS`, int32 ids; the model passes
        the largest vocabulary whose word-topic table fits in memory).
    max_docs : int
        Documents all the chunks together may hold (default :data:`MAX_DOCS`).

    Raises
    ------
    ValueError
        A document that is not a list of (word_id, count) pairs, a negative, non-integer or
        out-of-range word id, a negative or non-integer count, more tokens than
        ``max_tokens``. The message names the document.
    TypeError
        ``corpus`` is not iterable (or is a string).
    """
    if isinstance(chunksize, bool) or not isinstance(chunksize, (int, np.integer)) or chunksize < 1:
        raise ValueError(f"chunksize must be an integer >= 1, got {chunksize!r}")
    budget = _Budget(max_tokens, max_docs)
    if sp.issparse(corpus):
        yield from _iter_csr_blocks(corpus, chunksize, num_terms, 0, budget, max_terms)
        return
    if hasattr(corpus, "iter_csr"):
        first = 0
        for block in corpus.iter_csr(chunksize):
            yield from _iter_csr_blocks(block, chunksize, num_terms, first, budget, max_terms)
            first += block.shape[0]
        return
    if isinstance(corpus, (str, bytes)) or not isinstance(corpus, Iterable):
        raise TypeError(f"corpus must be an iterable of bag-of-words documents or a scipy.sparse "
                        f"matrix, got {type(corpus).__name__}")
    yield from _iter_bow_chunks(corpus, num_terms, chunksize, budget, max_terms)


def _iter_bow_chunks(corpus, num_terms, chunksize, budget, max_terms):
    ids: list = []
    counts: list = []
    lens: list = []
    first = 0
    for d, doc in enumerate(corpus):
        if isinstance(doc, np.ndarray) or sp.issparse(doc):
            doc = _as_bow(doc, num_terms, f"document {d}")
        elif isinstance(doc, (list, tuple)) and doc and isinstance(doc[0], str):
            raise ValueError(f"document {d}: a list of words, not of (word_id, count) pairs: "
                             f"convert it with dictionary.doc2bow(tokens)")
        try:
            n = len(doc)
            if n:
                if not all(len(e) == 2 for e in doc):
                    raise ValueError
                i, c = zip(*doc)
                ids.extend(i)
                counts.extend(c)
        except (TypeError, ValueError):
            raise ValueError(f"document {d}: expected a list of (word_id, count) pairs, "
                             f"got {_preview(doc)}") from None
        lens.append(n)
        if len(lens) == chunksize:
            yield _bow_chunk(ids, counts, lens, num_terms, first, budget, max_terms)
            first += len(lens)
            ids, counts, lens = [], [], []
    if lens:
        yield _bow_chunk(ids, counts, lens, num_terms, first, budget, max_terms)


def _bow_chunk(ids, counts, lens, num_terms, first, budget, max_terms) -> Chunk:
    indptr = np.concatenate(([0], np.cumsum(lens, dtype=np.int64)))
    try:
        ids_a = np.asarray(ids)
        counts_a = np.asarray(counts)
    except (TypeError, ValueError) as e:
        raise ValueError(f"documents {first}..{first + len(lens) - 1}: word ids and counts must "
                         f"be numbers ({e})") from None
    ids_a, counts_a = _check_counts(
        ids_a, counts_a, num_terms,
        lambda i: f"document {first + int(np.searchsorted(indptr, i, 'right')) - 1}", max_terms)
    return budget.chunk(indptr, ids_a, counts_a, first)


def _preview(obj, n: int = 60) -> str:
    s = repr(obj)
    return s if len(s) <= n else s[:n] + "..."


def count_matrix(chunks, attr: str, width: int):
    """Documents x ``width`` CSR counts of ``chunk.<attr>`` ("words" or "topics") over the
    documents of ``chunks`` in order: entry (d, j) counts document d's tokens with value j."""
    import scipy.sparse as sp
    blocks = []
    for c in chunks:
        doc = np.repeat(np.arange(c.num_docs), np.diff(c.doc_ptr))
        blocks.append(sp.csr_matrix((np.ones(c.num_tokens, np.int64), (doc, getattr(c, attr))),
                                    shape=(c.num_docs, width)))
    if not blocks:
        return sp.csr_matrix((0, width), dtype=np.int64)
    return sp.vstack(blocks, format="csr")
