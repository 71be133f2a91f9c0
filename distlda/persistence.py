"""The model file format: what :meth:`LdaModel.save` writes and :meth:`LdaModel.load` checks.

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` members): one ``meta`` member, the
UTF-8 JSON of the fields in :data:`FIELDS`, and the arrays in :data:`ARRAYS`. Nothing is ever
unpickled, and every member is read by :func:`read_archive` with its header checked before
its data is read (dtype, shape, and a size the member can really hold, so a damaged header
cannot make the reader allocate more than the file decompresses to). Whatever is wrong with
a file, the reader raises one :class:`ModelFileError` (a ``ValueError``) naming the file and
the problem.

Format versions (``format_version`` in ``meta``; every change to the format bumps it):

- **1** (distlda 0.1, until issue 12). Written in three variants, since fields were added
  without a bump: the first had no ``optimize_*``/``sweeps_done`` fields, the second no
  ``sampler``/``mh_steps``. Missing fields take the defaults in :data:`FIELDS` (for the
  settings, ``older`` in :data:`distlda.params.PARAMS`), which are what the code that wrote
  them did (only the sparse sampler existed; alpha was fixed).
- **2**: adds ``num_docs`` and ``num_tokens`` (checked against the arrays), and inference
  seeds each document from ``infer_seed`` and its words (so a version-1 model's inference
  answers differ from the ones the old code gave, though they are equally valid draws).
- **3** (issue 14, gensim parity): the topic-word prior may be an array: the member ``eta``
  is float64 of shape (0, 0) for one value (the field ``eta``), (1, V) for one value per
  word, (K, V) for one per topic and word (``eta_kind`` says which; the field ``eta`` is
  then the mean). Adds ``optimize_eta``, ``passes``, ``minimum_phi_value``,
  ``per_word_topics`` and ``dtype``; older files take eta from the field and gensim's
  defaults for the rest.

The fixtures in ``tests/data/`` hold one file per version and variant
(``tests/data/make_model_fixtures.py`` wrote them).
"""

from __future__ import annotations

import io
import json
import logging
import zipfile

import numpy as np

from distlda.errors import ModelFileError
from distlda.params import (
    FINITE,
    REQUIRED,
    Integer,
    ModelSpec,
    OfType,
    OneOf,
    Optional,
    Rule,
    file_fields,
)
from distlda.vocabulary import Vocabulary

logger = logging.getLogger("distlda.models.ldamodel")

FORMAT = "distlda.LdaModel"
#: The version :meth:`LdaModel.save` writes.
FORMAT_VERSION = 4
#: Versions :meth:`LdaModel.load` reads.
SUPPORTED_VERSIONS = (1, 2, 3, 4)

#: Deflate cannot expand data by more than about 1032 times: a member claiming more than
#: this is damaged (checked before anything of the claimed size is allocated).
_MAX_RATIO = 1100

def _id2word_ok(v) -> bool:
    return v is None or isinstance(v, list) and all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], int)
        and not isinstance(e[0], bool) and e[0] >= 0 and isinstance(e[1], str) for e in v)


class _Id2word(Rule):
    requirement = "a list of [word id, word] pairs"
    ok = staticmethod(_id2word_ok)

    def problem(self, value) -> str:
        return f"{self.requirement} is required"


#: meta fields: name -> (rule, value of files that lack it; REQUIRED: every version has it).
#: The settings' fields come from the parameter table (:data:`distlda.params.PARAMS`); these
#: are the Gibbs state's.
FIELDS: dict = {
    **file_fields(),
    "num_terms": (Integer(0), REQUIRED),
    "eta": (FINITE, REQUIRED),
    "rng_state": (OfType(dict), REQUIRED),
    "id2word": (_Id2word(), REQUIRED),
    # added to version 1 with alpha="auto" (7c14653), without a bump
    "sweeps_done": (Integer(0), 0),
    # version 2
    "num_docs": (Integer(0), None),
    "num_tokens": (Integer(0), None),
    # version 3
    "eta_kind": (OneOf("scalar", "word", "topic_word"), "scalar"),
    # version 4: a model trained on a cluster from a shard set names the set and the
    # checkpoints of its topic assignments (distlda.gibbs.assignments) instead of holding them
    "shards": (Optional(OfType(dict)), None),
}

#: arrays: name -> (dtype, ndim)
ARRAYS = {
    "alpha": (np.float64, 1),
    "nwk": (np.int32, 2),
    "nk": (np.int32, 1),
    "words": (np.int32, 1),
    "topics": (np.int32, 1),
    "doc_lens": (np.int64, 1),
    "chunk_docs": (np.int64, 1),
}
#: arrays that files of before a version lack: name -> (dtype, ndim, first version)
NEW_ARRAYS = {"eta": (np.float64, 2, 3)}


def write_archive(meta: dict, arrays: dict) -> bytes:
    """The bytes of a model file: ``meta`` (JSON) and ``arrays``, compressed."""
    members = dict(meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    buf = io.BytesIO()
    np.savez_compressed(buf, **members)
    return buf.getvalue()


def read_archive(data: bytes, fname: str) -> tuple[dict, dict]:
    """Parse and check a model file's bytes.

    Returns
    -------
    meta : dict
        Every field of :data:`FIELDS`, defaults filled in for older versions, checked.
    arrays : dict of str to ndarray
        Every array of :data:`ARRAYS`, of its dtype and rank (shapes are checked by the caller
        against ``meta``).

    Raises
    ------
    ModelFileError
        Naming ``fname`` and what is wrong.
    """
    def fail(msg):
        return ModelFileError(f"{fname}: {msg}")

    if data[:4] != b"PK\x03\x04":
        kind = "empty" if not data else "not a zip/npz archive"
        raise fail(f"not a distlda model file ({kind})")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = set(zf.namelist())
    except Exception as e:  # BadZipFile, NotImplementedError (a bad version field), EOFError...
        raise fail(f"damaged model file: the archive cannot be read ({_why(e)})") from None
    if "meta.npy" not in names:
        raise fail("not a distlda model file (no 'meta' entry)")
    raw = _read_member(zf, "meta", np.uint8, 1, len(data), fail)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise fail("damaged model file: its metadata is not valid JSON") from None
    out = _check_meta(meta, fail)
    arrays = {}
    for name, (dtype, ndim) in ARRAYS.items():
        if name + ".npy" not in names:
            raise fail(f"damaged model file: the array {name!r} is missing")
        arrays[name] = _read_member(zf, name, dtype, ndim, len(data), fail)
    for name, (dtype, ndim, since) in NEW_ARRAYS.items():
        if name + ".npy" in names:
            arrays[name] = _read_member(zf, name, dtype, ndim, len(data), fail)
        elif meta["format_version"] >= since:
            raise fail(f"damaged model file: the array {name!r} is missing")
    return out, arrays


def _check_meta(meta, fail) -> dict:
    """Every field of :data:`FIELDS` from a file's metadata, checked, with the defaults of
    older versions filled in; ``fail(msg)`` makes the error to raise."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise fail("not a distlda model file (the metadata names no distlda.LdaModel format)")
    version = meta.get("format_version")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise fail(f"model file format version {version!r} is not supported; this distlda "
                   f"(format version {FORMAT_VERSION}) reads versions "
                   f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
                   + (": load it with a newer distlda" if isinstance(version, int)
                      and version > FORMAT_VERSION else ""))
    out = {}
    for name, (rule, default) in FIELDS.items():
        if name not in meta:
            if version == FORMAT_VERSION or default is REQUIRED:
                raise fail(f"damaged model file: its metadata lacks the field {name!r} "
                           f"(format version {version})")
            out[name] = default
            continue
        value = meta[name]
        if not rule.ok(value):
            raise fail(f"damaged model file: metadata field {name!r}: {rule.problem(value)}")
        out[name] = value
    return out


def _why(e: BaseException) -> str:
    msg = str(e)
    # numpy's own advice (allow_pickle=...) is wrong for a model file: never repeat it
    return type(e).__name__ if not msg or "pickle" in msg else f"{type(e).__name__}: {msg}"


def _read_member(zf: zipfile.ZipFile, name: str, dtype, ndim: int, archive_size: int, fail):
    """One ``.npy`` member, its header checked before its data is read."""
    info = zf.getinfo(name + ".npy")
    where = f"the array {name!r}"
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dt = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dt = np.lib.format.read_array_header_2_0(f)
            else:
                raise fail(f"damaged model file: {where} has npy version {version}")
            if dt != np.dtype(dtype) or dt.hasobject or len(shape) != ndim:
                raise fail(f"damaged model file: {where} is {dt} of rank {len(shape)}, "
                           f"expected {np.dtype(dtype)} of rank {ndim}")
            if any(not isinstance(n, int) or n < 0 for n in shape):
                raise fail(f"damaged model file: {where} has shape {shape}")
            need = int(np.prod(shape, dtype=object)) * dt.itemsize
            if need > info.file_size or need > _MAX_RATIO * max(archive_size, 1):
                raise fail(f"damaged model file: {where} claims {need} bytes, more than the "
                           f"archive can hold")
            buf = f.read(need + 1)  # reading past the end checks the member's CRC
    except ModelFileError:
        raise
    except Exception as e:  # zlib.error, BadZipFile (CRC), EOFError, ValueError (header), ...
        raise fail(f"damaged model file: {where} cannot be read ({_why(e)})") from None
    if len(buf) != need:
        raise fail(f"damaged model file: {where} holds {len(buf)} bytes, its header says {need}")
    arr = np.frombuffer(buf, dt).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr).copy()


# ---------------------------------------------------------------------- the model's side
def save_model(model, fname: str, with_id2word: bool = True) -> None:
    """Write ``model`` (:meth:`distlda.models.LdaModel.save`; ``with_id2word=False``: without
    its vocabulary)."""
    import smart_open

    from distlda import __version__
    st = model.state
    meta = dict(format=FORMAT, format_version=FORMAT_VERSION, distlda_version=__version__,
                **model.spec.to_dict(),
                num_topics=st.num_topics, num_terms=st.num_terms, eta=st.beta,
                eta_kind=("scalar" if st.eta_kw is None else
                          "word" if st.eta_kw.shape[1] == 1 else "topic_word"),
                sweeps_done=st.sweeps_done, rng_state=model.rng.bit_generator.state,
                id2word=([[int(i), str(w)] for i, w in model.id2word.items()]
                         if model.id2word and with_id2word else None),
                num_docs=st.num_docs, num_tokens=st.num_tokens,
                shards=None if st.shards is None else st.shards.to_dict())
    arrays = dict(
        alpha=np.asarray(st.alpha, np.float64), nwk=st.nwk, nk=st.nk,
        eta=(np.zeros((0, 0)) if st.eta_kw is None else np.ascontiguousarray(st.eta_kw.T)),
        words=_concat([c.words for c in st.chunks], np.int32),
        topics=_concat([c.topics for c in st.chunks], np.int32),
        doc_lens=_concat([np.diff(c.doc_ptr) for c in st.chunks], np.int64),
        chunk_docs=np.array([c.num_docs for c in st.chunks], np.int64))
    data = write_archive(meta, arrays)
    with smart_open.open(fname, "wb") as f:
        f.write(data)
    logger.info("saved LdaModel to %s", fname)


def load_model(cls, fname: str):
    """Read a model of class ``cls`` (:meth:`distlda.models.LdaModel.load`)."""
    import smart_open
    with smart_open.open(fname, "rb") as f:
        data = f.read()
    meta, arrays = read_archive(data, fname)
    try:
        return model_from_saved(cls, meta, arrays)
    except ValueError as e:
        raise ModelFileError(f"{fname}: damaged model file: {e}") from None


def model_from_saved(cls, meta: dict, arrays: dict):
    """The model of a checked :func:`~distlda.persistence.read_archive` result: its spec
    (``ModelSpec.from_dict``) and Gibbs state through ``cls.from_state``, the one way a
    model is assembled; ValueError when the parts do not fit together."""
    K, V = meta["num_topics"], meta["num_terms"]
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = meta["rng_state"]
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"metadata field 'rng_state' is not a PCG64 state ({e!r})") from None
    beta = _saved_eta(K, V, meta, arrays.get("eta"))
    id2word = Vocabulary((int(i), w) for i, w in (meta["id2word"] or ()))
    id2word.check_width(V)  # before the arrays: the fields first, as files were always read
    state = _restore_state(K, V, arrays, meta, beta)
    return cls.from_state(ModelSpec.from_dict(meta), state, id2word, rng)


def _saved_eta(K: int, V: int, meta: dict, eta):
    """The topic-word prior of a file: its field, or its array for a non-uniform prior."""
    from distlda.params import _resolve_eta
    beta = _resolve_eta(float(meta["eta"]), K)  # the range check of every eta value
    if meta["eta_kind"] != "scalar":
        want = (1 if meta["eta_kind"] == "word" else K, V)
        if eta is None or eta.shape != want:
            raise ValueError(f"eta_kind {meta['eta_kind']!r} needs an eta array of shape "
                             f"{want}, the file has {None if eta is None else eta.shape}")
        beta = _resolve_eta(eta[0] if want[0] == 1 else eta, K, V)
        if np.ndim(beta) == 0:
            raise ValueError("the saved eta array is uniform: it would be saved as one value")
    return beta


def _restore_state(K: int, V: int, a: dict, meta: dict, beta):
    """The Gibbs state of a checked archive; ValueError when the arrays do not fit together."""
    from distlda.gibbs.chunks import MAX_TOKENS, Chunk
    from distlda.gibbs.state import GibbsState
    from distlda.params import _resolve_alpha
    if a["alpha"].shape != (K,):
        raise ValueError(f"alpha has shape {a['alpha'].shape}, expected ({K},)")
    alpha = _resolve_alpha(a["alpha"], K)
    if a["nwk"].shape != (V, K) or a["nk"].shape != (K,):
        raise ValueError(f"counts of shape {a['nwk'].shape} and {a['nk'].shape}, expected "
                         f"({V}, {K}) and ({K},)")
    words, topics, doc_lens, chunk_docs = a["words"], a["topics"], a["doc_lens"], a["chunk_docs"]
    N = words.shape[0]
    if topics.shape[0] != N or N > MAX_TOKENS:
        raise ValueError(f"{N} words but {topics.shape[0]} topics")
    if N and (words.min() < 0 or words.max() >= V or topics.min() < 0 or topics.max() >= K):
        raise ValueError(f"word ids outside [0, {V}) or topics outside [0, {K})")
    if (doc_lens < 0).any() or int(doc_lens.sum()) != N:
        raise ValueError(f"document lengths do not add up to the {N} tokens")
    if (chunk_docs < 0).any() or int(chunk_docs.sum()) != doc_lens.shape[0]:
        raise ValueError(f"chunk sizes do not add up to the {doc_lens.shape[0]} documents")
    shards = None
    if meta["shards"] is not None:
        from distlda.gibbs.assignments import ShardAssignments
        try:
            shards = ShardAssignments.from_dict(meta["shards"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"metadata field 'shards' is not a shard set's record ({e!r})") \
                from None
        if N:
            raise ValueError("a model of a shard set holds no tokens itself")
    held = (shards.num_docs, shards.num_tokens) if shards is not None else (0, 0)
    for key, value in (("num_docs", doc_lens.shape[0] + held[0]), ("num_tokens", N + held[1])):
        if meta[key] is not None and meta[key] != value:
            raise ValueError(f"the metadata says {key}={meta[key]}, the arrays hold {value}")
    chunks, tok, doc = [], 0, 0
    for nd in chunk_docs:
        ptr = np.concatenate(([0], np.cumsum(doc_lens[doc:doc + nd]))).astype(np.int64)
        n = int(ptr[-1])
        chunks.append(Chunk(words=words[tok:tok + n].copy(), doc_ptr=ptr,
                            topics=topics[tok:tok + n].copy()))
        tok += n
        doc += nd
    if shards is not None:  # the counts are the checkpoints': checked when they are read
        st = GibbsState(K, V, alpha, beta)
        if int(a["nk"].sum()) != shards.num_tokens or not np.array_equal(
                a["nwk"].sum(axis=0, dtype=np.int64), a["nk"]):
            raise ValueError("the counts do not add up to the shard set's tokens")
        st.nwk, st.nk, st.sweeps_done, st.shards = a["nwk"], a["nk"], meta["sweeps_done"], shards
        return st
    return GibbsState.restore(alpha, beta, a["nwk"], a["nk"], chunks, meta["sweeps_done"])


def _concat(arrays, dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)
