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



def outcome(t, box, timeout: float):
    """Wait at most ``timeout`` s for a :func:`run_in_thread` call: its result, or its error
    raised here."""
    t.join(timeout)
    assert not t.is_alive(), f"still running after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["result"]

def wait_for(cond, timeout, what):
    """Poll ``cond()`` until true; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


class ZipfCorpus:
    """A seeded synthetic corpus with Zipf-like word frequencies, generated block by block
    (never held whole): what :meth:`distlda.corpora.ShardedCorpus.write` and the benchmarks
    stream.

    Each token is, with probability ``background``, a word of one Zipf law over the ids
    (word id = rank: id 0 the most frequent), else a word of its document's topic (drawn from
    the document's Dirichlet(``alpha``) mixture of ``num_topics`` topics), each topic the same
    Zipf law over its own random permutation of the ids. Documents have Poisson(``doc_len``)
    tokens (at least 1). The same arguments give the same corpus, whatever the reader's
    chunk size.

    Parameters
    ----------
    num_docs, num_terms, doc_len : int
        Documents, vocabulary size V (ids ``0..V-1``), mean tokens a document.
    num_topics : int
        Topics of the generating model (not the K trained).
    s : float
        Zipf exponent.
    background, alpha : float
        Share of background tokens; document-topic Dirichlet concentration.
    seed : int
        Seed of everything.
    """

    BLOCK = 1024  # documents a generated block (fixed, so the corpus is chunk-size independent)

    def __init__(self, num_docs: int, num_terms: int, doc_len: int, num_topics: int = 50,
                 s: float = 1.05, background: float = 0.5, alpha: float = 0.1, seed: int = 0):
        if num_docs < 1 or num_terms < 2 or doc_len < 1 or num_topics < 1:
            raise ValueError(f"ZipfCorpus needs num_docs >= 1, num_terms >= 2, doc_len >= 1 and "
                             f"num_topics >= 1, got {num_docs}, {num_terms}, {doc_len}, "
                             f"{num_topics}")
        self.num_docs, self.num_terms, self.doc_len = num_docs, num_terms, doc_len
        self.num_topics, self.background, self.alpha, self.seed = (num_topics, background,
                                                                   alpha, seed)
        p = 1.0 / np.arange(1, num_terms + 1, dtype=np.float64) ** s
        self._cdf = np.cumsum(p / p.sum())
        self._cdf[-1] = 1.0
        self._perm = None

    def _perms(self) -> np.ndarray:
        if self._perm is None:
            rng = np.random.default_rng([self.seed, 1 << 30])
            self._perm = np.stack([rng.permutation(self.num_terms).astype(np.int32)
                                   for _ in range(self.num_topics)])
        return self._perm

    def blocks(self):
        """Yield the corpus as CSR blocks of :attr:`BLOCK` documents (int64 counts)."""
        perm, K = self._perms(), self.num_topics
        for b, first in enumerate(range(0, self.num_docs, self.BLOCK)):
            rng = np.random.default_rng([self.seed, b])
            nd = min(self.BLOCK, self.num_docs - first)
            lens = np.maximum(rng.poisson(self.doc_len, nd), 1)
            doc = np.repeat(np.arange(nd), lens)
            rank = np.minimum(np.searchsorted(self._cdf, rng.random(doc.size), side="right"),
                              self.num_terms - 1)
            cum = np.cumsum(rng.dirichlet(np.full(K, self.alpha), size=nd), axis=1)
            z = np.minimum((rng.random(doc.size)[:, None] > cum[doc]).sum(1), K - 1)
            words = np.where(rng.random(doc.size) < self.background, rank, perm[z, rank])
            X = sp.csr_matrix((np.ones(doc.size, np.int64), (doc, words)),
                              shape=(nd, self.num_terms))
            X.sum_duplicates()
            yield X

    def iter_csr(self, chunksize: int = 4096):
        """The reader interface :func:`distlda.gibbs.chunks.iter_chunks` streams."""
        return self.blocks()

    def matrix(self) -> sp.csr_matrix:
        """The whole corpus as one CSR matrix (documents x V)."""
        return sp.vstack(list(self.blocks()), format="csr")
