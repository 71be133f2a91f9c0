"""Streaming parser shared by the Matrix Market and UCI bag-of-words readers.

Both formats are a small header followed by one ``doc word count`` triplet per line
(1-based ids, sorted by document). This module turns the triplet body into
``scipy.sparse.csr_matrix`` blocks of consecutive documents, parsing the text in big
batches with :func:`numpy.loadtxt` (C-implemented, strict: it rejects a line with the
wrong number of fields or a non-numeric token) and validating whole batches with
vectorised checks. Only when a batch fails a check is it re-read line by line in Python,
to name the exact file line and problem in the error.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import warnings
import zlib
from typing import BinaryIO, Iterator

import numpy as np
import scipy.sparse as sp
import smart_open

from distlda.errors import CorpusFormatError

__all__ = ["CorpusFormatError", "TripletCorpus", "open_binary", "quote_line"]

# Text bytes handed to one loadtxt call: large enough to amortise the per-call overhead,
# small enough that a batch plus its parsed arrays stays around a few tens of MB.
BLOCK_BYTES = 1 << 22
# Python's float is exact for integers below 2**53; larger "integral floats" are refused.
_MAX_EXACT_FLOAT = float(2**53)


def _is_uri(path: str) -> bool:
    return "://" in path


def open_binary(fname: str | os.PathLike) -> BinaryIO:
    """Open ``fname`` for binary reading through ``smart_open``.

    Compression is chosen from the extension (``.gz``, ``.bz2``, ...); any URI smart_open
    understands (``s3://``, ``https://``, ...) works. A missing local file raises
    :class:`FileNotFoundError` naming the path.
    """
    path = os.fspath(fname)
    if not _is_uri(path) and not os.path.isfile(path):
        # Checked up front so the error names the path even for compressed files.
        raise FileNotFoundError(errno.ENOENT, "corpus file not found", path)
    return smart_open.open(path, "rb")


def check_chunksize(chunksize) -> int:
    """A reader's ``chunksize`` (documents per block) as an int; ValueError naming it."""
    if isinstance(chunksize, bool) or int(chunksize) != chunksize or chunksize < 1:
        raise ValueError(f"Invalid 'chunksize' parameter: {chunksize!r} (must be a positive int)")
    return int(chunksize)


def _to_int(field: bytes) -> int | None:
    """Parse an integer literal, also accepting an integral float such as ``2.0``."""
    try:
        return int(field)
    except ValueError:
        pass
    try:
        x = float(field)
    except ValueError:
        return None
    if x.is_integer() and abs(x) < _MAX_EXACT_FLOAT:
        return int(x)
    return None


class TripletCorpus:
    """Base class of the readers: a header plus sorted 1-based ``doc word count`` lines.

    Subclasses implement :meth:`_read_header`, which reads the header from an open binary
    file and returns ``(num_docs, num_terms, num_nnz, header_lines)``.

    Attributes
    ----------
    fname : str
        The path or URI, as given.
    num_docs : int
        Number of documents (rows), including documents without entries.
    num_terms : int
        Vocabulary size (columns); word ids are ``0 .. num_terms - 1``.
    num_nnz : int
        Number of ``doc word count`` entries declared by the header.
    """

    def __init__(self, fname: str | os.PathLike):
        self.fname = os.fspath(fname)
        with open_binary(self.fname) as f:
            self.num_docs, self.num_terms, self.num_nnz, _ = self._read_header_checked(f)

    # ------------------------------------------------------------------ header
    def _read_header(self, f: BinaryIO) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def _read_header_checked(self, f: BinaryIO) -> tuple[int, int, int, int]:
        try:
            return self._read_header(f)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise CorpusFormatError(f"{self.fname}: corrupt or truncated compressed file ({e})") from e

    def _error(self, lineno: int, msg: str) -> CorpusFormatError:
        return CorpusFormatError(f"{self.fname} line {lineno}: {msg}")

    # ------------------------------------------------------------------ public API
    def __len__(self) -> int:
        return self.num_docs

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        """Yield each document as a list of ``(word_id, count)`` with 0-based, sorted ids.

        Documents without entries in the file are yielded as ``[]``, so the i-th document
        yielded is row ``i + 1`` of the file. Repeated ``(doc, word)`` entries are summed.
        """
        for block in self.iter_csr():
            indptr = block.indptr.tolist()
            ids = block.indices.tolist()
            counts = block.data.tolist()
            for a, b in zip(indptr[:-1], indptr[1:]):
                yield list(zip(ids[a:b], counts[a:b]))

    def iter_csr(self, chunksize: int = 4096) -> Iterator[sp.csr_matrix]:
        """Yield the corpus as consecutive CSR blocks of ``chunksize`` documents.

        Parameters
        ----------
        chunksize : int
            Documents per block; the last block may be shorter.

        Yields
        ------
        scipy.sparse.csr_matrix of shape (n_docs_in_block, num_terms)
            int64 counts, int32 column indices (int64 beyond 2**31), sorted and without
            duplicates (repeated entries of the file are summed), documents
            in file order; empty documents are empty rows, so all ``num_docs`` rows are
            covered.

        Raises
        ------
        CorpusFormatError
            If a line is malformed, an id is out of range, a count is not a non-negative
            integer, the entries are not sorted by document, or the file holds a different
            number of entries than its header declares.
        """
        chunksize = check_chunksize(chunksize)
        with open_binary(self.fname) as f:
            try:
                yield from self._iter_csr_open(f, chunksize)
            except (EOFError, gzip.BadGzipFile, zlib.error) as e:
                raise CorpusFormatError(
                    f"{self.fname}: corrupt or truncated compressed file ({e})") from e

    # ------------------------------------------------------------------ body parsing
    def _iter_csr_open(self, f: BinaryIO, chunksize: int) -> Iterator[sp.csr_matrix]:
        D, W, nnz, header_lines = self._read_header(f)
        if (D, W, nnz) != (self.num_docs, self.num_terms, self.num_nnz):
            raise CorpusFormatError(f"{self.fname}: header changed since the corpus was opened")
        start = 0          # first (0-based) document of the next block to emit
        pending = None     # parsed entries (0-based rows) of documents >= start
        seen = 0           # entries parsed so far
        prev_row = 1       # last 1-based row seen, to check the sort order across batches
        last_line = header_lines  # last line number read so far
        for first_line, text in _iter_text_blocks(f, header_lines + 1):
            entries = self._parse_block(text, first_line, prev_row)
            last_line = first_line + text.count(b"\n") - text.endswith(b"\n")
            if not len(entries):
                continue
            seen += len(entries)
            if seen > nnz:
                raise CorpusFormatError(
                    f"{self.fname}: more entries than the {nnz} declared in the header "
                    f"({seen} by line {last_line})")
            prev_row = int(entries[-1, 0])
            entries[:, :2] -= 1
            pending = entries if pending is None else np.concatenate([pending, entries])
            # Every document before the last row seen is complete (entries are sorted).
            n_full = (int(pending[-1, 0]) - start) // chunksize
            if n_full:
                bounds = start + chunksize * np.arange(1, n_full + 1)
                cuts = np.searchsorted(pending[:, 0], bounds, side="left")
                lo = 0
                for hi in cuts.tolist():
                    yield _make_csr(pending[lo:hi], start, chunksize, W)
                    start += chunksize
                    lo = hi
                pending = pending[lo:]
        if seen < nnz:
            raise CorpusFormatError(
                f"{self.fname}: truncated file: the header declares {nnz} entries but the file "
                f"ends after {seen} (at line {last_line})")
        if pending is None:
            pending = np.empty((0, 3), dtype=np.int64)
        while start < D:
            n = min(chunksize, D - start)
            hi = int(np.searchsorted(pending[:, 0], start + n, side="left"))
            yield _make_csr(pending[:hi], start, n, W)
            pending = pending[hi:]
            start += n

    def _parse_block(self, text: bytes, first_line: int, prev_row: int) -> np.ndarray:
        """Parse and validate one batch of lines into an (n, 3) int64 array (1-based ids)."""
        entries = _fast_parse(text)
        if entries is not None:
            if not len(entries):
                return entries
            rows, cols, vals = entries[:, 0], entries[:, 1], entries[:, 2]
            if (rows[0] >= prev_row and not (np.diff(rows) < 0).any()
                    and rows[-1] <= self.num_docs
                    and cols.min() >= 1 and cols.max() <= self.num_terms
                    and vals.min() >= 0):
                return entries
        # Something is wrong in this batch: re-read it line by line to say exactly what.
        self._diagnose(text, first_line, prev_row)
        last_line = first_line + text.count(b"\n")
        raise CorpusFormatError(f"{self.fname}: malformed data between line {first_line} and "
                                f"line {last_line}")

    def _diagnose(self, text: bytes, lineno: int, prev_row: int) -> None:
        """Check ``text`` line by line and raise a CorpusFormatError at the first bad line."""
        for line in text.split(b"\n"):
            fields = line.split()
            if fields and not fields[0].startswith(b"%"):
                if b"%" in line:
                    fields = line[:line.index(b"%")].split()
                if len(fields) != 3:
                    raise self._error(lineno, f"expected 3 fields 'doc_id word_id count', got "
                                              f"{len(fields)}: {quote_line(line)}")
                row, col, val = (_to_int(x) for x in fields)
                if row is None or not 1 <= row <= self.num_docs:
                    raise self._error(lineno, f"document id must be an integer in "
                                              f"1..{self.num_docs}, got {quote_line(fields[0])}")
                if col is None or not 1 <= col <= self.num_terms:
                    raise self._error(lineno, f"word id must be an integer in "
                                              f"1..{self.num_terms}, got {quote_line(fields[1])}")
                if val is None or val < 0:
                    raise self._error(lineno, f"count must be a non-negative integer, got "
                                              f"{quote_line(fields[2])}")
                if row < prev_row:
                    raise self._error(lineno, f"entries must be sorted by document id, got "
                                              f"document {row} after document {prev_row}")
                prev_row = row
            lineno += 1


def quote_line(text: bytes) -> str:
    """Quote (part of) a line of a corpus file for an error message."""
    s = text.decode("utf-8", "replace").strip()
    return repr(s if len(s) <= 80 else s[:77] + "...")


def _iter_text_blocks(f: BinaryIO, lineno: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, text)`` batches of whole lines of about BLOCK_BYTES."""
    tail = b""
    while True:
        buf = f.read(BLOCK_BYTES)
        if not buf:
            if tail:
                yield lineno, tail
            return
        if tail:
            buf = tail + buf
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            tail = buf
            continue
        text, tail = buf[:cut], buf[cut:]
        yield lineno, text
        lineno += text.count(b"\n")


def _fast_parse(text: bytes) -> np.ndarray | None:
    """Parse lines of three numbers into an (n, 3) int64 array, or None if it can't.

    Integer parsing is tried first (the common case); a file written with float values such
    as ``2.0`` is parsed as float64 and accepted only if every value is integral.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data" for comment-only batches
        try:
            arr = np.loadtxt(io.BytesIO(text), dtype=np.int64, comments="%", ndmin=2)
        except ValueError:
            try:
                arr = np.loadtxt(io.BytesIO(text), dtype=np.float64, comments="%", ndmin=2)
            except ValueError:
                return None
            if arr.size and not (np.isfinite(arr).all() and (np.abs(arr) < _MAX_EXACT_FLOAT).all()
                                 and (np.floor(arr) == arr).all()):
                return None
            arr = arr.astype(np.int64)
    if arr.size == 0:
        return np.empty((0, 3), dtype=np.int64)
    if arr.shape[1] != 3:
        return None
    return arr


def _make_csr(entries: np.ndarray, start: int, n_docs: int, num_terms: int) -> sp.csr_matrix:
    """Build the CSR block of documents ``start .. start + n_docs - 1`` from sorted entries."""
    rows = entries[:, 0] - start
    idx_dtype = np.int32 if max(num_terms, len(entries)) < 2**31 else np.int64
    indptr = np.zeros(n_docs + 1, dtype=idx_dtype)
    np.cumsum(np.bincount(rows, minlength=n_docs), out=indptr[1:])
    m = sp.csr_matrix((entries[:, 2].copy(), entries[:, 1].astype(idx_dtype), indptr),
                      shape=(n_docs, num_terms))
    m.sum_duplicates()  # also sorts column indices; a no-op check for canonical input
    return m
