"""Learning the document-topic prior alpha from the Gibbs state (``alpha="auto"``).

Minka's fixed-point iteration for a Dirichlet-multinomial, computed from histograms of the
document-topic counts as MALLET does (Wallach, "Structured topic models", 2008, ch. 2):

    alpha_k <- alpha_k * sum_d [psi(n_dk + alpha_k) - psi(alpha_k)]
                       / sum_d [psi(N_d + alpha_0) - psi(alpha_0)]

The histograms make each iteration cost the number of distinct (topic, count) pairs, not the
number of documents.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma

from distlda.gibbs import kernels as K_

_STRIDE = 1 << 32


def count_histograms(chunks, num_topics: int):
    """Histograms of n_dk per topic and of document lengths N_d over all chunks.

    Returns
    -------
    pair_topic, pair_count, pair_freq : int64 arrays, one entry per distinct non-zero (k, n_dk)
    len_value, len_freq : int64 arrays, one entry per distinct non-empty document length
    """
    parts = [K_.doc_topic_pairs(c.topics, c.doc_ptr, num_topics) for c in chunks]
    codes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    uniq, freq = np.unique(codes, return_counts=True)
    lens = np.concatenate([np.diff(c.doc_ptr) for c in chunks]) if chunks else np.zeros(0, np.int64)
    len_value, len_freq = np.unique(lens[lens > 0], return_counts=True)
    return uniq // _STRIDE, uniq % _STRIDE, freq, len_value, len_freq


def optimize_alpha(alpha: np.ndarray, histograms, iterations: int = 200, tol: float = 1e-6,
                   floor: float = 1e-6) -> np.ndarray:
    """Minka's fixed point for alpha given the count histograms of :func:`count_histograms`.

    Parameters
    ----------
    alpha : ndarray of shape (num_topics,)
        Starting point (the current prior).
    histograms : tuple
        Output of :func:`count_histograms`.
    iterations, tol : int, float
        Stop after this many iterations or when no alpha_k moves by more than ``tol`` relatively.
    floor : float
        Lower bound on every alpha_k (a topic no document uses would otherwise go to 0).

    Returns
    -------
    ndarray of shape (num_topics,)
    """
    pk, pn, pf, lv, lf = histograms
    alpha = np.asarray(alpha, dtype=np.float64).copy()
    if lv.size == 0:
        return alpha
    K = alpha.shape[0]
    for _ in range(iterations):
        a0 = alpha.sum()
        den = float(np.sum(lf * (digamma(lv + a0) - digamma(a0))))
        num = np.bincount(pk, weights=pf * (digamma(pn + alpha[pk]) - digamma(alpha[pk])),
                          minlength=K)
        new = np.maximum(alpha * num / den, floor)
        done = np.max(np.abs(new - alpha) / alpha) < tol
        alpha = new
        if done:
            break
    return alpha
