"""The rule of every ``LdaModel`` parameter, written once: each check names the parameter
and says what is allowed (and the model file reader applies the same rules)."""

from __future__ import annotations

import numbers

import numpy as np

#: Accepted range of every prior value (each alpha_k and eta). Inside it no product or sum the
#: samplers form can overflow or underflow float64 (the largest, alpha_k * eta and
#: (n_dk + alpha_k)(n_k + V eta), stay below 1e210; the smallest, alpha_k eta / (n_k + V eta)
#: with n_k < 2**31, above 1e-210), whatever the corpus within the token and vocabulary
#: limits. Outside it the constructor raises ValueError naming the parameter.
PRIOR_MIN = 1e-100
PRIOR_MAX = 1e100


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"Invalid {name!r} parameter: {value!r} (an integer >= {minimum} is required)")
    return int(value)


def _check_prob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"Invalid {name!r} parameter: {value!r} (a number in [0, 1] is required)")
    return float(value)


def _resolve_alpha(alpha, num_topics: int) -> np.ndarray:
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
    if not np.all((a >= PRIOR_MIN) & (a <= PRIOR_MAX)):  # False for NaN too
        bad = a[~((a >= PRIOR_MIN) & (a <= PRIOR_MAX))][0]
        raise ValueError(f"Invalid 'alpha' parameter: {float(bad)!r} (every value must be a finite number "
                         f"in [{PRIOR_MIN:g}, {PRIOR_MAX:g}], where the sampler's float64 "
                         f"arithmetic cannot overflow)")
    return np.ascontiguousarray(a)


def _resolve_eta(eta, num_topics: int) -> float:
    if eta is None:
        return 0.01
    if isinstance(eta, str):
        if eta == "symmetric":
            return 1.0 / num_topics
        raise ValueError(f"Invalid 'eta' parameter: {eta!r} (use a positive number or 'symmetric')")
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
        raise ValueError(f"Invalid 'eta' parameter: {eta!r} (a positive scalar is required; "
                         f"per-word eta is not supported)")
    if not PRIOR_MIN <= eta <= PRIOR_MAX:  # False for NaN too
        raise ValueError(f"Invalid 'eta' parameter: {eta!r} (must be a finite number in "
                         f"[{PRIOR_MIN:g}, {PRIOR_MAX:g}], where the sampler's float64 "
                         f"arithmetic cannot overflow)")
    return float(eta)


def _resolve_rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state.integers(2 ** 63))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2 ** 31))
    if random_state is None or (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)):
        return np.random.default_rng(random_state)
    raise ValueError(f"Invalid 'random_state' parameter: {random_state!r} "
                     f"(use None, an int or a numpy Generator)")


def _resolve_id2word(id2word) -> dict:
    if id2word is None:
        return {}
    if hasattr(id2word, "items"):
        items = id2word.items()
    elif isinstance(id2word, (list, tuple)):
        items = enumerate(id2word)
    else:
        raise ValueError(f"Invalid 'id2word' parameter: {type(id2word).__name__} "
                         f"(use a Dictionary, a dict of id -> word, or a list of words)")
    out = {}
    for i, w in items:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0:
            raise ValueError(f"Invalid 'id2word' parameter: word id {i!r} is not a non-negative integer")
        out[int(i)] = str(w)
    if not out:
        raise ValueError("Invalid 'id2word' parameter: the vocabulary is empty")
    return out


def _is_single_doc(obj) -> bool:
    """True for one bag-of-words document (a list of (id, count) pairs), as gensim decides."""
    if not isinstance(obj, (list, tuple)):
        return False
    if len(obj) == 0:
        return True
    first = obj[0]
    return (isinstance(first, (tuple, list)) and len(first) == 2
            and all(isinstance(x, numbers.Number) for x in first))


