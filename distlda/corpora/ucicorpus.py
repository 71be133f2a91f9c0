"""Streaming reader for corpora in the UCI bag-of-words format.

The UCI Machine Learning Repository's "Bag of Words" data sets (NIPS, NYTimes, PubMed, ...)
come as ``docword.NAME.txt[.gz]``::

    D                   <- number of documents
    W                   <- vocabulary size
    NNZ                 <- number of docID wordID count lines that follow
    docID wordID count  <- 1-based ids, sorted by docID
    ...

plus ``vocab.NAME.txt`` with one word per line (line ``i`` holds word id ``i``, 1-based).
"""

from __future__ import annotations

import os
import re
from typing import BinaryIO

from ._triplets import CorpusFormatError, TripletCorpus, quote_line
from .dictionary import Dictionary

__all__ = ["UciCorpus", "CorpusFormatError"]

_DOCWORD_RE = re.compile(r"^docword\.(?P<name>.+)\.txt(?:\.gz|\.bz2)?$")


class UciCorpus(TripletCorpus):
    """A corpus in UCI bag-of-words format, streamed from disk on every iteration.

    Parameters
    ----------
    fname : str or os.PathLike
        Path or smart_open URI of ``docword.NAME.txt`` (``.gz``/``.bz2`` are decompressed).
    fname_vocab : str or os.PathLike, optional
        Path or URI of the vocabulary (one word per line). If not given and ``fname`` is a
        local ``docword.NAME.txt[.gz|.bz2]``, a sibling ``vocab.NAME.txt`` (or
        ``vocab.NAME.txt.gz``) is used when it exists; otherwise ``id2word`` is None.

    Attributes
    ----------
    fname : str
    num_docs : int
        Number of documents (``D``), including documents without entries.
    num_terms : int
        Vocabulary size (``W``); word ids are ``0 .. num_terms - 1``.
    num_nnz : int
        Number of entries (``NNZ``).
    id2word : Dictionary or None
        The vocabulary, word id ``i`` = line ``i + 1`` of the vocabulary file.
    fname_vocab : str or None
        The vocabulary file used, if any.

    Raises
    ------
    FileNotFoundError
        If ``fname`` or an explicitly given ``fname_vocab`` does not exist.
    CorpusFormatError
        (a ``ValueError``) if the header is malformed or the vocabulary size differs from
        ``W``; problems in the body are raised while iterating, with the line number.

    Examples
    --------
    >>> corpus = UciCorpus("docword.nips.txt.gz")          # doctest: +SKIP
    >>> corpus.num_docs, len(corpus.id2word)                # doctest: +SKIP
    (1500, 12419)
    """

    def __init__(self, fname: str | os.PathLike, fname_vocab: str | os.PathLike | None = None):
        super().__init__(fname)
        if fname_vocab is None:
            fname_vocab = _sibling_vocab(self.fname)
        self.fname_vocab = None if fname_vocab is None else os.fspath(fname_vocab)
        self.id2word = None
        if self.fname_vocab is not None:
            self.id2word = Dictionary.from_vocab_file(self.fname_vocab)
            if len(self.id2word) != self.num_terms:
                raise CorpusFormatError(
                    f"{self.fname_vocab}: vocabulary has {len(self.id2word)} words but "
                    f"{self.fname} declares W={self.num_terms}")
            self.id2word.num_docs = self.num_docs

    def _read_header(self, f: BinaryIO) -> tuple[int, int, int, int]:
        sizes = []
        for lineno, what in enumerate(("D (number of documents)", "W (vocabulary size)",
                                       "NNZ (number of entries)"), start=1):
            line = f.readline()
            if not line:
                raise self._error(lineno, f"truncated header: missing {what}")
            try:
                value = int(line)
            except ValueError:
                value = -1
            if value < 0:
                raise self._error(lineno, f"malformed header: expected {what} as a single "
                                          f"non-negative integer, got {quote_line(line)}")
            sizes.append(value)
        return sizes[0], sizes[1], sizes[2], 3

    def __repr__(self) -> str:
        return (f"UciCorpus({self.fname!r}: {self.num_docs} documents, {self.num_terms} terms, "
                f"{self.num_nnz} non-zero entries)")


def _sibling_vocab(fname: str) -> str | None:
    """``dir/vocab.NAME.txt[.gz]`` next to a local ``dir/docword.NAME.txt[.gz|.bz2]``, if any."""
    if "://" in fname:
        return None
    folder, base = os.path.split(fname)
    m = _DOCWORD_RE.match(base)
    if not m:
        return None
    for ext in ("", ".gz", ".bz2"):
        cand = os.path.join(folder, f"vocab.{m.group('name')}.txt{ext}")
        if os.path.isfile(cand):
            return cand
    return None
