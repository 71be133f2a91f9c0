"""Run every compiled kernel once on small inputs (for tests/test_boundscheck.py).

Meant to run in a fresh process with ``NUMBA_BOUNDSCHECK=1``: any index out of range then
raises IndexError instead of reading or writing outside an array. Prints "ok" at the end.
"""

import numpy as np
from numba import njit

from distlda.evaluation import heldout_loglik
from distlda.gibbs import kernels as K_
from distlda.gibbs import mh as _mh
from distlda.gibbs import sampling
from distlda.gibbs.chunks import iter_chunks
from distlda.gibbs.state import GibbsState
from distlda.models import LdaModel


@njit
def _probe(a, i):
    return a[i]


def main():
    try:  # bounds checking is really on
        _probe(np.zeros(2), 5)
        raise SystemExit("NUMBA_BOUNDSCHECK is not in effect")
    except IndexError:
        pass
    rng = np.random.default_rng(0)
    docs = [[(int(w), int(c)) for w, c in zip(rng.integers(0, 30, 6), rng.integers(1, 4, 6))]
            for _ in range(40)] + [[], [(29, 1)]]
    K = 7
    chunks = list(iter_chunks(docs, None, 16))
    V = 30
    for prior, fb in ((0.1, None), (1e308, np.zeros(1, np.int64)), (float("nan"), None)):
        st = GibbsState(K, V, np.full(K, 0.1), 0.01)
        for i, c in enumerate(chunks):
            st.add_chunk(c, i)
        counts = np.zeros(V, np.int64)
        for c in st.chunks:
            counts += np.bincount(c.words, minlength=V)
        lists = K_.build_word_lists(st.nwk, counts)
        for c in st.chunks:
            args = (c.words, c.topics, c.doc_ptr, c.doc_ptr[:-1], c.doc_ptr[1:], st.nwk, st.nk,
                    *lists, np.full(K, prior), prior, prior * V, 3)
            K_.sweep_sparse(*args) if fb is None else K_.sweep_sparse(*args, fb)
        for c in st.chunks:
            assert 0 <= c.topics.min() and c.topics.max() < K
        K_.foldin(chunks[0].words, chunks[0].doc_ptr, st.nwk, 1.0 / (st.nk + prior * V), prior,
                  np.full(K, prior), 4, 2, 1, fb)
    c = st.chunks[0]
    K_.sort_doc_tokens(c.words, c.topics, c.doc_ptr)
    bp = K_.block_bounds(c.words, c.doc_ptr, np.array([0, 10, 20, V], np.int64))
    out = np.empty(c.num_tokens, np.int32)
    K_.gather_ranges(c.topics, bp[1], bp[2], out)
    K_.loglik_words(st.nwk, st.nk, 0.01, V)
    K_.loglik_docs(c.topics, c.doc_ptr, np.full(K, 0.1))
    K_.doc_topic_pairs(c.topics, c.doc_ptr, K)
    # MH, serial and with its phases on threads, local and sliced counts
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        for prior in (0.1, 1e308):
            for threads in (1, 2):
                st2 = GibbsState(K, V, np.full(K, 0.1), 0.01)
                for i, ch in enumerate(iter_chunks(docs, None, 16)):
                    st2.add_chunk(ch, i)
                opts = sampling.MhOptions(2, _mh.Workspace(), pool, threads)
                for it in range(2):
                    sampling.sweep(sampling.Tokens.of(st2.chunks), st2.nwk, st2.nk,
                                   sampling.Prior(np.full(K, prior), prior, prior * V), opts,
                                   [it])
    # the model end to end: sparse and MH, one and two threads, inference and evaluation
    for sampler in ("sparse", "dense", "mh"):
        for workers in (1, 2):
            lda = LdaModel(docs, num_topics=K, iterations=2, sampler=sampler, workers=workers,
                           random_state=1, distributed=False, chunksize=16,
                           inference_iterations=4, alpha=1e100, eta=1e-100)
            assert int(lda.sstats.sum()) == lda.num_tokens
            lda.fold_in(docs[:5])
    heldout_loglik(lda.get_topics(), lda.alpha, docs, iterations=4)
    print("ok")


if __name__ == "__main__":
    main()
