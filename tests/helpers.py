"""Shared test helpers: a seeded planted-topic LDA corpus, topic-recovery scoring, waiting."""

import threading
import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment


def planted_corpus(D=1000, V=500, K=10, L=100, alpha=0.1, beta=0.05, seed=0):
    """Documents drawn from the LDA generative model with known topics.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (D, V), int64 counts
    phi : ndarray of shape (K, V), the planted topics
    """
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.full(V, beta), size=K)
    theta = rng.dirichlet(np.full(K, alpha), size=D)
    z = (rng.random((D, L))[..., None] > np.cumsum(theta, axis=1)[:, None, :]).sum(-1)
    z = np.minimum(z, K - 1)
    cum_phi = np.cumsum(phi, axis=1)
    u = rng.random((D, L))
    w = np.empty((D, L), np.int64)
    for k in range(K):
        m = z == k
        w[m] = np.minimum(np.searchsorted(cum_phi[k], u[m] * cum_phi[k, -1], side="right"), V - 1)
    rows = np.repeat(np.arange(D), L)
    X = sp.csr_matrix((np.ones(D * L, np.int64), (rows, w.ravel())), shape=(D, V))
    X.sum_duplicates()
    return X, phi


def topic_recovery(phi_learned, phi_true):
    """Mean cosine similarity of learned to planted topics after Hungarian matching."""
    a = phi_learned / np.linalg.norm(phi_learned, axis=1, keepdims=True)
    b = phi_true / np.linalg.norm(phi_true, axis=1, keepdims=True)
    cos = a @ b.T
    r, c = linear_sum_assignment(-cos)
    return float(cos[r, c].mean())


def to_bow(X):
    """A CSR matrix as a list of gensim-style bag-of-words documents."""
    X = sp.csr_matrix(X)
    return [list(zip(X.indices[X.indptr[d]:X.indptr[d + 1]].tolist(),
                     X.data[X.indptr[d]:X.indptr[d + 1]].tolist())) for d in range(X.shape[0])]


def assert_exact(lda, n_tokens):
    """sstats sums to the token count and equals the counts recomputed from the assignments."""
    assert lda.sstats.sum() == n_tokens
    nwk, nk = lda.state.recount()
    np.testing.assert_array_equal(nwk.T, lda.sstats)
    np.testing.assert_array_equal(nk, lda.sstats.sum(axis=1))


def run_in_thread(fn):
    """Run ``fn`` in a thread; returns (thread, box) where box gets 'result' or 'error'."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # re-raised by the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def wait_for(cond, timeout, what):
    """Poll ``cond()`` until true; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise TimeoutError(what)
