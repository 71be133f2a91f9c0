"""Every message that crosses the cluster, as a named, frozen class.

Each class turns itself into msgpack-ready values (:meth:`to_wire`: dicts, lists, numbers,
strings and arrays as :mod:`distlda.cluster.codec` dicts) and back (:meth:`from_wire`), and
``from_wire`` checks every field once, on arrival: type, dtype, shape and range. A message
that breaks a rule raises :class:`ProtocolError` naming the message and the field, so the
state classes behind the transport only ever see well-formed values.

Who sends what::

    client -> dispatcher   SessionConfig (start_session), ChunkLoad (load), SweepRequest (sweep)
    dispatcher -> worker   SessionConfig (reset), ChunkLoad (load), ShardLoad (load_shards),
                           Job (sweep)
    worker -> dispatcher   JobResult (result), DenseSlice (counts)

A session whose corpus is a shard set (:class:`ShardSet` in its config) loads no chunk
through the dispatcher: the workers read their shards themselves (:class:`ShardLoad`), and
their results always say how the rows changed (the dispatcher keeps counts, not tokens).

A job's model slice is a :class:`DenseSlice` (the rows of every word of the worker's chunks)
or a :class:`SliceDelta` (what the other workers changed since the worker's last job:
:class:`RowChanges` or :class:`Moves` parts, forwarded as they were sent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from distlda.cluster import codec
from distlda.errors import LimitError, ProtocolError
from distlda.gibbs import sampling
from distlda.gibbs.chunks import MAX_TERMS, MAX_TOKENS, MAX_TOPICS
from distlda.params import PRIOR, PRIOR_MAX, PRIOR_MIN, Integer, Number, OneOf, Rule, bounded

#: What a dispatcher's ``ping`` says it is (the client checks it before sending any data).
DISPATCHER_SERVICE = "distlda.dispatcher/2"  # 2: sessions keep no token at the dispatcher

#: Samplers a session may run.
SAMPLERS = sampling.SAMPLERS


def _get(d, key: str, what: str):
    if not isinstance(d, dict):
        raise ProtocolError(f"{what}: expected a mapping, got {type(d).__name__}")
    try:
        return d[key]
    except KeyError:
        raise ProtocolError(f"{what}: missing field {key!r}") from None


def _array(obj, what: str, ndim: int | None = None, kind: str | None = None,
           copy: bool = False) -> np.ndarray:
    """A codec array, checked for its number of dimensions and dtype kind ("i", "u", "iu", "f")."""
    try:
        a = codec.dec(obj, copy=copy)
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"{what}: not an array ({e})") from None
    if ndim is not None and a.ndim != ndim:
        raise ProtocolError(f"{what}: expected {ndim} dimension(s), got shape {a.shape}")
    if kind is not None and a.dtype.kind not in kind:
        raise ProtocolError(f"{what}: expected dtype kind {kind!r}, got {a.dtype}")
    return a


def _in_range(a: np.ndarray, lo: int, hi: int, what: str) -> None:
    if a.size and (int(a.min()) < lo or int(a.max()) >= hi):
        raise ProtocolError(f"{what}: values outside [{lo}, {hi})")


def _int(v, what: str, lo: int = 0, hi: int | None = None) -> int:
    return int(_field(v, what, Integer(lo, hi)))  # the library's integer rule


# ---------------------------------------------------------------- plain arguments of remote calls
def arg_int(v, what: str, lo: int = 0, hi: int | None = None) -> int:
    """An integer argument of a remote call, or :class:`ProtocolError`."""
    return _int(v, what, lo, hi)


def arg_array(obj, what: str, ndim: int | None = None, kind: str | None = None,
              copy: bool = False) -> np.ndarray:
    """An array argument of a remote call (a codec dict), checked like a message field."""
    return _array(obj, what, ndim, kind, copy)


def arg_alpha(obj, num_topics: int, what: str) -> np.ndarray:
    """A document-topic prior: ``num_topics`` float numbers in [PRIOR_MIN, PRIOR_MAX] (a copy)."""
    a = _array(obj, what, 1, "f", copy=True)
    # vectorised: a job carries K values (PRIOR's range, as params._check_prior_range)
    if a.shape != (num_topics,) or not np.all((a >= PRIOR_MIN) & (a <= PRIOR_MAX)):
        raise ProtocolError(f"{what}: expected {num_topics} numbers in [{PRIOR_MIN:g}, "
                            f"{PRIOR_MAX:g}]")
    return a


def is_dispatcher(ping_answer) -> bool:
    """Whether a ``ping`` answer is a distlda dispatcher's (not a stale or an impostor's)."""
    return isinstance(ping_answer, dict) and ping_answer.get("service") == DISPATCHER_SERVICE


def arg_list(v, what: str, max_len: int = 1 << 20) -> list:
    if not isinstance(v, (list, tuple)) or len(v) > max_len:
        raise ProtocolError(f"{what}: expected a list of at most {max_len} items")
    return list(v)


def arg_float(v, what: str, lo: float, hi: float) -> float:
    """A finite number argument in [lo, hi] (the library's number rule)."""
    return float(_field(v, what, Number(lo, hi, f"a number in [{lo:g}, {hi:g}]")))


def arg_str(v, what: str, max_len: int = 128) -> str:
    if not isinstance(v, str) or len(v) > max_len:
        raise ProtocolError(f"{what}: expected a string of at most {max_len} characters")
    return v


def arg_ints(v, what: str, hi: int) -> list[int]:
    """A list of integers in [0, hi)."""
    if not isinstance(v, (list, tuple)) or not all(
            not isinstance(i, bool) and isinstance(i, int) and 0 <= i < hi for i in v):
        raise ProtocolError(f"{what}: expected a list of integers in [0, {hi})")
    return list(v)


#: A checkpoint file's name (:mod:`distlda.corpora.checkpoints`): nothing else is ever opened.
_CHECKPOINT_FILE = re.compile(r"z-\d{5,}-\d{8,}\.npy")


def _url(v, what: str) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= 2048 or "\x00" in v:
        raise ProtocolError(f"{what}: expected a URL or path of at most 2048 characters")
    return v


def _sorted_in_docs(words: np.ndarray, ptr: np.ndarray) -> bool:
    from distlda.cluster import _kernels as CK
    return bool(CK.sorted_in_docs(words, ptr))


def checkpoint_ref(ref, what: str, num_topics: int):
    """A checkpoint reference (:meth:`distlda.corpora.checkpoints.CheckpointStore.write`), or
    None: checked for its form (the worker that reads the file checks the rest)."""
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise ProtocolError(f"{what}: expected a checkpoint reference or None")
    name = _get(ref, "file", what)
    if not isinstance(name, str) or not _CHECKPOINT_FILE.fullmatch(name):
        raise ProtocolError(f"{what}.file: not a checkpoint file name")
    _int(_get(ref, "sweep", what), f"{what}.sweep")
    _int(_get(ref, "tokens", what), f"{what}.tokens", 0, MAX_TOKENS)
    sha = _get(ref, "sha256", what)
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ProtocolError(f"{what}.sha256: expected 64 hexadecimal digits")
    if ref.get("dir") is not None:
        _url(ref["dir"], f"{what}.dir")
    if _get(ref, "num_topics", what) != num_topics:
        raise ProtocolError(f"{what}: written for {ref.get('num_topics')!r} topics, the "
                            f"session has {num_topics}")
    return dict(ref)


@dataclass(frozen=True)
class ShardSet:
    """A session's corpus as a shard set (:class:`distlda.corpora.ShardedCorpus`) that the
    workers read themselves, and where its topic assignments are checkpointed.

    ``sizes``: tokens per shard (the manifest's); ``seeds``: per shard, the seed of its first
    topics; ``refs``: per shard, the checkpoint its topics start from (None: from its seed);
    ``sweep``: sweeps the model had done when the session began (checkpoints are numbered by
    the model's sweeps).

    ``inline``: the corpus is the client's, in memory: no set to read and no checkpoint; its
    chunks reach the workers through the dispatcher once, without staying there, and a lost
    worker's chunks come back from the client (``url`` and ``checkpoint`` are empty)."""

    url: str
    checkpoint: str
    sizes: tuple
    seeds: np.ndarray
    refs: tuple
    sweep: int = 0
    every: tuple = (10, 60.0, 20.0)  # checkpoints: every N sweeps or S seconds; the first after
    inline: bool = False

    @classmethod
    def of_chunks(cls, sizes, sweep: int) -> "ShardSet":
        """The inline set of a client's in-memory chunks of ``sizes`` tokens."""
        return cls("", "", tuple(int(n) for n in sizes), np.zeros(len(sizes), np.uint32),
                   (None,) * len(sizes), sweep, (2 ** 31 - 1, 1e9, 1e9), True)

    def to_wire(self) -> dict:
        return {"url": self.url, "checkpoint": self.checkpoint, "sizes": list(self.sizes),
                "seeds": codec.enc(np.asarray(self.seeds, np.uint32)), "refs": list(self.refs),
                "sweep": self.sweep, "every": list(self.every), "inline": self.inline}

    @classmethod
    def from_wire(cls, d, num_topics: int) -> "ShardSet":
        w = "session config.shards"
        inline = d.get("inline", False) is True
        url = "" if inline else _url(_get(d, "url", w), f"{w}.url")
        ckpt = "" if inline else _url(_get(d, "checkpoint", w), f"{w}.checkpoint")
        sizes = [_int(n, f"{w}.sizes", 0, MAX_TOKENS)
                 for n in arg_list(_get(d, "sizes", w), f"{w}.sizes")]
        seeds = _array(_get(d, "seeds", w), f"{w}.seeds", 1, "u", copy=True)
        refs = [checkpoint_ref(r, f"{w}.refs[{i}]", num_topics)
                for i, r in enumerate(arg_list(_get(d, "refs", w), f"{w}.refs"))]
        if not sizes or seeds.shape != (len(sizes),) or len(refs) != len(sizes):
            raise ProtocolError(f"{w}: needs one size, seed and reference per shard")
        for i, (r, n) in enumerate(zip(refs, sizes)):
            if r is not None and r["tokens"] != n:
                raise ProtocolError(f"{w}.refs[{i}]: {r['tokens']} topics for a shard of {n} "
                                    f"tokens")
        every = arg_list(d.get("every", [10, 60.0, 20.0]), f"{w}.every", 3)
        if len(every) != 3:
            raise ProtocolError(f"{w}.every: expected [sweeps, seconds, first seconds]")
        every_t = (_int(every[0], f"{w}.every", 1),
                   arg_float(every[1], f"{w}.every", 0, 1e9), arg_float(every[2], f"{w}.every", 0, 1e9))
        if inline and any(r is not None for r in refs):
            raise ProtocolError(f"{w}: an inline set has no checkpoint")
        return cls(url, ckpt, tuple(sizes), seeds, tuple(refs),
                   _int(d.get("sweep", 0), f"{w}.sweep"), every_t, inline)


@dataclass(frozen=True)
class ShardLoad:
    """Hold shard ``idx``: its tokens from ``words`` and ``doc_ptr`` (an inline set's, which
    come with every load), else read from the session's shard set; its topics from
    ``topics`` (moved from another worker, or an inline set's), else from the checkpoint
    ``ref``, else drawn from ``seed``."""

    idx: int
    seed: int
    ref: dict | None = None
    topics: np.ndarray | None = None
    words: np.ndarray | None = None
    doc_ptr: np.ndarray | None = None

    def to_wire(self, num_topics: int) -> dict:
        d = {"idx": self.idx, "seed": self.seed, "ref": self.ref,
             "topics": None if self.topics is None else codec.enc_topics(self.topics,
                                                                         num_topics)}
        if self.words is not None and self.doc_ptr is not None:
            d["words"], d["doc_ptr"] = codec.enc(self.words), codec.enc(self.doc_ptr)
        return d

    @classmethod
    def from_wire(cls, d, config: SessionConfig) -> "ShardLoad":
        w = "shard load"
        if config.shards is None:
            raise ProtocolError(f"{w}: the session has no shard set")
        idx = _int(_get(d, "idx", w), f"{w}.idx", 0, len(config.shards.sizes))
        w = f"shard load {idx}"
        seed = _int(_get(d, "seed", w), f"{w}.seed", 0, 2 ** 32)
        ref = checkpoint_ref(d.get("ref"), f"{w}.ref", config.num_topics)
        topics = d.get("topics")
        if topics is not None:
            topics = _array(topics, f"{w}.topics", 1, "iu")
            _in_range(topics, 0, config.num_topics, f"{w}.topics")
            if topics.shape[0] != config.shards.sizes[idx]:
                raise ProtocolError(f"{w}.topics: {topics.shape[0]} topics for a shard of "
                                    f"{config.shards.sizes[idx]} tokens")
            topics = topics.astype(np.int32)
        words = ptr = None
        if config.shards.inline:
            if topics is None or "words" not in d or "doc_ptr" not in d:
                raise ProtocolError(f"{w}: an inline set's load carries its tokens and topics")
            c = ChunkLoad.from_wire([idx, d["words"], d["doc_ptr"], d["topics"]], config)
            words, ptr = c.words, c.doc_ptr
            if not _sorted_in_docs(words, ptr):
                raise ProtocolError(f"{w}: tokens must be sorted by word id within each "
                                    f"document (distlda.gibbs.blocks.sort_for_blocks)")
        return cls(idx, seed, ref, topics, words, ptr)


@dataclass(frozen=True)
class SessionConfig:
    """A training's model shape, priors and corpus size, sent to the dispatcher and on to
    every worker. The same rules as ``LdaModel``'s apply to every field (K, V and the corpus
    within the library's limits, every prior in [``PRIOR_MIN``, ``PRIOR_MAX``]), and the
    declared corpus size bounds what a client may load into the session afterwards."""

    num_topics: int
    num_terms: int
    alpha: np.ndarray
    beta: float
    sampler: str = "sparse"
    mh_steps: int | None = None
    label: str = ""  # who trains, for messages to other clients (never a secret)
    num_chunks: int = 0   # the corpus the client will load: at most this many chunks ...
    num_tokens: int = 0   # ... and tokens
    shards: ShardSet | None = None  # where the corpus is: a shard set, or the client's chunks

    def to_wire(self) -> dict:
        d = {"num_topics": self.num_topics, "num_terms": self.num_terms,
             "alpha": codec.enc(np.asarray(self.alpha, np.float64)), "beta": self.beta,
             "sampler": self.sampler, "mh_steps": self.mh_steps, "label": self.label,
             "num_chunks": self.num_chunks, "num_tokens": self.num_tokens}
        if self.shards is not None:
            d["shards"] = self.shards.to_wire()
        return d

    def need_bytes(self) -> int:
        """Memory a process needs to hold this session: two dense int32 word-topic tables
        (the counts, and the last checkpoint's) and per-word and per-shard counters; no token
        is held centrally (a worker checks its own share when it loads shards)."""
        table = 4 * self.num_topics * self.num_terms + 16 * self.num_terms
        return 2 * table + 16 * self.num_chunks

    def staging_bytes(self) -> int:
        """The largest array of this session that may arrive in pieces: a slice of the
        counts, or chunks on their way to a worker (never more than the corpus)."""
        return self.need_bytes() + 12 * self.num_tokens

    def check_limits(self, max_bytes: int, who: str) -> None:
        """Raise :class:`LimitError` if holding this session would take more than
        ``max_bytes`` (checked before anything is allocated)."""
        if self.need_bytes() > max_bytes:
            raise LimitError(
                f"{who} refuses a session of {self.num_terms} words x {self.num_topics} topics "
                f"and {self.num_tokens} tokens: it needs {self.need_bytes() / 2**30:.2f} GiB, "
                f"more than the {max_bytes / 2**30:.2f} GiB it may use (--max-memory)")

    @classmethod
    def from_wire(cls, d) -> "SessionConfig":
        w = "session config"
        K = _field(_get(d, "num_topics", w), f"{w}.num_topics", SESSION_RULES["num_topics"])
        V = _field(_get(d, "num_terms", w), f"{w}.num_terms", SESSION_RULES["num_terms"])
        alpha = arg_alpha(_get(d, "alpha", w), K, f"{w}.alpha")
        beta = float(_field(_get(d, "beta", w), f"{w}.beta", SESSION_RULES["beta"]))
        sampler = d.get("sampler", "sparse")
        if not SESSION_RULES["sampler"].ok(sampler):
            raise ProtocolError(f"{w}.sampler: expected one of {SAMPLERS}, got {sampler!r}")
        mh = _field(d.get("mh_steps"), f"{w}.mh_steps", SESSION_RULES["mh_steps"])
        label = d.get("label", "")
        if not isinstance(label, str) or len(label) > 200:
            raise ProtocolError(f"{w}.label: expected a short string")
        tokens = _int(_get(d, "num_tokens", w), f"{w}.num_tokens", 0, MAX_TOKENS)
        chunks = _int(_get(d, "num_chunks", w), f"{w}.num_chunks", 0, max(tokens, 1))
        if d.get("shards") is None:  # an older client sent its chunks to be kept here
            raise ProtocolError(f"{w}: no shard set: the client is of an older distlda, whose "
                                f"corpus would stay in the dispatcher; upgrade it")
        shards = ShardSet.from_wire(d["shards"], K)
        if len(shards.sizes) != chunks or sum(shards.sizes) != tokens:
            raise ProtocolError(f"{w}.shards: {len(shards.sizes)} shards of "
                                f"{sum(shards.sizes)} tokens, but the session declares "
                                f"{chunks} chunks of {tokens} tokens")
        return cls(K, V, alpha, beta, sampler, mh, label, chunks, tokens, shards)


def _field(value, what: str, rule: Rule):
    """``value`` if ``rule`` accepts it, else :class:`ProtocolError` naming the field."""
    if not rule.ok(value):
        raise ProtocolError(f"{what}: expected {rule.requirement}, got {value!r}")
    return value


#: The rules of a session's fields: the library's (:data:`distlda.params.PARAMS`), bounded
#: by the sizes the samplers support.
SESSION_RULES: dict[str, Rule] = {
    "num_topics": bounded("num_topics", MAX_TOPICS),
    "num_terms": Integer(1, MAX_TERMS),
    "beta": PRIOR,
    "sampler": OneOf(*SAMPLERS),
    "mh_steps": bounded("mh_steps", 1000),
}


@dataclass(frozen=True)
class ChunkLoad:
    """One chunk's tokens and committed topics (``[idx, words, doc_ptr, topics]`` on the wire)."""

    idx: int
    words: np.ndarray
    doc_ptr: np.ndarray
    topics: np.ndarray

    def to_wire(self, num_topics: int) -> list:
        return [self.idx, codec.enc(self.words), codec.enc(self.doc_ptr),
                codec.enc_topics(self.topics, num_topics)]

    @classmethod
    def from_wire(cls, item, config: SessionConfig) -> "ChunkLoad":
        """Views of the message's arrays (the receiver copies what it keeps), checked."""
        w = "chunk"
        if not isinstance(item, (list, tuple)) or len(item) != 4:
            raise ProtocolError(f"{w}: expected [idx, words, doc_ptr, topics]")
        idx = _int(item[0], f"{w}.idx")
        w = f"chunk {idx}"
        words = _array(item[1], f"{w}.words", 1, "iu")
        doc_ptr = _array(item[2], f"{w}.doc_ptr", 1, "iu")
        topics = _array(item[3], f"{w}.topics", 1, "iu")
        _in_range(words, 0, config.num_terms, f"{w}.words")
        _in_range(topics, 0, config.num_topics, f"{w}.topics")
        if (doc_ptr.size < 1 or doc_ptr[0] != 0 or doc_ptr[-1] != words.size
                or np.any(np.diff(doc_ptr.astype(np.int64)) < 0) or topics.size != words.size):
            raise ProtocolError(f"{w}: malformed document offsets")
        return cls(idx, words, doc_ptr, topics.astype(np.int32))


@dataclass(frozen=True)
class RowChanges:
    """``delta[j]`` is added to the row of word ``words[j]`` (a worker's changed rows)."""

    words: np.ndarray
    delta: np.ndarray
    wire: dict | None = field(default=None, compare=False, repr=False)

    def to_wire(self) -> dict:
        wire = self.wire
        if wire is None:  # encoded once, however many workers it is forwarded to
            wire = {"words": codec.enc(self.words), "delta": codec.enc(self.delta)}
            object.__setattr__(self, "wire", wire)
        return wire

    @property
    def nbytes(self) -> int:
        return self.words.nbytes + self.delta.nbytes

    @classmethod
    def from_wire(cls, d, config: SessionConfig) -> "RowChanges":
        words = _array(_get(d, "words", "row changes"), "row changes.words", 1, "iu")
        delta = _array(_get(d, "delta", "row changes"), "row changes.delta", 2, "i")
        _in_range(words, 0, config.num_terms, "row changes.words")
        if delta.shape != (words.shape[0], config.num_topics):
            raise ProtocolError(f"row changes.delta: shape {delta.shape}, expected "
                                f"({words.shape[0]}, {config.num_topics})")
        return cls(words, delta, d)


@dataclass(frozen=True)
class Moves:
    """One token of word ``words[j]`` went from topic ``old[j]`` to ``new[j]``."""

    words: np.ndarray
    old: np.ndarray
    new: np.ndarray
    wire: dict | None = field(default=None, compare=False, repr=False)

    def to_wire(self) -> dict:
        wire = self.wire
        if wire is None:  # encoded once, however many workers it is forwarded to
            wire = {"words": codec.enc(self.words), "old": codec.enc(self.old),
                    "new": codec.enc(self.new)}
            object.__setattr__(self, "wire", wire)
        return wire

    @property
    def nbytes(self) -> int:
        return self.words.nbytes + self.old.nbytes + self.new.nbytes

    def only(self, keep: np.ndarray) -> "Moves":
        """The moves of the words ``keep`` marks (a bool array over the vocabulary)."""
        k = keep[self.words]
        return Moves(self.words[k], self.old[k], self.new[k])

    @classmethod
    def from_wire(cls, d, config: SessionConfig) -> "Moves":
        words = _array(_get(d, "words", "moves"), "moves.words", 1, "iu")
        old = _array(_get(d, "old", "moves"), "moves.old", 1, "iu")
        new = _array(_get(d, "new", "moves"), "moves.new", 1, "iu")
        if old.shape != words.shape or new.shape != words.shape:
            raise ProtocolError("moves: words, old and new of unequal lengths")
        _in_range(words, 0, config.num_terms, "moves.words")
        _in_range(old, 0, config.num_topics, "moves.old")
        _in_range(new, 0, config.num_topics, "moves.new")
        return cls(words, old, new, d)


Part = Union[RowChanges, Moves]


def part_from_wire(d, config: SessionConfig) -> Part:
    if not isinstance(d, dict):
        raise ProtocolError(f"row changes: expected a mapping, got {type(d).__name__}")
    return RowChanges.from_wire(d, config) if "delta" in d else Moves.from_wire(d, config)


@dataclass(frozen=True)
class DenseSlice:
    """The rows (int32[R, K]) of the sorted word ids ``rows`` (int32[R])."""

    rows: np.ndarray
    dense: np.ndarray

    def to_wire(self) -> dict:
        return {"rows": codec.enc(self.rows), "dense": codec.enc(self.dense)}


@dataclass(frozen=True)
class SliceDelta:
    """What the other workers changed since job ``base``, in ``parts``."""

    base: str
    parts: list

    def to_wire(self) -> dict:
        return {"base": self.base, "parts": [p.to_wire() for p in self.parts]}


@dataclass(frozen=True)
class Job:
    """A worker's job: resample chunks ``idxs`` (their block only, with ``blocks``).

    ``model`` brings the worker's model slice to the current counts, ``check`` (with
    ``DISTLDA_CHECK=1``) is the dense slice to verify it against. ``blocks`` is ``(cuts, of)``:
    resample only the tokens of chunk ``idxs[j]`` whose words lie in ``cuts[b] <= w <
    cuts[b+1]`` with ``b = of[j]``. ``peers``: other workers hold rows, so the result must say
    how this job changed them.
    """

    job: str
    idxs: list
    model: Union[DenseSlice, SliceDelta]
    nk: np.ndarray
    seeds: np.ndarray
    alpha: np.ndarray
    blocks: tuple | None = None
    peers: bool = True
    check: np.ndarray | None = None

    def to_wire(self) -> dict:
        model = self.model.to_wire()
        if self.check is not None:
            model["check"] = codec.enc(self.check)
        blocks = None if self.blocks is None else {"cuts": codec.enc(self.blocks[0]),
                                                   "of": list(self.blocks[1])}
        return {"job": self.job, "idxs": list(self.idxs), "model": model,
                "nk": codec.enc(self.nk), "seeds": codec.enc(self.seeds),
                "alpha": codec.enc(self.alpha), "blocks": blocks, "peers": bool(self.peers)}

    @classmethod
    def from_wire(cls, d, config: SessionConfig) -> "Job":
        w = "job"
        job = _get(d, "job", w)
        if not isinstance(job, str):
            raise ProtocolError(f"{w}.job: expected a string")
        idxs = _get(d, "idxs", w)
        if not isinstance(idxs, list):
            raise ProtocolError(f"{w}.idxs: expected a list")
        idxs = [_int(i, f"{w}.idxs") for i in idxs]
        K = config.num_topics
        m = _get(d, "model", w)
        if isinstance(m, dict) and "dense" in m:
            rows = _array(m["rows"], f"{w}.model.rows", 1, "i")
            _in_range(rows, 0, config.num_terms, f"{w}.model.rows")
            dense = _array(m["dense"], f"{w}.model.dense", None, "i")
            if dense.size != rows.shape[0] * K:
                raise ProtocolError(f"{w}.model.dense: {dense.size} cells for {rows.shape[0]} rows")
            model: Union[DenseSlice, SliceDelta] = DenseSlice(rows, dense.reshape(rows.shape[0], K))
        else:
            base = _get(m, "base", f"{w}.model")
            parts = _get(m, "parts", f"{w}.model")
            if not isinstance(parts, list):
                raise ProtocolError(f"{w}.model.parts: expected a list")
            model = SliceDelta(str(base), [part_from_wire(p, config) for p in parts])
        check = m.get("check")
        if check is not None:
            check = _array(check, f"{w}.model.check", None, "i")
        nk = _array(_get(d, "nk", w), f"{w}.nk", 1, "i", copy=True)
        seeds = _array(_get(d, "seeds", w), f"{w}.seeds", 1, "iu")
        if nk.shape != (K,) or seeds.shape != (len(idxs),):
            raise ProtocolError(f"{w}: nk or seeds of the wrong length")
        alpha = _array(_get(d, "alpha", w), f"{w}.alpha", 1, "f", copy=True)
        if alpha.shape != (K,) or not np.all(alpha > 0):
            raise ProtocolError(f"{w}.alpha: expected {K} positive numbers")
        blocks = d.get("blocks")
        if blocks is not None:
            cuts = np.ascontiguousarray(_array(_get(blocks, "cuts", w), f"{w}.blocks.cuts", 1,
                                               "i"), np.int32)
            of = _get(blocks, "of", w)
            if not isinstance(of, list) or len(of) != len(idxs):
                raise ProtocolError(f"{w}.blocks.of: needs one block per chunk")
            B = cuts.shape[0] - 1
            of = [_int(b, f"{w}.blocks.of") for b in of]
            if any(b >= B for b in of):
                raise ProtocolError(f"{w}.blocks.of: block outside [0, {B})")
            blocks = (cuts, of)
        return cls(job, idxs, model, nk, seeds, alpha, blocks, bool(d.get("peers", True)), check)


#: Timing fields a result carries (seconds), for the dispatcher's per-job records.
TIMINGS = ("seconds", "cpu_seconds", "update_seconds", "pack_seconds", "job_seconds")


@dataclass(frozen=True)
class JobResult:
    """A job's result: how it changed the rows, as :class:`RowChanges` (changed rows) or
    :class:`Moves` (each moved token's word, old and new topic) parts; never the topics, which
    stay on the worker. ``tokens``: the job's tokens, ``moved``: those whose topic changed."""

    job: str
    tokens: int
    moved: int
    delta: list
    timings: dict = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {"job": self.job, "tokens": self.tokens, "moved": self.moved,
                "delta": [p.to_wire() for p in self.delta], **self.timings}


def result_from_wire(d, config: SessionConfig) -> JobResult:
    """A worker's result, checked for its form; the values are checked by the ledger
    (:mod:`distlda.cluster.ledger`). Malformed input raises :class:`ProtocolError`, and
    nothing else."""
    w = "result"
    job, tokens, moved = _get(d, "job", w), _get(d, "tokens", w), _get(d, "moved", w)
    timings = {k: float(d[k]) for k in TIMINGS if isinstance(d.get(k), (int, float))}
    delta = arg_list(_get(d, "delta", w), f"{w}.delta")
    return JobResult(job, _int(tokens, f"{w}.tokens", 0, MAX_TOKENS),
                     _int(moved, f"{w}.moved", 0, MAX_TOKENS),
                     [part_from_wire(p, config) for p in delta], timings)
