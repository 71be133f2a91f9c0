"""The exact dense sampler (``sampler="dense"``, :func:`distlda.gibbs.kernels.sweep_dense`):
the enumerated posterior, exact counts, fallbacks, planted-topic recovery, and what "auto"
picks (its draws against the exact conditional and its vocabulary blocks are tested with the
sparse sampler's, in test_gibbs_sparse.py)."""

import numpy as np
import pytest

from distlda.gibbs import kernels as K_
from distlda.gibbs import sampling
from distlda.gibbs.local import LocalExecutor
from distlda.models import LdaModel

import reference as ref
from helpers import planted_corpus, topic_recovery
from test_gibbs_mh import counts, long_run, planted_state, random_chunks, sweep


def test_dense_sampler_samples_the_enumerated_posterior():
    docs = [[0, 0, 1], [1, 2, 2], [0, 3], [3, 3, 1]]
    V, K = 4, 3
    alpha = np.array([0.3, 0.6, 0.2])
    beta = 0.3
    marg, same = ref.exact_marginals(docs, V, K, alpha, beta)
    got_marg, got_same = long_run(docs, V, K, alpha, beta, "dense", 30000, split=2)
    assert np.abs(got_marg - marg).max() < 0.02
    assert np.abs(got_same - same).max() < 0.02


@pytest.mark.parametrize("K, spread", [(9, 3), (17, 17)])
def test_dense_run_of_one_word_draws_the_exact_joint_step(K, spread):
    """Three tokens of one word in a row (the masses are kept over the run and patched for the
    topics each token changed): after one step, their new topics must follow the Gibbs chain
    p(z0') p(z1' | z0') p(z2' | z0', z1'), each factor the exact conditional given the tokens
    already moved. A patch missed (a stale mass for the previous token's old or new topic)
    moves some cell by many standard deviations."""
    rng = np.random.default_rng(K + spread)
    V, n_doc, run = 4, 40, 3
    doc = rng.integers(0, V, n_doc).astype(np.int32)
    doc[:run] = 1
    topics = rng.integers(0, spread, n_doc).astype(np.int32)
    other_w = rng.integers(0, V, 800).astype(np.int32)
    other_t = rng.integers(0, spread, 800).astype(np.int32)
    alpha = rng.uniform(0.05, 0.5, K)
    beta = 0.05
    nwk = np.zeros((V, K), np.int32)
    nk = np.zeros(K, np.int32)
    K_.count_assignments(doc, topics, nwk, nk, 1)
    K_.count_assignments(other_w, other_t, nwk, nk, 1)
    want = np.ones((K,) * run)       # the chain's law of (z0', z1', z2'), by enumeration
    for cell in np.ndindex(*want.shape):
        z, a, b = topics.copy(), nwk.copy(), nk.copy()
        for i, k in enumerate(cell):
            want[cell] *= ref.conditional(z, i, 1, a, b, alpha, beta, V)[k]
            a[1, z[i]] -= 1
            b[z[i]] -= 1
            z[i] = k
            a[1, k] += 1
            b[k] += 1
    doc_ptr = np.array([0, n_doc], np.int64)
    lo, hi = np.array([0], np.int64), np.array([run], np.int64)
    got = np.zeros_like(want)
    n = 40000
    for seed in range(n):
        t, a, b = topics.copy(), nwk.copy(), nk.copy()
        K_.sweep_dense(doc, t, doc_ptr, lo, hi, a, b, alpha, beta, V * beta, seed)
        got[tuple(t[:run])] += 1
    # the pairs (z0', z1') and (z1', z2') and each cell within 5 binomial deviations
    for g, w in [(got, want), (got.sum(2), want.sum(2)), (got.sum(0), want.sum(0))]:
        assert np.all(np.abs(g / n - w) < 5 * np.sqrt(w * (1 - w) / n) + 5e-4)


def test_dense_counts_exact_after_every_sweep():
    rng = np.random.default_rng(4)
    V, K = 40, 19
    chunks = random_chunks(rng, 3, V, K)
    nwk, nk = counts(chunks, V, K)
    alpha = rng.uniform(0.05, 1.0, K)
    before = [c[1].copy() for c in chunks]
    for _ in range(10):
        sweep(chunks, nwk, nk, alpha, 0.01, 0.01 * V, rng, sampler="dense")
        want_nwk, want_nk = counts(chunks, V, K)
        np.testing.assert_array_equal(nwk, want_nwk)
        np.testing.assert_array_equal(nk, want_nk)
    assert any((b != c[1]).any() for b, c in zip(before, chunks))
    assert all(c[1].min() >= 0 and c[1].max() < K for c in chunks)


@pytest.mark.parametrize("total", [np.inf, np.nan, 0.0])
def test_dense_non_finite_or_zero_mass_falls_back_to_valid_topics(total):
    """alpha = inf or NaN (refused by the model, set here directly) or alpha = beta = 0: the
    draw falls back to a uniform topic, counted, and the counts stay exact."""
    rng = np.random.default_rng(1)
    V, K = 10, 5
    (words, topics, doc_ptr), = random_chunks(rng, 1, V, K)
    nwk, nk = counts([(words, topics, doc_ptr)], V, K)
    alpha = np.full(K, total)
    fallbacks = np.zeros(1, np.int64)
    K_.sweep_dense(words, topics, doc_ptr, doc_ptr[:-1], doc_ptr[1:], nwk, nk, alpha,
                   total, total * V, 5, fallbacks)
    assert fallbacks[0] > 0
    assert topics.min() >= 0 and topics.max() < K
    want_nwk, want_nk = counts([(words, topics, doc_ptr)], V, K)
    np.testing.assert_array_equal(nwk, want_nwk)
    np.testing.assert_array_equal(nk, want_nk)


@pytest.mark.parametrize("workers", [1, 2])
def test_dense_recovers_planted_topics(workers):
    X, phi = planted_corpus(D=400, V=300, K=6, L=60, seed=3)
    state = planted_state(X, phi.shape[0], seed=1)
    LocalExecutor(workers, sampler="dense").run(state, 60, np.random.default_rng(2),
                                                lambda it: None)
    learned = (state.nwk.T + state.beta) / (state.nk[:, None] + state.vbeta)
    assert topic_recovery(learned, phi) >= 0.9
    nwk, nk = state.recount()
    np.testing.assert_array_equal(state.nwk, nwk)
    np.testing.assert_array_equal(state.nk, nk)


def test_dense_and_sparse_reach_the_same_fit():
    """Both exact: after equal sweeps from equal starts, their joint log-likelihoods agree
    within the chains' spread (they differ in random numbers only)."""
    X, _ = planted_corpus(D=300, V=200, K=5, L=50, seed=2)
    ll = {}
    for sampler in ("sparse", "dense"):
        lda = LdaModel(X, num_topics=5, iterations=40, sampler=sampler, random_state=4,
                       distributed=False, workers=1)
        ll[sampler] = lda.log_likelihood_per_token()
    assert abs(ll["sparse"] - ll["dense"]) < 0.02, ll


def test_auto_picks_dense_at_small_K_and_mh_at_large_K():
    assert sampling.choose_sampler(100, 150.0) == "dense"
    assert sampling.choose_sampler(100, 37.0) == "dense"
    assert sampling.choose_sampler(100, 720.0) == "dense"
    # measured (choose_sampler's table): dense to K=700 on the real corpora, MH at K=1000
    assert sampling.choose_sampler(700, 37.0) == "dense"
    assert sampling.choose_sampler(999, 720.0) == "dense"
    assert sampling.choose_sampler(1000, 150.0) == "mh"
    assert sampling.resolve("dense", 5000, 10.0) == "dense"
