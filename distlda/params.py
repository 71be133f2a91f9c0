"""The rule of every ``LdaModel`` parameter, written once: each check names the parameter
and says what is allowed (and the model file reader applies the same rules)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

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


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"Invalid {name!r} parameter: {value!r} (an integer >= {minimum} is required)")
    return int(value)


def _check_prob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"Invalid {name!r} parameter: {value!r} (a number in [0, 1] is required)")
    return float(value)


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


def _check_prior_range(name: str, a: np.ndarray) -> None:
    ok = (a >= PRIOR_MIN) & (a <= PRIOR_MAX)  # False for NaN too
    if not np.all(ok):
        bad = a[~ok][0]
        raise ValueError(f"Invalid {name!r} parameter: {float(bad)!r} (every value must be a finite "
                         f"number in [{PRIOR_MIN:g}, {PRIOR_MAX:g}], where the sampler's float64 "
                         f"arithmetic cannot overflow)")


#: eta when the caller gives none (None): 0.01, the usual collapsed-Gibbs choice (Griffiths and
#: Steyvers 2004, MALLET), not gensim's 1/K: a small eta gives sparser, more distinct topics
#: and keeps the sparse sampler's word buckets small.
DEFAULT_ETA = 0.01


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
    if random_state is None or (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)):
        return np.random.default_rng(random_state)
    raise ValueError(f"Invalid 'random_state' parameter: {random_state!r} "
                     f"(use None, an int or a numpy Generator)")


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
