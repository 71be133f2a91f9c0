"""The rule of every ``LdaModel`` parameter, written once: each check names the parameter
and says what is allowed (and the model file reader applies the same rules)."""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from distlda.vocabulary import Vocabulary

#: Accepted range of every prior value (each alpha_k and eta). Inside it no product or sum the
#: samplers form can overflow or underflow float64 (the largest, alpha_k * eta and
#: (n_dk + alpha_k)(n_k + V eta), stay below 1e210; the smallest, alpha_k eta / (n_k + V eta)
#: with n_k < 2**31, above 1e-210), whatever the corpus within the token and vocabulary
#: limits. Outside it the constructor raises ValueError naming the parameter.
PRIOR_MIN = 1e-100
PRIOR_MAX = 1e100

#: The samplers a model (and a cluster session) runs, and what ``sampler=`` accepts ("auto"
#: is resolved by :func:`distlda.gibbs.sampling.choose_sampler`). Here, with no compiled
#: code, so that the command line and the model file reader check names without loading it.
SAMPLERS = ("sparse", "dense", "mh")
SAMPLER_CHOICES = ("auto", *SAMPLERS)


#: eta when the caller gives none (None): 0.01, the usual collapsed-Gibbs choice (Griffiths and
#: Steyvers 2004, MALLET), not gensim's 1/K: a small eta gives sparser, more distinct topics
#: and keeps the sparse sampler's word buckets small.
DEFAULT_ETA = 0.01


# ---------------------------------------------------------------------- rules
class Rule:
    """What a value of a setting must be: one vocabulary for the constructor, the model file,
    the command line and the cluster's session message (each words its own error around
    :attr:`requirement`)."""

    #: What is required, as a noun phrase ("an integer >= 1").
    requirement = "a value"

    def ok(self, value) -> bool:
        raise NotImplementedError

    def problem(self, value) -> str:
        """What ``value`` fails, the first requirement first (the model file reader's
        words)."""
        return f"{self.requirement} is required, got {value!r}"

    def convert(self, value):
        """The value as the model keeps it (called after :meth:`ok`)."""
        return value

    def invalid(self, name: str, value) -> str:
        """The constructor's error message."""
        return f"Invalid {name!r} parameter: {value!r} ({self.requirement} is required)"

    def check(self, name: str, value):
        """``value`` converted, or ValueError naming ``name`` and the requirement."""
        if not self.ok(value):
            raise ValueError(self.invalid(name, value))
        return self.convert(value)


class Integer(Rule):
    """An int (not a bool) >= ``lo``, and <= ``hi`` or < ``below`` when given."""

    def __init__(self, lo: int, hi: int | None = None, below: int | None = None):
        self.lo, self.hi, self.below = lo, hi, below
        self.requirement = (f"an integer in [{lo}, {hi}]" if hi is not None else
                            f"an integer >= {lo}" + ("" if below is None else f" and < {below}"))

    def ok(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        n = int(value)
        return (n >= self.lo and (self.hi is None or n <= self.hi)
                and (self.below is None or n < self.below))

    def convert(self, value) -> int:
        return int(value)


class Number(Rule):
    """A finite real number (not a bool) in [``lo``, ``hi``]."""

    def __init__(self, lo: float = -np.inf, hi: float = np.inf, requirement: str = ""):
        self.lo, self.hi = lo, hi
        self.requirement = requirement or "a finite number"

    def ok(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        try:
            x = float(value)
            return math.isfinite(x) and self.lo <= x <= self.hi
        except OverflowError:  # an int beyond float64
            return False

    def problem(self, value) -> str:
        requirement = self.requirement if FINITE.ok(value) else FINITE.requirement
        return f"{requirement} is required, got {value!r}"

    def convert(self, value) -> float:
        return float(value)


class OneOf(Rule):
    """One of ``choices`` (of the same type: ``1`` is not ``True``)."""

    def __init__(self, *choices, use: str = ""):
        self.choices = choices
        self.requirement = f"one of {choices!r}"
        self.use = use or "one of " + ", ".join(map(repr, choices))

    def ok(self, value) -> bool:
        return any(value is c or (isinstance(value, type(c)) and not isinstance(value, bool)
                                  and value == c) for c in self.choices)

    def invalid(self, name: str, value) -> str:
        return f"Invalid {name!r} parameter: {value!r} (use {self.use})"


class OfType(Rule):
    """An instance of ``types`` (a bool only where ``bool`` is one of them)."""

    def __init__(self, *types: type):
        self.types = types
        self.requirement = "a " + " or ".join(t.__name__ for t in types)

    def ok(self, value) -> bool:
        return isinstance(value, self.types) and (bool in self.types
                                                  or not isinstance(value, bool))

    def problem(self, value) -> str:
        return f"{self.requirement} is required, got {type(value).__name__}"


class Optional(Rule):
    """None, or a value ``rule`` accepts."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.requirement = rule.requirement

    def ok(self, value) -> bool:
        return value is None or self.rule.ok(value)

    def problem(self, value) -> str:
        return self.rule.problem(value)

    def convert(self, value):
        return None if value is None else self.rule.convert(value)


FINITE = Number()
FRACTION = Number(0.0, 1.0, "a number in [0, 1]")
#: One prior value (each alpha_k, a scalar eta): see :data:`PRIOR_MIN`.
PRIOR = Number(PRIOR_MIN, PRIOR_MAX, f"a number in [{PRIOR_MIN:g}, {PRIOR_MAX:g}]")


def _resolve_alpha(alpha, num_topics: int) -> np.ndarray:
    if alpha is None:  # gensim: None is symmetric
        alpha = "symmetric"
    if isinstance(alpha, str):
        if alpha == "symmetric":
            return np.full(num_topics, 1.0 / num_topics)
        if alpha == "asymmetric":
            a = 1.0 / (np.arange(num_topics) + np.sqrt(num_topics))
            return a / a.sum()
        raise ValueError(f"Invalid 'alpha' parameter: {alpha!r} (use 'symmetric', 'asymmetric', 'auto', "
                         f"a positive number or {num_topics} positive numbers)")
    if isinstance(alpha, bool):
        raise ValueError(f"Invalid 'alpha' parameter: {alpha!r}")
    try:
        a = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"Invalid 'alpha' parameter: {alpha!r}") from None
    if a.ndim == 0:
        a = np.full(num_topics, float(a))
    if a.shape != (num_topics,):
        raise ValueError(f"Invalid 'alpha' parameter: shape {a.shape}, expected ({num_topics},)")
    _check_prior_range("alpha", a)
    return np.ascontiguousarray(a)


def refuse_auto(name: str, value) -> None:
    """Raise ValueError for ``"auto"`` assigned to a prior after construction: learning is
    chosen when the model is made (the training schedule is set up then)."""
    if isinstance(value, str) and value == "auto":
        raise ValueError(f"Invalid {name!r} value: 'auto' (learning {name}) is chosen when the "
                         f"model is made, LdaModel(..., {name}='auto'); assign a prior itself "
                         f"here (a number, or an array of them)")


def _check_prior_range(name: str, a: np.ndarray) -> None:
    ok = (a >= PRIOR_MIN) & (a <= PRIOR_MAX)  # False for NaN too
    if not np.all(ok):
        bad = a[~ok][0]
        raise ValueError(f"Invalid {name!r} parameter: {float(bad)!r} (every value must be a finite "
                         f"number in [{PRIOR_MIN:g}, {PRIOR_MAX:g}], where the sampler's float64 "
                         f"arithmetic cannot overflow)")




def _resolve_eta(eta, num_topics: int, num_terms: int | None = None):
    """The topic-word prior as a float (one value for every topic and word) or an ndarray.

    Returns a float for None (:data:`DEFAULT_ETA`), "symmetric" (1/K), "auto" (1/K, the start
    of the learned value) and any scalar; a float64 array of shape (V,) for a per-word vector
    and (K, V) for a topic-word matrix. An array whose values are all equal becomes that float
    (the same prior, on the sampler's fast path).

    Raises
    ------
    ValueError
        Any other string, a value out of [PRIOR_MIN, PRIOR_MAX], a vector whose length is not
        ``num_terms`` (when known) or a matrix not of shape (num_topics, num_terms).
    """
    if eta is None:
        return DEFAULT_ETA
    if isinstance(eta, str):
        if eta in ("symmetric", "auto"):
            return 1.0 / num_topics
        raise ValueError(f"Invalid 'eta' parameter: {eta!r} (use 'symmetric', 'auto', a positive "
                         f"number, a vector of one value per word or a topics x words matrix)")
    if isinstance(eta, bool):
        raise ValueError(f"Invalid 'eta' parameter: {eta!r}")
    if isinstance(eta, numbers.Real):
        _check_prior_range("eta", np.array([float(eta)]))
        return float(eta)
    try:
        a = np.array(eta, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"Invalid 'eta' parameter: {type(eta).__name__} (use a positive number, "
                         f"a vector of one value per word or a topics x words matrix)") from None
    if a.ndim == 0:
        return _resolve_eta(float(a), num_topics, num_terms)
    V = a.shape[-1]
    if a.ndim > 2 or (a.ndim == 2 and a.shape[0] != num_topics) or V == 0 \
            or (num_terms and V != num_terms):
        want = f"({num_terms},) or ({num_topics}, {num_terms})" if num_terms else \
            f"(num_terms,) or ({num_topics}, num_terms)"
        raise ValueError(f"Invalid 'eta' parameter: shape {a.shape}, expected {want} "
                         f"(one value per word, or one per topic and word)")
    _check_prior_range("eta", a)
    if np.all(a == a.flat[0]):
        return float(a.flat[0])
    return np.ascontiguousarray(a)


def _resolve_rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state.integers(2 ** 63))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2 ** 31))
    if random_state is None or (isinstance(random_state, numbers.Integral)
                                and not isinstance(random_state, bool) and int(random_state) >= 0):
        return np.random.default_rng(None if random_state is None else int(random_state))
    raise ValueError(f"Invalid 'random_state' parameter: {random_state!r} "
                     f"(use None, an int >= 0 or a numpy Generator)")


def _vocabulary_items(id2word):
    """(id, word) pairs of any reasonable vocabulary, or a ValueError naming what it got."""
    if isinstance(id2word, (str, bytes)):
        raise ValueError(f"Invalid 'id2word' parameter: a single string {id2word[:40]!r} (use "
                         f"a Dictionary, a dict of id -> word, or a sequence of words)")
    if isinstance(id2word, (set, frozenset)):
        raise ValueError("Invalid 'id2word' parameter: a set has no order, so it cannot give word "
                         "ids (use a list, e.g. sorted(words))")
    if isinstance(id2word, np.ndarray):
        if id2word.ndim != 1:
            raise ValueError(f"Invalid 'id2word' parameter: an array of shape {id2word.shape} "
                             f"(a 1-D array of words is required, e.g. "
                             f"CountVectorizer.get_feature_names_out())")
        return enumerate(id2word.tolist())
    items = getattr(id2word, "items", None)
    if callable(items):  # dict, gensim or distlda Dictionary, pandas Series, any Mapping
        return items()
    if isinstance(id2word, Iterable):  # list, tuple, range of words, pandas Index, a generator
        return enumerate(id2word)
    raise ValueError(f"Invalid 'id2word' parameter: {type(id2word).__name__} (use a Dictionary, "
                     f"a dict of id -> word, or a sequence or 1-D array of words)")


def _resolve_id2word(id2word) -> Vocabulary:
    """The model's vocabulary from any reasonable form (see :class:`~distlda.vocabulary.Vocabulary`).

    Accepted: None (empty), a gensim or distlda ``Dictionary``, a mapping of int -> str, any
    sequence or iterable of words, a 1-D numpy array of words (scikit-learn's
    ``get_feature_names_out()``). Words are str (numpy strings and bytes, decoded as UTF-8,
    too); ids non-negative integers. Anything else raises ValueError naming the problem.
    """
    if id2word is None:
        return Vocabulary()
    out = {}
    for i, w in _vocabulary_items(id2word):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0:
            raise ValueError(f"Invalid 'id2word' parameter: word id {i!r} is not a non-negative integer")
        if isinstance(w, bytes):
            try:
                w = w.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"Invalid 'id2word' parameter: word {w[:40]!r} of id {i} is "
                                 f"not UTF-8") from None
        elif not isinstance(w, (str, numbers.Number)) or isinstance(w, bool):
            raise ValueError(f"Invalid 'id2word' parameter: the word of id {i} is "
                             f"{type(w).__name__} {w!r:.60} (words must be strings)")
        out[int(i)] = str(w)
    if not out:
        raise ValueError("Invalid 'id2word' parameter: the vocabulary is empty")
    dfs, cfs = getattr(id2word, "dfs", None), getattr(id2word, "cfs", None)
    return Vocabulary(out, dfs if isinstance(dfs, dict) else None,
                      cfs if isinstance(cfs, dict) else None,
                      getattr(id2word, "num_docs", 0) if isinstance(dfs, dict) else 0)


def _is_single_doc(obj) -> bool:
    """True for one document, False for a corpus.

    One document is a bag of words (a list or tuple of (word_id, count) pairs, or ``[]``), a
    scipy sparse row (a 1 x V matrix) or a 1-D numpy array of V counts. A sparse matrix of
    several rows, a 2-D array and an iterable of documents are corpora.

    Raises
    ------
    TypeError
        For a string or anything else that is neither a document nor iterable.
    """
    if isinstance(obj, (str, bytes)):
        raise TypeError(f"a string is not a document: tokenize it and convert it with "
                        f"dictionary.doc2bow(tokens), got {obj[:40]!r}")
    if sp.issparse(obj):
        return obj.shape[0] == 1
    if isinstance(obj, np.ndarray):
        return obj.ndim == 1
    if not isinstance(obj, (list, tuple)):
        if not isinstance(obj, Iterable):
            raise TypeError(f"expected a document (a list of (word_id, count) pairs, a sparse "
                            f"1 x V row or a 1-D array of V counts) or a corpus of them, got "
                            f"{type(obj).__name__}")
        return False
    if len(obj) == 0:
        return True
    first = obj[0]
    if isinstance(first, str):  # one tokenised document: the bag-of-words check names it
        return True
    return (isinstance(first, (tuple, list)) and len(first) == 2
            and all(isinstance(x, numbers.Number) for x in first))


def _as_bow(doc, num_terms: int | None, where: str):
    """A sparse row (1 x V) or a 1-D array of V counts as (word_id, count) pairs; any other
    document is returned as it is (the bag-of-words checks come later).

    Raises
    ------
    ValueError
        A sparse matrix of several rows, or a row or count array whose width is not the
        model's vocabulary size (``where`` names the document).
    """
    if sp.issparse(doc):
        if doc.ndim == 2 and doc.shape[0] != 1:
            raise ValueError(f"{where}: a sparse matrix of shape {doc.shape} is a corpus, not a "
                             f"document (a document is one row, shape (1, V))")
        row = sp.csr_matrix(doc.reshape(1, -1))
        width = row.shape[1]
        row.sum_duplicates()
        ids, counts = row.indices, row.data
    elif isinstance(doc, np.ndarray) and (doc.ndim == 1 or (doc.ndim == 2 and doc.shape[0] == 1
                                                              and doc.shape[1] != 2)):
        row = doc.reshape(-1)
        width = row.shape[0]
        ids = np.flatnonzero(row)
        counts = row[ids]
    else:
        return doc
    if num_terms is not None and width != num_terms:
        raise ValueError(f"{where}: a count vector of {width} words for a vocabulary of "
                         f"{num_terms} (vectorise with the vocabulary the model was trained on)")
    return list(zip(ids.tolist(), counts.tolist()))


# ---------------------------------------------------------------------- the table
#: ``Param.older`` of a field every model file version has.
REQUIRED = object()


@dataclass(frozen=True)
class Cli:
    """How ``distlda train`` offers a setting."""

    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    type: Callable | None = int
    dest: str | None = None  # the argparse name, when not the parameter's
    group: str = "model"  # "model" or "execution": the help section
    fixed_on_resume: bool = True  # --resume keeps the saved model's value: giving it is an error
    choices: tuple | None = None
    default: Any = REQUIRED  # REQUIRED: the library's


@dataclass(frozen=True)
class Param:
    """One setting of :class:`~distlda.models.LdaModel`, written once.

    ``rule`` checks what the constructor is given, or ``resolver`` turns it into what the
    model keeps (neither: the constructor resolves it against K and V, as alpha and eta);
    ``none`` is what None stands for (:data:`REQUIRED`: None is checked like any value). A
    ``saved`` setting is the model file field of its name, checked by ``file_rule``
    (default ``rule``); ``since`` is the format version whose files have it, and a file
    without it takes ``older``. ``in_spec``: kept in :class:`ModelSpec`. ``cli``: the
    option of ``distlda train``, if any.
    """

    name: str
    default: Any
    rule: Rule | None
    cli: Cli | None = None
    none: Any = REQUIRED
    saved: bool = True
    file_rule: Rule | None = None
    since: int = 1
    older: Any = REQUIRED
    in_spec: bool = True
    resolver: Callable[[Any], Any] | None = None

    @property
    def cli_default(self):
        """The command line's default (the library's unless the table says otherwise)."""
        assert self.cli is not None, self.name
        return self.default if self.cli.default is REQUIRED else self.cli.default

    def resolve(self, value):
        """The constructor's ``value`` as the model keeps it, or ValueError naming it."""
        if self.resolver is not None:
            return self.resolver(value)
        if value is None and self.none is not REQUIRED:
            return self.none
        return value if self.rule is None else self.rule.check(self.name, value)

    @property
    def stored(self) -> Rule:
        """The rule of the model file field."""
        rule = self.file_rule or self.rule
        assert rule is not None, self.name
        return rule


_DTYPES = (np.float16, np.float32, np.float64)


def check_dtype(dtype) -> type:
    """gensim's ``dtype`` keyword as a numpy float type (float16, float32 or float64)."""
    try:
        t = np.dtype(dtype).type
    except TypeError:
        t = None
    if t not in _DTYPES:
        raise ValueError(f"Invalid 'dtype' parameter: {dtype!r} (use np.float16, np.float32 or "
                         f"np.float64)")
    return t


def resolve_ns_conf(ns_conf) -> dict:
    """The name server's location, ``ns_conf``: None or a dict of ``host``, ``port`` and
    ``broadcast`` (gensim's ``hmac_key`` is dropped with a warning: Pyro5 has none, use TLS).

    Raises
    ------
    ValueError
        Anything else, naming the parameter.
    """
    if ns_conf is not None and not isinstance(ns_conf, dict):
        raise ValueError(f"Invalid 'ns_conf' parameter: {ns_conf!r} (a dict such as "
                         f"dict(host='10.0.0.1', port=9090) is required)")
    conf = dict(ns_conf or {})
    if "hmac_key" in conf:
        logging.getLogger("distlda.cluster.client").warning(
            "ns_conf: ignoring hmac_key (Pyro5 has none; see docs/security.rst)")
        del conf["hmac_key"]
    unknown = set(conf) - {"host", "port", "broadcast"}
    if unknown:
        raise ValueError(f"Invalid 'ns_conf' parameter: unknown key(s) {sorted(unknown)} "
                         f"(distlda uses host, port and broadcast)")
    return conf


_DISTRIBUTED = OneOf(None, True, False, use="None, True or False")


def _checkpoint_url(value) -> str | None:
    """``checkpoint=``: None (beside the shard set) or a folder or fsspec URL."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"checkpoint must be a folder or an fsspec URL (s3://bucket/path), got "
                         f"{value!r}")
    return value


def _checkpoint_every(value) -> tuple:
    """``checkpoint_every=(sweeps, seconds)``: a shard set's assignments are checkpointed
    every ``sweeps`` sweeps or ``seconds`` seconds, whichever comes first."""
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and Integer(1).ok(value[0]) and Number(0.0, 1e9, "").ok(value[1]))
    if not ok:
        raise ValueError(f"checkpoint_every must be (sweeps, seconds): an integer >= 1 and a "
                         f"number of seconds >= 0, got {value!r}")
    return (int(value[0]), float(value[1]))


def _distributed(value):
    """None, True or False (a numpy bool too: a flag read from an array or a DataFrame)."""
    return _DISTRIBUTED.check("distributed", bool(value) if isinstance(value, np.bool_)
                              else value)


_SAMPLER_HELP = ("'dense': exact, O(K) in vector instructions, fastest below K=1000; 'sparse': "
                 "exact SparseLDA; 'mh': Metropolis-Hastings, faster sweeps at large K; 'auto': "
                 "dense below K=1000, mh from there")

#: Every setting of LdaModel: its default, rule, command-line option and model file field. The
#: constructor, :class:`ModelSpec`, the model file's fields (:mod:`distlda.persistence`), the
#: ``train`` command's options (:mod:`distlda.cli`) and the cluster's session message
#: (:class:`~distlda.cluster.messages.SessionConfig`) are derived from it. CLI options appear
#: in this order. Adding a setting: a row here, its use, its tests.
PARAMS: tuple[Param, ...] = (
    Param("num_topics", 100, Integer(1), Cli(("-k", "--num-topics"), "number of topics", "K",
                                             default=20), in_spec=False),
    Param("iterations", 200, Integer(0),
          Cli(("-i", "--iterations"), "Gibbs sweeps to run (with --resume: sweeps to add)",
              "N", fixed_on_resume=False)),
    Param("alpha", "symmetric", None,
          Cli(("--alpha",), "document-topic prior: 'symmetric' (1/K), "
              "'asymmetric', 'auto' (learned from the data every --optimize-interval sweeps) "
              "or a number", type=None), saved=False, in_spec=False),
    Param("eta", None, None, Cli(("--eta",), "topic-word prior", "ETA", float,
                                 default=DEFAULT_ETA),
          saved=False, in_spec=False),
    Param("optimize_interval", 10, Integer(1),
          Cli(("--optimize-interval",),
              "with --alpha auto: re-estimate alpha every N sweeps", "N"), older=10),
    Param("optimize_burnin", 20, Integer(0),
          Cli(("--optimize-burnin",),
              "with --alpha auto: first sweep at which alpha is re-estimated", "N"), older=20),
    Param("sampler", "auto", OneOf(*SAMPLER_CHOICES),
          Cli(("--sampler",), _SAMPLER_HELP, type=None, choices=SAMPLER_CHOICES),
          older="sparse"),
    Param("mh_steps", None, Optional(Integer(1)),
          Cli(("--mh-steps",),
              "Metropolis-Hastings steps per token and phase (default 2)", "N"), older=None),
    Param("chunksize", 2000, Integer(1),
          Cli(("--chunksize",), "documents per chunk, the unit of work of threads and "
              "cluster workers", "DOCS")),
    Param("random_state", None, None, Cli(("--seed",), "random seed", "N", dest="seed",
                                          default=42),
          saved=False, in_spec=False),
    Param("workers", None, Integer(1),
          Cli(("--threads", "--workers"),
              "threads for in-process training (default: all cores)", "N", dest="threads",
              group="execution", fixed_on_resume=False)),
    Param("eval_every", 10, Integer(0),
          Cli(("--eval-every",),
              "log speed and log-likelihood every N sweeps (0: never evaluate)", "N",
              group="execution", fixed_on_resume=False), none=0),
    Param("passes", None, Integer(1), none=1, since=3, older=1),
    Param("minimum_probability", 0.01, FRACTION),
    Param("minimum_phi_value", 0.01, FRACTION, since=3, older=0.01),
    Param("per_word_topics", False, None, file_rule=OfType(bool), since=3, older=False,
          resolver=bool),
    Param("dtype", np.float64, None, file_rule=OneOf("float16", "float32", "float64"),
          since=3, older="float64", resolver=check_dtype),
    Param("inference_iterations", 50, Integer(1)),
    Param("distributed", None, _DISTRIBUTED, resolver=_distributed),
    Param("ns_conf", None, None, file_rule=OfType(dict), resolver=resolve_ns_conf),
    Param("tls", None, None, saved=False),
    # where a shard set's topic assignments are checkpointed (saved with the shard set's
    # record in the model file, not as a setting)
    Param("checkpoint", None, None, saved=False, resolver=_checkpoint_url),
    Param("checkpoint_every", (10, 60.0), None, saved=False, resolver=_checkpoint_every),
    Param("progress", None, None, saved=False),
    Param("optimize_alpha", False, OfType(bool), older=False),
    Param("optimize_eta", False, OfType(bool), since=3, older=False),
    Param("fixed_vocab", False, OfType(bool)),
    Param("infer_seed", 0, Integer(0, below=2 ** 32)),
)
PARAM = {p.name: p for p in PARAMS}


def _default(name: str):
    return field(default=PARAM[name].default)


@dataclass(frozen=True)
class ModelSpec:
    """The settings of a model, resolved once: what :attr:`LdaModel.spec` holds.

    Every field is a row of :data:`PARAMS` and was checked by its rule. The prior, K and V
    are not here: the Gibbs state owns them. ``fixed_vocab`` (V set by ``id2word`` or an eta
    array), ``infer_seed`` (fold-in's seed, drawn once) and ``optimize_alpha``/``_eta`` (the
    priors given as "auto") are resolved by the constructor. Change a setting with
    :meth:`replace`, which checks it by the same rule.
    """

    chunksize: int = _default("chunksize")
    iterations: int = _default("iterations")
    passes: int = 1
    eval_every: int = _default("eval_every")
    minimum_probability: float = _default("minimum_probability")
    minimum_phi_value: float = _default("minimum_phi_value")
    per_word_topics: bool = _default("per_word_topics")
    dtype: type = _default("dtype")
    inference_iterations: int = _default("inference_iterations")
    workers: int = 1
    sampler: str = _default("sampler")
    mh_steps: int | None = _default("mh_steps")
    distributed: bool | None = _default("distributed")
    ns_conf: dict = field(default_factory=dict)
    tls: Any = _default("tls")
    checkpoint: str | None = _default("checkpoint")
    checkpoint_every: tuple = _default("checkpoint_every")
    progress: bool | None = _default("progress")
    optimize_alpha: bool = _default("optimize_alpha")
    optimize_eta: bool = _default("optimize_eta")
    optimize_interval: int = _default("optimize_interval")
    optimize_burnin: int = _default("optimize_burnin")
    fixed_vocab: bool = _default("fixed_vocab")
    infer_seed: int = _default("infer_seed")

    def __post_init__(self) -> None:
        # a spec made directly (not by resolve) holds only what the table's rules allow
        for p in PARAMS:
            if p.in_spec and p.rule is not None and not p.rule.ok(getattr(self, p.name)):
                raise ValueError(p.rule.invalid(p.name, getattr(self, p.name)))

    @classmethod
    def resolve(cls, **given) -> "ModelSpec":
        """A spec of the given constructor values, each checked once by its rule."""
        return cls(**_resolved(given))

    def replace(self, **changes) -> "ModelSpec":
        """This spec with ``changes``, checked by their rules."""
        return dataclasses.replace(self, **_resolved(changes))

    def to_dict(self) -> dict:
        """The model file's fields of this spec (JSON values)."""
        out = {p.name: getattr(self, p.name) for p in PARAMS if p.in_spec and p.saved}
        out["dtype"] = np.dtype(self.dtype).name
        return out

    @classmethod
    def from_dict(cls, fields: dict) -> "ModelSpec":
        """The spec of a model file's checked fields (:func:`~distlda.persistence.read_archive`)."""
        kept = {p.name: fields[p.name] for p in PARAMS if p.in_spec and p.saved}
        kept["dtype"] = np.dtype(kept["dtype"]).type
        return cls(**kept)


def _resolved(given: dict) -> dict:
    return {name: PARAM[name].resolve(value) for name, value in given.items()}


def bounded(name: str, hi: int) -> Rule:
    """The integer rule of setting ``name``, with ``hi`` as its largest value too (for a
    receiver whose sizes are bounded, as the cluster's session message)."""
    rule = PARAM[name].rule
    inner = rule.rule if isinstance(rule, Optional) else rule
    assert isinstance(inner, Integer), name
    out = Integer(inner.lo, hi)
    return Optional(out) if isinstance(rule, Optional) else out


def file_fields() -> dict:
    """The model file fields of the settings: name -> (rule, value of files without it)."""
    return {p.name: (p.stored, p.older) for p in PARAMS if p.saved}
