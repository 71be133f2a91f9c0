"""Held-out evaluation shared by the model and the benchmarks (any library's topics fit in).

Document completion (Wallach et al., "Evaluation methods for topic models", ICML 2009): each
held-out document's tokens are shuffled (seeded) and split in two halves; the document's
topic mixture is estimated by Gibbs fold-in on the first half with the topics fixed, and the
score is the log-likelihood of the second half under that mixture, per held-out token. It
depends only on (phi, alpha), so models from different samplers or libraries compare fairly.
"""

from __future__ import annotations

import numpy as np

from distlda.gibbs import kernels as K_
from distlda.gibbs.chunks import iter_chunks


def _split_halves(words: np.ndarray, doc_ptr: np.ndarray, rng: np.random.Generator):
    """Shuffle each document's tokens and split them into (observed, held-out) halves."""
    obs_w, obs_len, held_w, held_doc = [], [], [], []
    for d in range(doc_ptr.shape[0] - 1):
        toks = words[doc_ptr[d]:doc_ptr[d + 1]]
        if toks.shape[0] < 2:
            continue
        toks = rng.permutation(toks)
        half = toks.shape[0] // 2
        obs_w.append(toks[:half])
        obs_len.append(half)
        held_w.append(toks[half:])
        held_doc.append(np.full(toks.shape[0] - half, len(obs_len) - 1, np.int64))
    if not obs_len:
        return None
    obs_ptr = np.concatenate(([0], np.cumsum(obs_len))).astype(np.int64)
    return (np.concatenate(obs_w).astype(np.int32), obs_ptr,
            np.concatenate(held_w).astype(np.int64), np.concatenate(held_doc))


def heldout_loglik(phi, alpha, corpus, iterations: int = 50, burnin: int | None = None,
                   random_state=0, chunksize: int = 4096) -> float:
    """Per-token held-out log-likelihood by document completion.

    Parameters
    ----------
    phi : array-like of shape (K, V)
        Topic-word distributions of K topics over V words (rows sum to 1).
    alpha : float or array-like of shape (K,)
        Dirichlet prior of the document-topic mixtures.
    corpus : iterable of bag-of-words documents or scipy.sparse matrix
        Held-out documents; those with fewer than 2 tokens are skipped.
    iterations, burnin : int
        Fold-in sweeps on the observed half, and how many are discarded (default: half).
    random_state : int
        Seeds the split and the fold-in, so two models are scored on the same split.

    Returns
    -------
    float
        Sum over held-out tokens of log p(token | estimated mixture, phi), divided by their
        number (natural log; higher is better; perplexity is ``exp(-value)``).
    """
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim != 2:
        raise ValueError(f"phi must be a 2-d topics x words array, got shape {phi.shape}")
    num_topics, num_terms = phi.shape
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (num_topics,)).copy()
    if burnin is None:
        burnin = iterations // 2
    phi_t = np.ascontiguousarray(phi.T)
    ones = np.ones(num_topics)  # phi_t is p(word | topic) already: no offset, no scale
    rng = np.random.default_rng(random_state)
    total, count = 0.0, 0
    for chunk in iter_chunks(corpus, num_terms, chunksize):
        split = _split_halves(chunk.words, chunk.doc_ptr, rng)
        if split is None:
            continue
        obs_w, obs_ptr, held_w, held_doc = split
        theta = K_.foldin(obs_w, obs_ptr, phi_t, ones, 0.0, alpha, iterations, burnin,
                          int(rng.integers(2 ** 32)))
        total += K_.completion_loglik(theta, held_doc, held_w, phi_t)
        count += held_w.shape[0]
    if count == 0:
        raise ValueError("no held-out document has 2 or more tokens")
    return total / count
