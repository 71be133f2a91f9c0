"""Checkpoints of topic assignments: each shard's ``z`` (one topic id per token), saved beside
a training so that a worker can pick its shards up where a sweep left them.

A :class:`CheckpointStore` lives at ``URL``, a local folder or any fsspec URL
(``s3://bucket/run-7/z``, ``gs://...``, ``memory://...``), one pair of files per
(shard, sweep)::

    URL/z-00003-00000120.npy     shard 3's topics after sweep 120
    URL/z-00003-00000120.json    its sidecar, written LAST: the commit mark
    ...

Shard numbers have at least 5 digits and sweeps at least 8 (wider numbers are written in
full: ``z-123456-00000001.npy``).

**Data file** (``.npy``): a NumPy ``.npy`` file (version 1.0 header, C order, little
endian) of shape ``(tokens,)``, so ``np.load`` reads it. Entry ``i`` is the topic of the
shard's token ``i``, in the shard's token order (the ``words`` of
:meth:`~distlda.corpora.sharded.ShardedCorpus.read_shard`). Its dtype is the narrowest that holds ``num_topics - 1``: ``uint8`` when
K <= 256, ``uint16`` when K <= 65,536, else ``int32`` (see :func:`topic_dtype`).

**Sidecar** (``.json``, UTF-8 JSON object), which is also the *ref* that
:meth:`CheckpointStore.write` returns and :meth:`CheckpointStore.read` takes:

``format``
    ``"distlda.z"``.
``format_version``
    ``1``; a reader refuses any other version.
``file``
    The data file's name, relative to URL (``"z-00003-00000120.npy"``).
``shard``, ``sweep``
    Non-negative integers, as in the names.
``tokens``
    The shard's tokens: the data file's length.
``num_topics``
    K: every entry is in ``0 .. K - 1``.
``dtype``
    ``"uint8"``, ``"uint16"`` or ``"int32"`` (determined by K as above).
``sha256``
    Hex SHA-256 of the whole data file, header included.

**Atomicity.** A checkpoint is *complete* when its sidecar exists and its data file too:
readers (:meth:`~CheckpointStore.latest`, :meth:`~CheckpointStore.exists`) trust nothing
else. The writer writes the data file, then the sidecar, so a sidecar never names a data
file still being written. Locally both are written under a temporary name
(``.z-00003-00000120.npy.tmp-<12 hex digits>``), flushed to disk and renamed into place, so
even the data file never appears half-written under its name. On an object store (S3, GCS,
...) each is uploaded straight to its name: an object becomes visible only when its upload
completes (a failed upload is discarded), and the sidecar is uploaded only after the data.
Rewriting an existing (shard, sweep) removes its sidecar first.
:meth:`~CheckpointStore.prune` removes a sidecar before its data, so an interruption leaves
at worst an orphan data file, which a later ``prune`` removes. Whatever happens in between,
:meth:`~CheckpointStore.read` verifies the data against the ref's length, dtype, SHA-256 and
K before returning anything. Listings and sizes are never taken from fsspec's cache, so a
store sees what other processes wrote.

**Folders.** A local folder is created when missing (also by other fsspec filesystems that
have folders); on an object store nothing is created: the bucket must exist
(:meth:`~CheckpointStore.probe` says so when it does not).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import uuid
from typing import Any, Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from distlda.errors import CheckpointError
from distlda.params import Integer

from .sharded import ShardedCorpus, _filesystem, _npy_header

__all__ = ["CheckpointStore", "doc_topic_counts", "topic_dtype", "FORMAT", "FORMAT_VERSION"]

FORMAT = "distlda.z"
FORMAT_VERSION = 1
#: Entries converted, hashed and written (or read) at a time: at most 1 MB at int32.
PIECE = 1 << 18
#: Tokens per piece of :func:`doc_topic_counts` (a few tens of MB of scratch).
_COUNT_PIECE = 1 << 21
_NAME = re.compile(r"^z-(\d{5,})-(\d{8,})\.(npy|json)$")
_TMP = re.compile(r"^\.z-(\d{5,})-(\d{8,})\.(npy|json)\.tmp-[0-9a-f]+$")
_FIELDS = ("format", "format_version", "file", "shard", "sweep", "tokens", "num_topics",
           "dtype", "sha256")
#: fsspec protocols of object stores: no folders, and ``makedirs`` would create a bucket.
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"}
_COUNT = Integer(0)
_POSITIVE = Integer(1)


def topic_dtype(num_topics: int) -> np.dtype:
    """The dtype of a checkpoint's topics: little-endian ``uint8`` when ``num_topics`` <= 256,
    ``uint16`` when <= 65,536, else ``int32``."""
    k = int(num_topics)
    name = "uint8" if k <= 0x100 else "uint16" if k <= 0x10000 else "int32"
    return np.dtype(name).newbyteorder("<")


def _names(shard: int, sweep: int) -> tuple[str, str]:
    """(data file, sidecar) names of a checkpoint."""
    stem = f"z-{shard:05d}-{sweep:08d}"
    return f"{stem}.npy", f"{stem}.json"


def _check_int(name: str, value, rule: Integer = _COUNT) -> int:
    if not rule.ok(value):
        raise ValueError(f"{name} must be {rule.requirement}, got {value!r}")
    return int(value)


def _as_topics(topics, K: int) -> np.ndarray:
    """``topics`` as an array, refused (ValueError) unless 1-D integers in ``0 .. K - 1``."""
    topics = np.asarray(topics)
    if topics.ndim != 1 or not np.issubdtype(topics.dtype, np.integer):
        raise ValueError(f"topics must be a 1-D integer array (one topic per token), got "
                         f"{topics.dtype} of shape {topics.shape}")
    if topics.shape[0] and (int(topics.min()) < 0 or int(topics.max()) >= K):
        bad = int(np.flatnonzero((topics < 0) | (topics >= K))[0])
        raise ValueError(f"topics[{bad}] = {int(topics[bad])} is not a topic of "
                         f"num_topics={K} (must be in 0 .. {K - 1})")
    return topics


# ---------------------------------------------------------------------- file helpers
def _put(fs, path: str, local: bool, chunks: Iterable) -> None:
    """Write the bytes-like items of ``chunks`` as file ``path``: locally under a temporary
    name, synced, then renamed into place; elsewhere straight to its name (an object appears
    when its upload completes; a failed upload is discarded, not completed)."""
    if local:
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with open(tmp, "wb") as f:
                for c in chunks:
                    f.write(c)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return
    from fsspec.spec import AbstractBufferedFile
    out = fs.open(path, "wb")
    try:
        for c in chunks:
            out.write(c)
    except BaseException:
        if isinstance(out, AbstractBufferedFile):  # do not upload what was written
            out.discard()
            out.closed = True
        else:
            out.close()
        raise
    out.close()


def _npy_pieces(topics: np.ndarray, dtype: np.dtype, digest) -> Iterator[memoryview]:
    """The .npy file of ``topics`` as ``dtype``, by pieces of at most 1 MB, hashed."""
    header = _npy_header(dtype, topics.shape[0])
    digest.update(header)
    yield memoryview(header)
    for a in range(0, topics.shape[0], PIECE):
        piece = np.ascontiguousarray(topics[a:a + PIECE], dtype=dtype)
        view = piece.view(np.uint8).data
        digest.update(view)
        yield view


def _truncated(where: str, got: int, expected: int) -> CheckpointError:
    return CheckpointError(f"{where}: truncated: {got} bytes, expected {expected} (the write "
                           f"did not finish, or the file was cut)")


def _read_npy(f, where: str, dtype: np.dtype, K: int, out: np.ndarray, digest) -> int:
    """Read the .npy file ``f`` of ``out.shape[0]`` entries of ``dtype`` into ``out`` by
    pieces, hashing every byte (a trailing one too); returns the first entry >= K (or < 0),
    -1 when none. Raises CheckpointError for a short file or another header."""
    T = out.shape[0]
    header = _npy_header(dtype, T)
    size = len(header) + T * dtype.itemsize
    head = f.read(len(header))
    digest.update(head)
    if head != header:
        if len(head) < len(header):
            raise _truncated(where, len(head), size)
        raise CheckpointError(f"{where}: not the file the checkpoint names: its header says "
                              f"{_describe(head)}, expected {dtype.name} of shape ({T},)")
    bad = -1
    for a in range(0, T, PIECE):
        want = min(PIECE, T - a) * dtype.itemsize
        raw = f.read(want)
        digest.update(raw)
        if len(raw) != want:
            raise _truncated(where, len(header) + a * dtype.itemsize + len(raw), size)
        piece = np.frombuffer(raw, dtype)
        out[a:a + piece.shape[0]] = piece
        if bad < 0 and (int(piece.max()) >= K or int(piece.min()) < 0):
            bad = a + int(np.flatnonzero((piece >= K) | (piece < 0))[0])
    digest.update(f.read(1))  # a longer file fails the checksum
    return bad


def _describe(head: bytes) -> str:
    """A .npy header's dtype and shape, for a message."""
    try:
        buf = io.BytesIO(head)
        version = np.lib.format.read_magic(buf)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(buf)
        return f"{dtype} of shape {shape}"
    except Exception:  # noqa: BLE001 - any failure: not a header we can describe
        return "nothing readable (not a .npy file)"


def _check_ref(ref, url: str) -> dict:
    """The ref, checked for form (not against any file): CheckpointError naming the problem."""
    if not isinstance(ref, dict):
        raise CheckpointError(f"{url}: a checkpoint ref must be the dict that write() or "
                              f"latest() returned, got {type(ref).__name__}")
    missing = [k for k in _FIELDS if k not in ref]
    if missing:
        raise CheckpointError(f"{url}: checkpoint ref {ref!r} lacks field(s) "
                              f"{', '.join(missing)}")
    if ref["format"] != FORMAT or ref["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{url}: checkpoint ref of format {ref['format']!r} version "
                              f"{ref['format_version']!r}; this distlda reads {FORMAT!r} "
                              f"version {FORMAT_VERSION}")
    if not (all(_COUNT.ok(ref[k]) for k in ("shard", "sweep", "tokens", "num_topics"))
            and ref["num_topics"] >= 1 and isinstance(ref["sha256"], str)):
        raise CheckpointError(f"{url}: checkpoint ref {ref!r}: shard, sweep and tokens must be "
                              f"non-negative integers, num_topics positive, sha256 a string")
    name = _names(ref["shard"], ref["sweep"])[0]
    if ref["file"] != name:
        raise CheckpointError(f"{url}: checkpoint ref names file {ref['file']!r}, expected "
                              f"{name!r} for shard {ref['shard']}, sweep {ref['sweep']}")
    if ref["dtype"] != topic_dtype(ref["num_topics"]).name:
        raise CheckpointError(f"{url}/{name}: dtype {ref['dtype']!r} does not match "
                              f"num_topics={ref['num_topics']} "
                              f"({topic_dtype(ref['num_topics']).name})")
    return ref


def _parse_sidecar(raw: bytes, where: str, url: str, shard: int, sweep: int) -> dict:
    """A sidecar's ref, checked against its name."""
    fallback = "delete it (and its .npy) to fall back to the previous checkpoint"
    try:
        ref = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{where}: not a checkpoint sidecar ({e}); {fallback}") from None
    try:
        ref = _check_ref(ref, url)
    except CheckpointError as e:
        raise CheckpointError(f"{where}: not a valid checkpoint sidecar ({e}); {fallback}") \
            from None
    if (ref["shard"], ref["sweep"]) != (shard, sweep):
        raise CheckpointError(f"{where}: says shard {ref['shard']}, sweep {ref['sweep']}, its "
                              f"name says shard {shard}, sweep {sweep}; {fallback}")
    return ref


def _write_error(where: str, e: OSError) -> CheckpointError:
    return CheckpointError(f"{where}: cannot write the checkpoint ({type(e).__name__}: {e}); "
                           f"check permissions, free space and credentials, or pass "
                           f"checkpoint=URL naming a writable place")


class CheckpointStore:
    """Where a training keeps its shards' topic assignments (format: the module docstring).

    Parameters
    ----------
    url : str or os.PathLike
        A local folder or an fsspec URL (``s3://bucket/prefix``). Nothing is read or written
        until a method is called; :meth:`probe` checks that the place is writable.

    Attributes
    ----------
    url : str
        As given, without a trailing slash; messages name files as ``url/name``.

    Examples
    --------
    >>> store = CheckpointStore("s3://bucket/run-7/z")          # doctest: +SKIP
    >>> store.probe()                                           # doctest: +SKIP
    >>> ref = store.write(3, 120, topics, num_topics=100)       # doctest: +SKIP
    >>> topics = store.read(ref, num_tokens=topics.size, num_topics=100)  # doctest: +SKIP
    >>> store.latest(3) == ref                                  # doctest: +SKIP
    True
    """

    def __init__(self, url: str | os.PathLike):
        text = os.fspath(url)
        if not isinstance(text, str) or not text:
            raise ValueError(f"url must be a folder or an fsspec URL, got {url!r}")
        self.url = text.rstrip("/") or text
        self._fs, self._root, self._local = _filesystem(self.url)
        protocol = self._fs.protocol
        protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        self._object_store = bool(protocols & _OBJECT_STORES)

    def __repr__(self) -> str:
        return f"CheckpointStore({self.url!r})"

    def _path(self, name: str) -> str:
        return os.path.join(self._root, name) if self._local else posixpath.join(self._root, name)

    def _where(self, name: str) -> str:
        return f"{self.url}/{name}"

    def _makedirs(self) -> None:
        if not self._object_store:
            self._fs.makedirs(self._root, exist_ok=True)

    def _rm(self, name: str) -> None:
        try:
            self._fs.rm(self._path(name))
        except FileNotFoundError:
            pass

    def probe(self) -> None:
        """Check that checkpoints can be written here: write and delete a small file.

        Creates the folder when missing (except on object stores, see the module docstring).

        Raises
        ------
        CheckpointError
            The place cannot be written (no permission, a path under a file, a missing bucket,
            no credentials, ...): names the URL, the cause and what to do.
        """
        name = f".probe-{uuid.uuid4().hex[:12]}"
        try:
            self._makedirs()
            _put(self._fs, self._path(name), self._local, [b"distlda checkpoint probe\n"])
            self._rm(name)
        except Exception as e:  # any failure here means: not usable
            raise CheckpointError(
                f"{self.url}: cannot write checkpoints there ({type(e).__name__}: {e}); check "
                f"that this process may write there (permissions, credentials; on an object "
                f"store, that the bucket exists), or pass checkpoint=URL naming a writable "
                f"place") from None

    def write(self, shard: int, sweep: int, topics: np.ndarray, num_topics: int) -> dict:
        """Save a shard's topics after a sweep; returns its ref (== its sidecar's contents).

        Streams: the file is converted, hashed and written in pieces of at most 1 MB.

        Parameters
        ----------
        shard, sweep : int
            Non-negative. An existing checkpoint of the same (shard, sweep) is replaced (its
            sidecar removed first).
        topics : ndarray of shape (T,), any integer dtype
            The topic of each of the shard's T tokens, in ``0 .. num_topics - 1``.
        num_topics : int
            K >= 1.

        Returns
        -------
        dict
            The ref, JSON-able: ``format``, ``format_version``, ``file`` (name relative to
            the store), ``shard``, ``sweep``, ``tokens`` (T), ``num_topics``, ``dtype``
            (:func:`topic_dtype`), ``sha256`` (hex, of the whole file).

        Raises
        ------
        ValueError
            Negative or non-integer ``shard``/``sweep``, ``num_topics < 1``, ``topics`` not a
            1-D integer array, or a topic outside ``0 .. num_topics - 1`` (named).
        CheckpointError
            The file cannot be written (names it; see :meth:`probe`).
        """
        shard, sweep = _check_int("shard", shard), _check_int("sweep", sweep)
        K = _check_int("num_topics", num_topics, _POSITIVE)
        topics = _as_topics(topics, K)
        dtype, (data, side), digest = topic_dtype(K), _names(shard, sweep), hashlib.sha256()
        ref: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "file": data,
                               "shard": shard, "sweep": sweep, "tokens": int(topics.shape[0]),
                               "num_topics": K, "dtype": dtype.name}
        try:
            self._makedirs()
            self._rm(side)  # un-commit an older checkpoint of this (shard, sweep) first
            _put(self._fs, self._path(data), self._local, _npy_pieces(topics, dtype, digest))
        except OSError as e:
            raise _write_error(self._where(data), e) from None
        ref["sha256"] = digest.hexdigest()
        try:
            _put(self._fs, self._path(side), self._local,
                 [(json.dumps(ref, indent=1) + "\n").encode("utf-8")])
        except OSError as e:
            raise _write_error(self._where(side), e) from None
        return ref

    def read(self, ref: dict, num_tokens: int, num_topics: int) -> np.ndarray:
        """A checkpoint's topics, verified.

        Streams: the file is read, hashed and converted in pieces into the result.

        Parameters
        ----------
        ref : dict
            What :meth:`write` or :meth:`latest` returned (or its JSON round trip).
        num_tokens : int
            The shard's tokens, which the checkpoint must hold.
        num_topics : int
            The model's K, which the checkpoint must have been written for.

        Returns
        -------
        ndarray of shape (num_tokens,), int32
            The topics, each in ``0 .. num_topics - 1`` (int32 whatever the file's dtype: the
            samplers' dtype).

        Raises
        ------
        CheckpointError
            Naming the file's full URL and the problem: a malformed ref, ``missing`` (deleted
            or moved), another K or token count than asked, ``truncated``, a header that is not
            the ref's, ``checksum mismatch`` (changed after it was written), a topic
            >= num_topics.
        """
        ref = _check_ref(ref, self.url)
        where = self._where(ref["file"])
        if ref["num_topics"] != num_topics:
            raise CheckpointError(f"{where}: written for num_topics={ref['num_topics']}, the "
                                  f"model has {num_topics} (a checkpoint of another training?)")
        if ref["tokens"] != num_tokens:
            raise CheckpointError(f"{where}: holds {ref['tokens']} topics, the shard has "
                                  f"{num_tokens} tokens (a checkpoint of another shard set?)")
        out, digest = np.empty(ref["tokens"], np.int32), hashlib.sha256()
        self._fs.invalidate_cache(self._root)  # no size cached before another process wrote
        try:
            with self._fs.open(self._path(ref["file"]), "rb") as f:
                bad = _read_npy(f, where, topic_dtype(num_topics), num_topics, out, digest)
        except FileNotFoundError:
            raise CheckpointError(f"{where}: missing: the checkpoint was deleted or moved "
                                  f"(keep the checkpoint folder while a training uses it)") \
                from None
        except OSError as e:
            raise CheckpointError(f"{where}: cannot read the checkpoint ({type(e).__name__}: "
                                  f"{e}); check permissions and credentials") from None
        if digest.hexdigest() != ref["sha256"]:
            raise CheckpointError(f"{where}: checksum mismatch: the file changed after it was "
                                  f"written")
        if bad >= 0:
            raise CheckpointError(f"{where}: topic {int(out[bad])} at token {bad} is not a "
                                  f"topic of num_topics={num_topics}")
        return out

    def exists(self, ref: dict) -> bool:
        """Whether the ref's checkpoint is complete: its sidecar exists and its data file has
        the size the ref implies (two metadata requests, no data read; :meth:`read` verifies
        the content).

        Raises
        ------
        CheckpointError
            A malformed ref.
        """
        ref = _check_ref(ref, self.url)
        dtype = np.dtype(ref["dtype"])
        size = len(_npy_header(dtype, ref["tokens"])) + ref["tokens"] * dtype.itemsize
        self._fs.invalidate_cache(self._root)  # not a listing cached before another change
        try:
            if int(self._fs.info(self._path(ref["file"])).get("size", -1)) != size:
                return False
            return bool(self._fs.exists(self._path(_names(ref["shard"], ref["sweep"])[1])))
        except FileNotFoundError:
            return False

    def _sweeps(self, shard: int) -> tuple[list[int], list[int]]:
        """(complete sweeps, incomplete sweeps) of a shard, each increasing, by listing."""
        try:
            self._fs.invalidate_cache(self._root)  # what other processes wrote since
            paths = self._fs.ls(self._root, detail=False)
        except FileNotFoundError:
            return [], []
        except OSError as e:
            raise CheckpointError(f"{self.url}: cannot list checkpoints ({type(e).__name__}: "
                                  f"{e}); check permissions and credentials") from None
        kinds: dict[int, set[str]] = {}
        for path in paths:
            m = _NAME.match(posixpath.basename(str(path).rstrip("/")))
            if m and int(m[1]) == shard:
                kinds.setdefault(int(m[2]), set()).add(m[3])
        complete = [s for s in sorted(kinds) if kinds[s] == {"npy", "json"}]
        return complete, [s for s in sorted(kinds) if kinds[s] != {"npy", "json"}]

    def latest(self, shard: int) -> dict | None:
        """The ref of the shard's newest complete checkpoint (largest sweep), by listing the
        store; None when it has none. A data file without its sidecar is not complete.

        Raises
        ------
        ValueError
            ``shard`` not a non-negative integer.
        CheckpointError
            The newest sidecar is not a valid one (names it; delete it to fall back).
        """
        shard = _check_int("shard", shard)
        complete, _ = self._sweeps(shard)
        if not complete:
            return None
        name = _names(shard, complete[-1])[1]
        try:
            raw = self._fs.cat_file(self._path(name))
        except FileNotFoundError:
            raise CheckpointError(f"{self._where(name)}: missing: the checkpoint was deleted "
                                  f"while being read (is another training pruning this "
                                  f"folder?)") from None
        return _parse_sidecar(raw, self._where(name), self.url, shard, complete[-1])

    def prune(self, shard: int, keep: int = 2, protect: Iterable[int] = ()) -> None:
        """Delete all but the ``keep`` newest complete checkpoints of a shard (and those of
        the sweeps in ``protect``: what a model kept elsewhere still refers to), and the
        incomplete ones (a data file or sidecar without the other, a temporary file of an
        interrupted local write) older than its newest complete one. Newer incomplete files
        are left alone: they may be a write in progress. Each sidecar goes before its data.

        Parameters
        ----------
        shard : int
        keep : int
            >= 0 (0 deletes every complete checkpoint of the shard).
        protect : iterable of int
            Sweeps whose checkpoint of this shard stays whatever ``keep`` says.

        Raises
        ------
        ValueError
            ``shard`` or ``keep`` not a non-negative integer.
        CheckpointError
            A file cannot be deleted (names it).
        """
        shard, keep = _check_int("shard", shard), _check_int("keep", keep)
        complete, partial = self._sweeps(shard)
        if not complete:
            return
        spared = {int(s) for s in protect}
        doomed: list[tuple[str, ...]] = [_names(shard, s)[::-1]
                                         for s in complete[:len(complete) - keep]
                                         if s not in spared]
        doomed += [_names(shard, s)[::-1] for s in partial if s < complete[-1]]
        if self._local:  # temporary files of interrupted writes
            doomed += [(n,) for n in os.listdir(self._root) if (m := _TMP.match(n))
                       and int(m[1]) == shard and int(m[2]) < complete[-1]]
        for names in doomed:
            for name in names:  # the sidecar first
                try:
                    self._rm(name)
                except OSError as e:
                    raise CheckpointError(f"{self._where(name)}: cannot delete ({e}); check "
                                          f"permissions") from None


def doc_topic_counts(corpus: ShardedCorpus, shard: int, topics: np.ndarray,
                     num_topics: int) -> sp.csr_matrix:
    """Tokens per topic of each document of a shard: its n_dk, from its assignments.

    Parameters
    ----------
    corpus : ShardedCorpus
        The shard set; only ``shard``'s ``doc_ptr`` is read
        (:meth:`~distlda.corpora.sharded.ShardedCorpus.read_shard`).
    shard : int
        The shard's index.
    topics : ndarray of shape (T,), any integer dtype
        The topic of each of the shard's T tokens (what :meth:`CheckpointStore.read` returns).
    num_topics : int
        K.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (D, K), int32
        Row ``j``: document ``j`` of the shard (global document ``shard(shard).first_doc + j``),
        its tokens per topic; only non-zero counts stored, column indices sorted. Empty
        documents are empty rows.

    Raises
    ------
    ValueError
        ``num_topics < 1``, ``topics`` not 1-D integers, not of the shard's length, or holding
        a topic outside ``0 .. num_topics - 1`` (named).
    IndexError
        ``shard`` out of range.
    CorpusFormatError
        The shard's files are missing or damaged.
    """
    K = _check_int("num_topics", num_topics, _POSITIVE)
    topics = _as_topics(topics, K)
    _, ptr = corpus.read_shard(shard)
    ptr = np.asarray(ptr, np.int64)
    D = int(ptr.shape[0]) - 1
    if topics.shape[0] != int(ptr[-1]):
        raise ValueError(f"topics holds {topics.shape[0]} entries, shard {shard} of "
                         f"{corpus.url} has {int(ptr[-1])} tokens")
    indptr = np.zeros(D + 1, np.int64)
    cols, vals = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    d0 = 0
    while d0 < D:  # documents by pieces of about _COUNT_PIECE tokens (one at least)
        d1 = int(np.searchsorted(ptr, ptr[d0] + _COUNT_PIECE, "right")) - 1
        d1 = min(max(d1, d0 + 1), D)
        rows, c, v = _count_pairs(topics[ptr[d0]:ptr[d1]], ptr[d0:d1 + 1] - ptr[d0], K)
        cols.append(c)
        vals.append(v)
        indptr[d0 + 1:d1 + 1] = np.bincount(rows, minlength=d1 - d0)
        d0 = d1
    np.cumsum(indptr, out=indptr)
    return sp.csr_matrix((np.concatenate(vals), np.concatenate(cols), indptr), shape=(D, K))


def _count_pairs(topics: np.ndarray, ptr: np.ndarray, K: int) -> tuple:
    """(document, topic, count) of every non-zero count of consecutive documents (offsets
    ``ptr`` from 0), sorted by document then topic: int64, int32, int32 arrays."""
    doc = np.repeat(np.arange(ptr.shape[0] - 1, dtype=np.int64), np.diff(ptr))
    keys, counts = np.unique(doc * K + topics.astype(np.int64), return_counts=True)
    rows = keys // K
    return rows, (keys - rows * K).astype(np.int32), counts.astype(np.int32)
