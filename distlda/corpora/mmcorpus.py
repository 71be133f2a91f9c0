"""Streaming reader (and writer) for corpora in Matrix Market format, as gensim writes them.

The file is a sparse document x word count matrix in Matrix Market *coordinate* format::

    %%MatrixMarket matrix coordinate real general
    % optional comment lines
    num_docs num_terms num_nnz
    doc_id word_id count            <- 1-based ids, sorted by doc_id
    ...

Paths go through ``smart_open``, so ``.gz``/``.bz2`` files and URIs such as ``s3://`` work.
"""

from __future__ import annotations

import numbers
import os
import shutil
import tempfile
from typing import BinaryIO, Iterable

import numpy as np
import smart_open

from ._triplets import CorpusFormatError, TripletCorpus, _to_int, open_binary, quote_line

__all__ = ["MmCorpus", "CorpusFormatError"]

_FIELDS = ("real", "integer", "double")


class MmCorpus(TripletCorpus):
    """A corpus stored in a Matrix Market file, streamed from disk on every iteration.

    Parameters
    ----------
    fname : str or os.PathLike
        Local path or smart_open URI of a ``%%MatrixMarket matrix coordinate real|integer
        general`` file with 1-based ``doc_id word_id count`` lines sorted by document
        (as written by gensim's ``MmCorpus.serialize`` and by :meth:`serialize`). Counts
        must be non-negative integers; ``2.0`` is accepted, ``2.5`` is an error.

    Attributes
    ----------
    fname : str
        The path or URI, as given.
    num_docs : int
        Number of documents, including documents without any entry in the file.
    num_terms : int
        Vocabulary size; word ids are ``0 .. num_terms - 1``.
    num_nnz : int
        Number of non-zero ``(doc, word)`` entries.

    Raises
    ------
    FileNotFoundError
        If a local ``fname`` does not exist.
    CorpusFormatError
        (a ``ValueError``) if the header is malformed; problems in the body are raised
        while iterating, with the line number.

    Examples
    --------
    >>> corpus = MmCorpus("debdesc.train.mm.gz")          # doctest: +SKIP
    >>> len(corpus), corpus.num_terms                       # doctest: +SKIP
    (56383, 17677)
    >>> next(iter(corpus))[:3]                              # doctest: +SKIP
    [(431, 1), (475, 1), (535, 2)]
    >>> for block in corpus.iter_csr(chunksize=4096):       # doctest: +SKIP
    ...     pass                                            # fast path: CSR blocks
    """

    def _read_header(self, f: BinaryIO) -> tuple[int, int, int, int]:
        line = f.readline()
        tokens = line.decode("latin-1").split()
        if not tokens or tokens[0].lower() != "%%matrixmarket":
            raise self._error(1, "not a Matrix Market file: expected a header like "
                                 "'%%MatrixMarket matrix coordinate real general', got "
                                 f"{quote_line(line)}")
        kind = [t.lower() for t in tokens[1:]]
        if (len(kind) != 4 or kind[0] != "matrix" or kind[1] != "coordinate"
                or kind[2] not in _FIELDS or kind[3] != "general"):
            raise self._error(1, "unsupported Matrix Market header: only 'matrix coordinate "
                                 f"real|integer general' is supported, got {quote_line(line)}")
        lineno = 1
        while True:
            line = f.readline()
            lineno += 1
            if not line:
                raise self._error(lineno, "truncated file: missing the size line "
                                          "'num_docs num_terms num_nnz'")
            if line.strip() and not line.lstrip().startswith(b"%"):
                break
        try:
            sizes = [int(x) for x in line.split()]
        except ValueError:
            sizes = []
        if len(sizes) != 3 or min(sizes) < 0:
            raise self._error(lineno, "malformed size line: expected three non-negative "
                                      f"integers 'num_docs num_terms num_nnz', got {quote_line(line)}")
        return sizes[0], sizes[1], sizes[2], lineno

    # ------------------------------------------------------------------ random access
    def __getitem__(self, docno):
        """Document ``docno`` as sorted (word_id, count) pairs, read from its byte offset.

        The first call streams the file once to build an index of where each document
        starts (as gensim's ``MmCorpus`` does; 16 bytes per document, kept on the object);
        each lookup then reads only that document's lines. On a compressed file a lookup
        decompresses up to its offset, so it costs time in proportion to the offset.

        Parameters
        ----------
        docno : int, slice, or sequence of int
            Negative ints count from the end. A slice or a sequence gives a list of
            documents.

        Raises
        ------
        IndexError
            ``docno`` out of ``[-num_docs, num_docs)``.
        TypeError
            ``docno`` is not an integer, slice or sequence of integers.
        CorpusFormatError
            The lines of the document (or the file while indexing) are malformed.
        """
        if isinstance(docno, slice):
            return [self[i] for i in range(*docno.indices(self.num_docs))]
        if isinstance(docno, (list, tuple, np.ndarray)):
            return [self[i] for i in np.asarray(docno).reshape(-1).tolist()]
        if isinstance(docno, bool) or not isinstance(docno, numbers.Integral):
            raise TypeError(f"MmCorpus indices must be integers, slices or sequences of integers, "
                            f"not {type(docno).__name__}")
        i = int(docno) + (self.num_docs if docno < 0 else 0)
        if not 0 <= i < self.num_docs:
            raise IndexError(f"document {docno} out of range for a corpus of {self.num_docs}")
        offsets, lines = self._doc_index()
        if offsets[i] < 0:
            return []
        first = f"{i + 1}".encode("ascii")
        with open_binary(self.fname) as f:
            f.seek(int(offsets[i]))
            body = []
            for line in f:
                fields = line.split(None, 1)
                if fields and fields[0].startswith(b"%"):
                    body.append(b"\n")  # a comment line: keep the line numbers right
                    continue
                if fields and fields[0] != first:
                    break
                body.append(line)
        entries = self._parse_block(b"".join(body), int(lines[i]), i + 1)
        merged: dict[int, int] = {}
        for w, c in zip((entries[:, 1] - 1).tolist(), entries[:, 2].tolist()):
            merged[w] = merged.get(w, 0) + c
        return sorted(merged.items())

    def _doc_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(byte offset, line number) of each document's first line; -1 for empty ones."""
        index = getattr(self, "_index", None)
        if index is not None:
            return index
        offsets = np.full(self.num_docs, -1, np.int64)
        lines = np.zeros(self.num_docs, np.int64)
        with open_binary(self.fname) as f:
            _, _, _, lineno = self._read_header(f)
            pos = f.tell()
            prev = 0
            for line in f:
                lineno += 1
                fields = line.split(None, 1)
                if fields and not fields[0].startswith(b"%"):
                    d = _to_int(fields[0])
                    if d is None or not 1 <= d <= self.num_docs or d < prev:
                        raise self._error(lineno, f"document id must be an integer in "
                                                  f"[{max(prev, 1)}, {self.num_docs}] (sorted), "
                                                  f"got {quote_line(line)}")
                    if d != prev:
                        offsets[d - 1], lines[d - 1], prev = pos, lineno, d
                pos += len(line)
        self._index = (offsets, lines)
        return self._index

    def __repr__(self) -> str:
        return (f"MmCorpus({self.fname!r}: {self.num_docs} documents, {self.num_terms} terms, "
                f"{self.num_nnz} non-zero entries)")

    @staticmethod
    def serialize(fname: str | os.PathLike, corpus: Iterable, num_terms: int | None = None) -> int:
        """Write a bag-of-words corpus to ``fname`` in Matrix Market format (gensim-readable).

        The corpus is streamed once; entries go to a local temporary file first because the
        header, which needs the totals, comes first and a compressed or remote target cannot
        be rewritten in place.

        Parameters
        ----------
        fname : str or os.PathLike
            Target path or smart_open URI (``.gz``/``.bz2`` compress).
        corpus : iterable of list of (int, int)
            Documents as ``(word_id, count)`` pairs with 0-based ids.
        num_terms : int, optional
            Vocabulary size written in the header; default ``1 + max word id``.

        Returns
        -------
        int
            Number of documents written.
        """
        num_docs = num_nnz = 0
        max_id = -1
        with tempfile.TemporaryFile("w+b") as body:
            for docno, doc in enumerate(corpus, start=1):
                num_docs = docno
                merged: dict[int, int] = {}
                for wid, cnt in doc:
                    merged[int(wid)] = merged.get(int(wid), 0) + cnt
                lines = []
                for wid in sorted(merged):
                    cnt = merged[wid]
                    if cnt != int(cnt) or cnt < 0:
                        raise ValueError(f"document {docno - 1}: count must be a non-negative "
                                         f"integer, got {cnt!r} for word {wid}")
                    if wid < 0:
                        raise ValueError(f"document {docno - 1}: negative word id {wid}")
                    lines.append(f"{docno} {wid + 1} {int(cnt)}\n")
                    max_id = max(max_id, wid)
                num_nnz += len(lines)
                body.write("".join(lines).encode("ascii"))
            if num_terms is None:
                num_terms = max_id + 1
            elif max_id >= num_terms:
                raise ValueError(f"word id {max_id} does not fit num_terms={num_terms}")
            body.seek(0)
            with smart_open.open(os.fspath(fname), "wb") as out:
                out.write(b"%%MatrixMarket matrix coordinate real general\n")
                out.write(f"{num_docs} {num_terms} {num_nnz}\n".encode("ascii"))
                shutil.copyfileobj(body, out, 1 << 20)
        return num_docs
