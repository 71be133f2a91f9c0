"""Sharded corpora: a corpus cut into token files that each machine can read by itself.

A shard set lives in ``DEST``, a local folder or any fsspec URL (``s3://bucket/prefix``,
``gs://...``, ``hdfs://...``, ``memory://...``)::

    DEST/manifest.json                  the index, written last
    DEST/vocabulary.txt                 one word per line, line i = word id i (UTF-8; optional)
    DEST/shard-00000.words.npy          word ids, one entry per token
    DEST/shard-00000.doc_ptr.npy        document offsets into the words, int64
    ...

**Shard files.** Both are NumPy ``.npy`` files (version 1.0 header, C order, little endian),
so a local shard is memory-mapped by ``np.load(path, mmap_mode="r")`` and a remote one is read
in pieces by ranged reads after its header. ``words`` has shape ``(num_tokens,)`` and the
manifest's ``word_dtype``: the narrowest unsigned type that holds ``num_terms - 1``
(``uint8`` up to 256 words, ``uint16`` up to 65,536, else ``uint32``). Documents are
consecutive; each document's tokens are its bag of words expanded by count **in increasing
word id** (repeated ids merged), so reading a document back gives exactly gensim's
``doc2bow`` form. ``doc_ptr`` has shape ``(num_docs + 1,)``, int64: document ``j`` of the
shard is ``words[doc_ptr[j]:doc_ptr[j + 1]]``, ``doc_ptr[0] == 0`` and
``doc_ptr[-1] == num_tokens``. Empty documents are kept (two equal offsets), so document
``first_doc + j`` of the corpus is document ``j`` of its shard.

**manifest.json** (UTF-8 JSON object):

``format``
    ``"distlda.shards"``.
``format_version``
    ``1``; a reader refuses any other version.
``num_shards``, ``num_docs``, ``num_tokens``, ``num_nnz``
    Shards, documents, tokens and distinct (document, word) entries of the whole set.
``num_terms``
    V: word ids are ``0 .. V - 1``.
``word_dtype``
    ``"uint8"``, ``"uint16"`` or ``"uint32"`` (determined by V as above).
``vocabulary``, ``vocabulary_sha256``
    File name (relative to DEST) of the vocabulary and its SHA-256, or both null. The file has
    exactly V lines; an id without a word is an empty line.
``shards``
    One object per shard, in document order: ``name``, ``first_doc`` (global index of its first
    document), ``num_docs``, ``num_tokens``, ``words`` and ``doc_ptr`` (file names relative to
    DEST) and ``sha256`` (``{"words": hex, "doc_ptr": hex}``, of the whole files).

**Writing** (:meth:`ShardedCorpus.write`) streams the source once. Its documents go, validated,
sorted and as uint32, to a local staging area (inside DEST when DEST is a local folder, else the
system's temporary folder or ``tmpdir``); only when the stream ends are the totals known, and
the set is cut there into N contiguous ranges of documents balanced by tokens: shard ``i`` ends
at the first document boundary at or past ``ceil(i * num_tokens / N)`` tokens, so each shard
holds ``num_tokens / N`` tokens give or take one document (the longest), and at least one
document. Each file is written under a temporary name and moved into place, and the manifest
last (an existing one is removed first when overwriting), so a reader never sees a manifest
that names a half-written set.

**Reading** (:class:`ShardedCorpus`) holds only the manifest; documents stream from the shards
in pieces of ``chunksize`` documents, and a shard's checksums are verified (a streamed SHA-256)
the first time this object reads it. One shard alone: :meth:`ShardedCorpus.shard` (its manifest
entry) and :meth:`ShardedCorpus.read_shard` (its arrays) or
:meth:`ShardedCorpus.iter_shard` (its pieces, in bounded memory).
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np
import scipy.sparse as sp

from distlda.corpora._triplets import check_chunksize
from distlda.errors import CorpusFormatError
from distlda.vocabulary import Vocabulary

__all__ = ["ShardedCorpus", "ShardInfo", "FORMAT", "FORMAT_VERSION", "MANIFEST", "word_dtype"]

FORMAT = "distlda.shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VOCABULARY = "vocabulary.txt"
#: Tokens (or offsets) per read and write: a few tens of MB at most in memory at once.
PIECE = 1 << 22
_HUGE = 1 << 62  # a shard set has no model's int32 limits on tokens and documents


def word_dtype(num_terms: int) -> np.dtype:
    """The narrowest little-endian unsigned dtype that holds word ids ``0 .. num_terms - 1``."""
    top = max(int(num_terms) - 1, 0)
    name = "uint8" if top <= 0xFF else "uint16" if top <= 0xFFFF else "uint32"
    return np.dtype(name).newbyteorder("<")


def _filesystem(url: str):
    """(fsspec filesystem, root path without a trailing slash, is it local) of ``url``."""
    try:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem
    except ImportError:  # pragma: no cover - a base dependency
        raise ImportError("sharded corpora need fsspec: pip install fsspec") from None
    fs, root = fsspec.core.url_to_fs(os.fspath(url))
    root = root.rstrip("/") or "/"
    return fs, root, isinstance(fs, LocalFileSystem)


def _npy_header(dtype: np.dtype, n: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype),
                                               "fortran_order": False, "shape": (int(n),)})
    return buf.getvalue()


@dataclass(frozen=True)
class ShardInfo:
    """One shard's entry in the manifest.

    Attributes
    ----------
    index : int
        Position in the manifest's ``shards``.
    name : str
    first_doc, num_docs, num_tokens : int
        Global index of its first document, its documents and tokens.
    words, doc_ptr : str
        File names relative to the set's folder.
    sha256 : dict of str -> str
        Hex SHA-256 of each file, by role (``"words"``, ``"doc_ptr"``).
    """

    index: int
    name: str
    first_doc: int
    num_docs: int
    num_tokens: int
    words: str
    doc_ptr: str
    sha256: dict


class _Npy:
    """A 1-D ``.npy`` file read by ranges: memory-mapped when local, else ranged reads."""

    def __init__(self, fs, path: str, local: bool, dtype: np.dtype, length: int, url: str):
        self.url = url
        try:
            if local:
                self._map = np.load(path, mmap_mode="r", allow_pickle=False)
                shape, got, self._file = self._map.shape, self._map.dtype, None
            else:
                self._map, self._file = None, fs.open(path, "rb")
                shape, got = self._read_header(self._file)
        except (ValueError, OSError, EOFError) as e:
            if isinstance(e, FileNotFoundError):
                raise CorpusFormatError(f"{url}: shard file missing") from None
            raise CorpusFormatError(f"{url}: not a readable .npy file ({e})") from None
        if shape != (length,) or got != dtype:
            raise CorpusFormatError(f"{url}: holds {got} of shape {shape}, the manifest says "
                                    f"{dtype} of shape ({length},)")
        self.dtype = dtype

    def _read_header(self, f: BinaryIO) -> tuple:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version}, expected 1.0 or 2.0")
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(f)
        self._offset = f.tell()
        return shape, dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        """Entries ``start .. stop - 1`` (a memory-mapped view when local)."""
        if self._map is not None:
            return self._map[start:stop]
        assert self._file is not None
        size = self.dtype.itemsize
        self._file.seek(self._offset + start * size)
        data = self._file.read((stop - start) * size)
        if len(data) != (stop - start) * size:
            raise CorpusFormatError(f"{self.url}: truncated file")
        return np.frombuffer(data, self.dtype)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._map = self._file = None


def entry_starts(words: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Where each (document, word) entry starts in tokens sorted by word id within their
    documents (``ptr``: document offsets from 0): a bool mask of ``words``' shape."""
    new = np.ones(words.shape[0], bool)
    new[1:] = words[1:] != words[:-1]
    new[ptr[:-1][ptr[:-1] < words.shape[0]]] = True  # a document starts a new entry
    return new


def _piece_csr(words: np.ndarray, ptr: np.ndarray, num_terms: int) -> sp.csr_matrix:
    """Documents ``ptr`` (offsets into ``words``, from 0) as a CSR block of (id, count)."""
    n, D = int(words.shape[0]), int(ptr.shape[0]) - 1
    if n == 0:
        return sp.csr_matrix((D, num_terms), dtype=np.int64)
    starts = np.flatnonzero(entry_starts(words, ptr))
    counts = np.diff(np.append(starts, n)).astype(np.int64)
    indptr = np.searchsorted(starts, ptr, "left")
    return sp.csr_matrix((counts, words[starts].astype(np.int32), indptr), shape=(D, num_terms))


class ShardedCorpus:
    """A corpus stored as a shard set (see the module docstring), streamed shard by shard.

    A gensim corpus: iterating yields each document as sorted ``(word_id, count)`` pairs, in
    document order; ``len()`` is the number of documents. ``iter_csr(chunksize)`` yields CSR
    blocks of consecutive documents (whatever the shard boundaries), which is how
    :class:`~distlda.models.LdaModel` reads it, so training on a shard set is the same chain as
    training on the same documents in memory.

    Parameters
    ----------
    url : str or os.PathLike
        The set's folder or fsspec URL (``s3://bucket/wiki``), or its ``manifest.json``.

    Attributes
    ----------
    url : str
        The set's folder or URL, as given (without ``manifest.json``).
    num_docs : int
        Documents, from the manifest (also ``num_tokens``, ``num_nnz``, ``num_shards``).
    num_terms : int
        V: word ids are ``0 .. V - 1``.
    word_dtype : numpy.dtype
        The dtype of the shards' word ids.

    Raises
    ------
    FileNotFoundError
        No ``manifest.json`` at ``url``.
    CorpusFormatError
        The manifest is not JSON, of another format or version, lacks a field or disagrees with
        itself; the message names the file.

    Examples
    --------
    >>> corpus = ShardedCorpus.write(docs, "shards/", shards=4, id2word=dictionary)  # doctest: +SKIP
    >>> lda = LdaModel(ShardedCorpus("shards/"), num_topics=50,
    ...                id2word=corpus.id2word)                                    # doctest: +SKIP
    """

    def __init__(self, url: str | os.PathLike):
        url = os.fspath(url)
        if url == MANIFEST or url.endswith("/" + MANIFEST):
            url = url[: -len(MANIFEST)].rstrip("/") or "."
        self.url = url.rstrip("/") or url
        self._fs, self._root, self._local = _filesystem(self.url)
        manifest = self._where(MANIFEST)
        try:
            with self._fs.open(self._path(MANIFEST), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"no shard set at {self.url}: {manifest} not found "
                                    f"(write one with 'distlda shard')") from None
        from ._shardset import check_manifest
        self._m = check_manifest(raw, manifest)
        #: SHA-256 of the manifest as read: a model trained on the set names it, so that a
        #: set rewritten since is refused rather than mixed with the model's assignments.
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        m = self._m
        self.num_docs, self.num_tokens, self.num_nnz = m["num_docs"], m["num_tokens"], m["num_nnz"]
        self.num_terms, self.num_shards = int(m["num_terms"]), int(m["num_shards"])
        self.word_dtype = word_dtype(self.num_terms)
        self._verified: set[int] = set()
        self._id2word: Vocabulary | None = None

    # ------------------------------------------------------------------ paths
    def _path(self, name: str) -> str:
        return posixpath.join(self._root, name) if not self._local else \
            os.path.join(self._root, name)

    def _where(self, name: str) -> str:
        return f"{self.url}/{name}"

    # ------------------------------------------------------------------ gensim corpus
    def __len__(self) -> int:
        return self.num_docs

    def __repr__(self) -> str:
        return (f"ShardedCorpus({self.url!r}: {self.num_shards} shards, {self.num_docs} "
                f"documents, {self.num_tokens} tokens, {self.num_terms} terms)")

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        """Each document as sorted ``(word_id, count)`` pairs, in document order."""
        for block in self.iter_csr():
            ptr, ids, counts = block.indptr.tolist(), block.indices.tolist(), block.data.tolist()
            for a, b in zip(ptr[:-1], ptr[1:]):
                yield list(zip(ids[a:b], counts[a:b]))

    @property
    def id2word(self) -> Vocabulary | None:
        """The vocabulary file's words by id (read on first use), or None without one."""
        if self._id2word is None and self._m["vocabulary"] is not None:
            from ._shardset import read_vocabulary
            name = self._m["vocabulary"]
            self._id2word = read_vocabulary(self._fs, self._path(name), self._where(name),
                                            self._m["vocabulary_sha256"], self.num_terms)
        return self._id2word

    def iter_csr(self, chunksize: int = 4096) -> Iterator[sp.csr_matrix]:
        """The corpus as consecutive CSR blocks of ``chunksize`` documents.

        Parameters
        ----------
        chunksize : int
            Documents per block (the last may be shorter); blocks span shard boundaries.

        Yields
        ------
        scipy.sparse.csr_matrix of shape (n, V)
            n documents (``chunksize`` but the last), V = ``num_terms``; int64 counts, int32
            sorted word ids without repeats.

        Raises
        ------
        CorpusFormatError
            A shard file is missing, damaged (checksum), or disagrees with the manifest.
        """
        chunksize = check_chunksize(chunksize)
        pending: list[sp.csr_matrix] = []
        have = 0
        for i in range(self.num_shards):
            for words, ptr in self.iter_shard(i, chunksize):
                pending.append(_piece_csr(words, ptr, self.num_terms))
                have += ptr.shape[0] - 1
                while have >= chunksize:
                    full = pending[0] if len(pending) == 1 else sp.vstack(pending, format="csr")
                    yield full[:chunksize]
                    have -= chunksize
                    pending = [full[chunksize:]] if have else []
        if have:
            yield pending[0] if len(pending) == 1 else sp.vstack(pending, format="csr")

    # ------------------------------------------------------------------ one shard
    def shard(self, i: int) -> ShardInfo:
        """Shard ``i``'s manifest entry (no file is read).

        Raises
        ------
        IndexError
            ``i`` out of ``[0, num_shards)``.
        """
        if isinstance(i, bool) or not 0 <= int(i) < self.num_shards:
            raise IndexError(f"shard {i!r} out of range: {self.url} has {self.num_shards} shards")
        e = self._m["shards"][int(i)]
        return ShardInfo(int(i), e["name"], e["first_doc"], e["num_docs"], e["num_tokens"],
                         e["words"], e["doc_ptr"], dict(e["sha256"]))

    def _open(self, i: int) -> tuple[_Npy, _Npy]:
        """Shard ``i``'s two files, checksums verified once per object, headers checked."""
        info = self.shard(i)
        if i not in self._verified:
            for role in ("words", "doc_ptr"):
                name = getattr(info, role)
                digest = _sha256(self._fs, self._path(name), self._where(name))
                if digest != info.sha256[role]:
                    raise CorpusFormatError(f"{self._where(name)}: checksum mismatch (shard "
                                            f"{info.name} is damaged or was changed since its "
                                            f"manifest was written)")
            self._verified.add(i)
        words = _Npy(self._fs, self._path(info.words), self._local, self.word_dtype,
                     info.num_tokens, self._where(info.words))
        ptr = _Npy(self._fs, self._path(info.doc_ptr), self._local, np.dtype("<i8"),
                   info.num_docs + 1, self._where(info.doc_ptr))
        return words, ptr

    def read_shard(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard ``i``'s arrays, after verifying its checksums.

        Returns
        -------
        words : ndarray of shape (T,), dtype ``word_dtype``
            The shard's T tokens; memory-mapped (read-only) when the set is local, else read
            whole.
        doc_ptr : ndarray of shape (D + 1,), int64
            Offsets of the shard's D documents into ``words``, from 0 to T.

        Raises
        ------
        IndexError
            ``i`` out of range.
        CorpusFormatError
            A file missing, damaged (checksum, naming the file and shard) or of the wrong shape.
        """
        words, ptr = self._open(i)
        info = self.shard(i)
        w, p = words.read(0, info.num_tokens), ptr.read(0, info.num_docs + 1)
        _check_offsets(p, info.num_tokens, self._where(info.doc_ptr))
        return w, p

    def iter_shard(self, i: int, chunksize: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Shard ``i`` in pieces of ``chunksize`` documents, in bounded memory.

        Yields
        ------
        words : ndarray of shape (t,), dtype ``word_dtype``
            The t tokens of the piece's documents.
        doc_ptr : ndarray of shape (n + 1,), int64
            Offsets of its n documents into ``words``, from 0.
        """
        words, ptr = self._open(i)
        info = self.shard(i)
        try:
            for a in range(0, info.num_docs, chunksize):
                b = min(info.num_docs, a + chunksize)
                p = np.asarray(ptr.read(a, b + 1), np.int64)
                _check_offsets(p, info.num_tokens, self._where(info.doc_ptr), a == 0,
                               b == info.num_docs)
                yield words.read(int(p[0]), int(p[-1])), p - p[0]
        finally:
            words.close()
            ptr.close()

    # ------------------------------------------------------------------ writing
    @staticmethod
    def exists(url: str | os.PathLike) -> bool:
        """Whether ``url`` holds a shard set (a ``manifest.json``), valid or not."""
        fs, root, _ = _filesystem(os.fspath(url))
        return bool(fs.exists(posixpath.join(root, MANIFEST)))

    @classmethod
    def write(cls, corpus, dest: str | os.PathLike, shards: int, id2word=None,
              overwrite: bool = False, chunksize: int = 4096,
              tmpdir: str | None = None) -> "ShardedCorpus":
        """Write ``corpus`` as a shard set in ``dest``, streaming it once.

        Parameters
        ----------
        corpus : iterable of list of (int, int), or scipy.sparse matrix (documents x words)
            Anything :class:`~distlda.models.LdaModel` trains on (a gensim corpus, a generator
            that can be read once, a reader with ``iter_csr``, a ShardedCorpus); never held
            whole.
        dest : str or os.PathLike
            Folder or fsspec URL; created if missing.
        shards : int
            N >= 1; at most the number of documents.
        id2word : Dictionary, mapping of int to str, or sequence of str, optional
            Written as the vocabulary file; V is then 1 + its largest id and larger word ids are
            refused. Without it V is the widest of the corpus's ``num_terms`` (or matrix width)
            and 1 + its largest word id.
        overwrite : bool
            Replace a shard set already in ``dest`` (refused otherwise).
        chunksize : int
            Documents read and validated at a time.
        tmpdir : str, optional
            Local staging folder for a remote ``dest`` (default: the system's).

        Returns
        -------
        ShardedCorpus
            The new set.

        Raises
        ------
        FileExistsError
            ``dest`` already holds a ``manifest.json`` and ``overwrite`` is False.
        ValueError
            A malformed document (named: negative, non-integer or out-of-vocabulary word id,
            negative or non-integer count), a corpus without tokens, fewer documents than
            ``shards``, ``shards < 1``, a word of ``id2word`` with a line break.
        """
        from ._shardset import write_set
        write_set(corpus, os.fspath(dest), shards, id2word, overwrite, chunksize, tmpdir)
        return cls(dest)


def _check_offsets(p: np.ndarray, num_tokens: int, where: str, first: bool = True,
                   last: bool = True) -> None:
    if ((first and p[0] != 0) or (last and p[-1] != num_tokens) or p[-1] > num_tokens
            or (np.diff(p) < 0).any()):
        raise CorpusFormatError(f"{where}: document offsets are not increasing from 0 to the "
                                f"shard's {num_tokens} tokens")


def _sha256(fs, path: str, where: str) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    try:
        with fs.open(path, "rb") as f:
            while True:
                block = f.read(1 << 23)
                if not block:
                    break
                h.update(block)
    except FileNotFoundError:
        raise CorpusFormatError(f"{where}: shard file missing") from None
    return h.hexdigest()
