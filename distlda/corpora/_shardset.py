"""The shard set's manifest (checked on reading) and its writer; the format is described in
:mod:`distlda.corpora.sharded`."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from distlda.errors import CorpusFormatError
from distlda.gibbs.chunks import declared_terms, iter_chunks
from distlda.params import Integer
from distlda.vocabulary import Vocabulary

from .sharded import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PIECE,
    VOCABULARY,
    _filesystem,
    _npy_header,
    _sha256,
    entry_starts,
    word_dtype,
)

#: shards and chunksize: the library's integer rule
POSITIVE = Integer(1)

_TOP = ("format", "format_version", "num_shards", "num_docs", "num_tokens", "num_nnz",
        "num_terms", "word_dtype", "vocabulary", "vocabulary_sha256", "shards")
_SHARD = ("name", "first_doc", "num_docs", "num_tokens", "words", "doc_ptr", "sha256")
_COUNTS = ("num_shards", "num_docs", "num_tokens", "num_nnz", "num_terms")


# ---------------------------------------------------------------------- reading
def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _file_name(value) -> bool:
    """A plain file name inside the set's folder (never a path that leaves it)."""
    return (isinstance(value, str) and value not in ("", ".", "..") and "/" not in value
            and "\\" not in value)


def check_manifest(raw: bytes, where: str) -> dict:
    """The parsed manifest, or a CorpusFormatError naming ``where`` and the problem."""
    try:
        m = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CorpusFormatError(f"{where}: not a JSON manifest ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CorpusFormatError(f"{where}: not a distlda shard manifest (format "
                                f"{m.get('format') if isinstance(m, dict) else None!r}, "
                                f"expected {FORMAT!r})")
    if m.get("format_version") != FORMAT_VERSION:
        raise CorpusFormatError(f"{where}: shard format version {m.get('format_version')!r}; "
                                f"this distlda reads version {FORMAT_VERSION} (re-shard the "
                                f"corpus with 'distlda shard', or upgrade distlda)")
    missing = [k for k in _TOP if k not in m]
    if missing:
        raise CorpusFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    for key in _COUNTS:
        if not _count(m[key]):
            raise CorpusFormatError(f"{where}: {key} must be a non-negative integer, got "
                                    f"{m[key]!r}")
    if m["word_dtype"] != word_dtype(m["num_terms"]).name:
        raise CorpusFormatError(f"{where}: word_dtype {m['word_dtype']!r} does not match "
                                f"num_terms={m['num_terms']} ({word_dtype(m['num_terms']).name})")
    if m["vocabulary"] is not None and not (_file_name(m["vocabulary"])
                                            and isinstance(m["vocabulary_sha256"], str)):
        raise CorpusFormatError(f"{where}: vocabulary must be a file name in the set's folder "
                                f"with its vocabulary_sha256, or null")
    _check_shards(m, where)
    return m


def _check_shards(m: dict, where: str) -> None:
    shards = m["shards"]
    if not isinstance(shards, list) or len(shards) != m["num_shards"]:
        raise CorpusFormatError(f"{where}: shards must list num_shards={m['num_shards']} entries")
    docs = tokens = 0
    for i, e in enumerate(shards):
        missing = [k for k in _SHARD if not isinstance(e, dict) or k not in e]
        if missing:
            raise CorpusFormatError(f"{where}: shard {i} lacks field(s) {', '.join(missing)}")
        if not all(_count(e[k]) for k in ("first_doc", "num_docs", "num_tokens")):
            raise CorpusFormatError(f"{where}: shard {i}: first_doc, num_docs and num_tokens "
                                    f"must be non-negative integers")
        if not (_file_name(e["words"]) and _file_name(e["doc_ptr"])
                and isinstance(e["sha256"], dict)
                and all(isinstance(e["sha256"].get(r), str) for r in ("words", "doc_ptr"))):
            raise CorpusFormatError(f"{where}: shard {i}: words and doc_ptr must be file names "
                                    f"in the set's folder, sha256 their checksums")
        if e["first_doc"] != docs:
            raise CorpusFormatError(f"{where}: shard {i} starts at document {e['first_doc']}, "
                                    f"expected {docs} (shards must follow each other)")
        docs += e["num_docs"]
        tokens += e["num_tokens"]
    if (docs, tokens) != (m["num_docs"], m["num_tokens"]):
        raise CorpusFormatError(f"{where}: the shards hold {docs} documents and {tokens} tokens, "
                                f"the manifest says {m['num_docs']} and {m['num_tokens']}")


def read_vocabulary(fs, path: str, where: str, digest: str, num_terms: int) -> Vocabulary:
    """The vocabulary file's words (line i = id i; empty lines: ids without a word)."""
    if _sha256(fs, path, where) != digest:
        raise CorpusFormatError(f"{where}: checksum mismatch (the vocabulary is damaged or was "
                                f"changed since the manifest was written)")
    with fs.open(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != num_terms:
        raise CorpusFormatError(f"{where}: {len(lines)} words, the manifest says "
                                f"num_terms={num_terms}")
    return Vocabulary((i, w) for i, w in enumerate(lines) if w)


# ---------------------------------------------------------------------- writing
@dataclass
class _Staged:
    """The stream, staged locally: uint32 tokens and int64 offsets, with its totals."""

    folder: str
    num_docs: int = 0
    num_tokens: int = 0
    num_nnz: int = 0
    width: int = 0

    @property
    def words(self) -> str:
        return os.path.join(self.folder, "words.u32")

    @property
    def ptr(self) -> str:
        return os.path.join(self.folder, "ptr.i64")


def _sorted_within_docs(words: np.ndarray, doc_ptr: np.ndarray) -> np.ndarray:
    """Each document's tokens in increasing word id (unchanged when they already are)."""
    if words.size < 2:
        return words
    down = np.diff(words) < 0
    starts = doc_ptr[1:-1]
    down[starts[(starts > 0) & (starts < words.size)] - 1] = False
    if not down.any():
        return words
    doc = np.repeat(np.arange(doc_ptr.size - 1), np.diff(doc_ptr))
    return words[np.lexsort((words, doc))]


def _stage(corpus, num_terms: int | None, folder: str, chunksize: int) -> _Staged:
    """Stream ``corpus`` once into the staging folder, validated and sorted."""
    st = _Staged(folder)
    with open(st.words, "wb") as fw, open(st.ptr, "wb") as fp:
        fp.write(np.zeros(1, "<i8").tobytes())
        for c in iter_chunks(corpus, num_terms, chunksize, max_tokens=1 << 62, max_docs=1 << 62):
            words = _sorted_within_docs(c.words, c.doc_ptr)
            fw.write(words.astype("<u4").tobytes())
            fp.write((c.doc_ptr[1:] + st.num_tokens).astype("<i8").tobytes())
            st.num_nnz += int(entry_starts(words, c.doc_ptr).sum())
            st.num_docs += c.num_docs
            st.num_tokens += c.num_tokens
            st.width = max(st.width, c.width)
    return st


def _bounds(ptr: np.ndarray, num_tokens: int, n: int) -> list[int]:
    """Document boundaries of ``n`` contiguous shards balanced by tokens, each non-empty:
    shard i ends at the first document boundary at or past ceil(i * T / n) tokens."""
    D = ptr.shape[0] - 1
    targets = (np.arange(1, n, dtype=np.int64) * num_tokens + n - 1) // n
    cut = np.searchsorted(ptr, targets, "left").tolist()
    bounds = [0]
    for i, b in enumerate(cut, start=1):
        bounds.append(min(max(int(b), bounds[-1] + 1), D - (n - i)))
    return bounds + [D]


class _Out:
    """One file of the set: written under a temporary name, hashed, then moved into place."""

    def __init__(self, fs, root: str, name: str):
        self.fs, self.final = fs, posixpath.join(root, name)
        self.tmp = posixpath.join(root, f".tmp-{uuid.uuid4().hex[:12]}-{name}")
        self.hash = hashlib.sha256()
        self.f = fs.open(self.tmp, "wb")

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.f.write(data)

    def close(self) -> str:
        self.f.close()
        self.fs.mv(self.tmp, self.final)
        return self.hash.hexdigest()


def _write_npy(fs, root: str, name: str, source: str, src_dtype: str, start: int, stop: int,
               dtype: np.dtype, shift: int = 0) -> str:
    """Entries ``start .. stop - 1`` of the raw staged file ``source``, less ``shift``, as a
    1-D .npy of ``dtype``; returns its SHA-256. Read by pieces with plain reads, not mapped,
    so that the process's memory stays a piece whatever the corpus's size."""
    out = _Out(fs, root, name)
    size = np.dtype(src_dtype).itemsize
    try:
        out.write(_npy_header(dtype, stop - start))
        with open(source, "rb") as f:
            f.seek(start * size)
            for a in range(start, stop, PIECE):
                piece = np.fromfile(f, src_dtype, min(PIECE, stop - a))
                out.write((piece - shift if shift else piece).astype(dtype).tobytes())
    except BaseException:
        out.f.close()
        fs.rm(out.tmp)
        raise
    return out.close()


def _write_shards(fs, root: str, st: _Staged, n: int, dtype: np.dtype) -> list[dict]:
    ptr = np.memmap(st.ptr, "<i8", "r", shape=(st.num_docs + 1,))  # binary searches only
    bounds = _bounds(ptr, st.num_tokens, n)
    starts = [int(ptr[b]) for b in bounds]
    del ptr
    digits = max(5, len(str(n - 1)))
    entries = []
    for i in range(n):
        a, b, t0, t1 = bounds[i], bounds[i + 1], starts[i], starts[i + 1]
        name = f"shard-{i:0{digits}d}"
        e: dict[str, Any] = {"name": name, "first_doc": a, "num_docs": b - a,
                             "num_tokens": t1 - t0, "words": f"{name}.words.npy",
                             "doc_ptr": f"{name}.doc_ptr.npy"}
        e["sha256"] = {"words": _write_npy(fs, root, e["words"], st.words, "<u4", t0, t1, dtype),
                       "doc_ptr": _write_npy(fs, root, e["doc_ptr"], st.ptr, "<i8", a, b + 1,
                                             np.dtype("<i8"), shift=t0)}
        entries.append(e)
    return entries


def _vocabulary_text(vocab: Vocabulary, num_terms: int) -> bytes:
    for i, w in vocab.items():
        if "\n" in w or "\r" in w:
            raise ValueError(f"Invalid 'id2word' parameter: word {i} ({w[:40]!r}) contains a "
                             f"line break; the vocabulary file holds one word per line")
    return "".join(vocab.get(i, "") + "\n" for i in range(num_terms)).encode("utf-8")


def _check_args(shards, chunksize) -> int:
    for name, value in (("shards", shards), ("chunksize", chunksize)):
        if not POSITIVE.ok(value):
            raise ValueError(f"{name} must be {POSITIVE.requirement}, got {value!r}")
    return int(shards)


def _old_files(fs, manifest: str) -> set:
    """The files a set being overwritten names (to remove those the new one does not)."""
    try:
        with fs.open(manifest, "rb") as f:
            m = check_manifest(f.read(), manifest)
    except (OSError, CorpusFormatError):
        return set()
    names = {e[r] for e in m["shards"] for r in ("words", "doc_ptr")}
    return names | ({m["vocabulary"]} if m["vocabulary"] else set())


def write_set(corpus, dest: str, shards, id2word, overwrite: bool, chunksize: int,
              tmpdir: str | None) -> None:
    """:meth:`ShardedCorpus.write`'s work (see there)."""
    from distlda.params import _resolve_id2word
    n = _check_args(shards, chunksize)
    vocab = _resolve_id2word(id2word) if id2word is not None else None
    V = 1 + max(vocab) if vocab else None
    fs, root, local = _filesystem(dest)
    manifest = posixpath.join(root, MANIFEST)
    if fs.exists(manifest) and not overwrite:
        raise FileExistsError(f"{dest} already holds a shard set ({MANIFEST}): pass "
                              f"overwrite=True (distlda shard --overwrite) to replace it, or "
                              f"choose another destination")
    fs.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".distlda-staging-", dir=root if local else tmpdir)
    try:
        st = _stage(corpus, V, staging, int(chunksize))
        _check_staged(st, n)
        V = V or max(st.width, declared_terms(corpus))
        old = _old_files(fs, manifest) if overwrite else set()
        if fs.exists(manifest):
            fs.rm(manifest)  # a reader never sees the old manifest over new shards
        m = {"format": FORMAT, "format_version": FORMAT_VERSION, "num_shards": n,
             "num_docs": st.num_docs, "num_tokens": st.num_tokens, "num_nnz": st.num_nnz,
             "num_terms": V, "word_dtype": word_dtype(V).name, "vocabulary": None,
             "vocabulary_sha256": None}
        if vocab:
            m["vocabulary"] = VOCABULARY
            m["vocabulary_sha256"] = _write_bytes(fs, root, VOCABULARY, _vocabulary_text(vocab, V))
        m["shards"] = _write_shards(fs, root, st, n, word_dtype(V))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_bytes(fs, root, MANIFEST, (json.dumps(m, indent=1) + "\n").encode("utf-8"))
    new = {e[r] for e in m["shards"] for r in ("words", "doc_ptr")} | {VOCABULARY}
    for name in sorted(old - new):
        fs.rm(posixpath.join(root, name))


def _check_staged(st: _Staged, n: int) -> None:
    if st.num_tokens == 0:
        raise ValueError(f"corpus has {st.num_docs} documents but no tokens: nothing to shard")
    if st.num_docs < n:
        raise ValueError(f"corpus has {st.num_docs} documents, fewer than the {n} shards "
                         f"asked for: ask for at most {st.num_docs}")


def _write_bytes(fs, root: str, name: str, data: bytes) -> str:
    out = _Out(fs, root, name)
    out.write(data)
    return out.close()
