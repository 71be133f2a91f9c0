"""The exact kernel for a non-uniform topic-word prior (:func:`distlda.gibbs.kernels.sweep_eta`,
per-word and per-topic-and-word eta) against the enumerated posterior and the exact
conditional; its log-likelihood; threads; and the model's rules for such a prior."""

import logging

import numpy as np
import pytest
from scipy.special import gammaln

from distlda.gibbs import kernels as K_
from distlda.gibbs.local import LocalExecutor
from distlda.gibbs.state import GibbsState
from distlda.models import LdaModel

import reference as ref


def eta_kw_of(beta, V, K):
    b = np.asarray(beta, float)
    kw = np.ascontiguousarray(b.reshape(-1, V).T)
    total = np.full(K, b.sum()) if b.ndim == 1 else b.sum(1)
    return kw, total


def chain(docs, V, K, alpha, beta, sweeps, seed=3):
    """Long-run p(z_i = k) and p(z_i = z_j) of sweep_eta over ``docs`` (one chunk)."""
    rng = np.random.default_rng(seed)
    words = np.array(sum(docs, []), np.int32)
    doc_ptr = np.concatenate(([0], np.cumsum([len(d) for d in docs]))).astype(np.int64)
    topics = rng.integers(0, K, words.size).astype(np.int32)
    nwk, nk = np.zeros((V, K), np.int32), np.zeros(K, np.int32)
    K_.count_assignments(words, topics, nwk, nk, 1)
    kw, total = eta_kw_of(beta, V, K)
    N = words.size
    marg, same = np.zeros((N, K)), np.zeros((N, N))
    burn = sweeps // 20
    for s in range(sweeps):
        K_.sweep_eta(words, topics, doc_ptr, doc_ptr[:-1], doc_ptr[1:], nwk, nk, alpha, kw,
                     total, int(rng.integers(2 ** 32)))
        if s >= burn:
            marg[np.arange(N), topics] += 1
            same += topics[:, None] == topics[None, :]
    want_nwk, want_nk = ref.counts(words, topics, V, K)
    np.testing.assert_array_equal(nwk, want_nwk)
    np.testing.assert_array_equal(nk, want_nk)
    return marg / (sweeps - burn), same / (sweeps - burn)


@pytest.mark.parametrize("kind", ["word", "topic_word"])
def test_eta_kernel_samples_the_exact_posterior(kind):
    """Enumerated collapsed posterior with beta_kw (a strongly seeded topic-word matrix, or a
    per-word vector) against the chain's long-run marginals and co-assignments."""
    docs = [[0, 1, 1], [2, 0], [1, 2]]
    V, K = 3, 2
    alpha = np.array([0.3, 0.9])
    beta = (np.array([0.05, 2.0, 0.3]) if kind == "word"
            else np.array([[3.0, 0.05, 0.2], [0.05, 1.5, 0.4]]))
    marg, same = ref.exact_marginals(docs, V, K, alpha, beta)
    got_marg, got_same = chain(docs, V, K, alpha, beta, 30000)
    assert np.abs(got_marg - marg).max() < 0.02
    assert np.abs(got_same - same).max() < 0.02
    # the prior matters here: a uniform eta of the same mass gives other marginals
    flat, _ = ref.exact_marginals(docs, V, K, alpha, np.asarray(beta).mean())
    assert np.abs(flat - marg).max() > 0.05


def test_eta_kernel_step_draws_the_exact_conditional():
    """One token resampled from the same state many times follows
    (n_dk + alpha_k)(n_wk + beta_wk)/(n_k + sum_w beta_wk)."""
    rng = np.random.default_rng(7)
    V, K = 4, 6
    doc = rng.integers(0, V, 30).astype(np.int32)
    doc[0] = 1
    topics = rng.integers(0, K, 30).astype(np.int32)
    other_w = rng.integers(0, V, 500).astype(np.int32)
    other_t = rng.integers(0, K, 500).astype(np.int32)
    alpha = rng.uniform(0.05, 0.5, K)
    beta = rng.uniform(0.01, 3.0, (K, V))
    nwk, nk = np.zeros((V, K), np.int32), np.zeros(K, np.int32)
    K_.count_assignments(doc, topics, nwk, nk, 1)
    K_.count_assignments(other_w, other_t, nwk, nk, 1)
    ndk = np.bincount(topics[1:], minlength=K)
    nw = nwk[1].astype(float)
    nw[topics[0]] -= 1
    nkk = nk.astype(float)
    nkk[topics[0]] -= 1
    p = (ndk + alpha) * (nw + beta[:, 1]) / (nkk + beta.sum(1))
    p /= p.sum()
    kw, total = eta_kw_of(beta, V, K)
    doc_ptr = np.array([0, 30], np.int64)
    lo, hi = np.array([0], np.int64), np.array([1], np.int64)
    n = 20000
    draws = np.zeros(K)
    for seed in range(n):
        t, a, b = topics.copy(), nwk.copy(), nk.copy()
        K_.sweep_eta(doc, t, doc_ptr, lo, hi, a, b, alpha, kw, total, seed)
        draws[t[0]] += 1
    assert np.all(np.abs(draws / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 5e-4)


def test_log_likelihood_with_eta_matrix_and_uniform_case():
    rng = np.random.default_rng(2)
    V, K = 6, 3
    nwk = rng.integers(0, 5, (V, K)).astype(np.int32)
    nk = nwk.sum(0).astype(np.int32)
    beta = rng.uniform(0.01, 1.0, (K, V))
    kw, total = eta_kw_of(beta, V, K)
    want = ((gammaln(nwk + beta.T) - gammaln(beta.T)).sum()
            + (gammaln(beta.sum(1)) - gammaln(nk + beta.sum(1))).sum())
    assert K_.loglik_words_eta(nwk, nk, kw, total) == pytest.approx(want, rel=1e-12)
    kw, total = eta_kw_of(np.full(V, 0.2), V, K)
    assert K_.loglik_words_eta(nwk, nk, kw, total) == pytest.approx(
        K_.loglik_words(nwk, nk, 0.2, V), rel=1e-12)


@pytest.mark.parametrize("workers", [1, 3])
def test_executor_threads_keep_counts_exact_with_an_eta_matrix(workers):
    rng = np.random.default_rng(workers)
    V, K = 40, 5
    st = GibbsState(K, V, np.full(K, 0.2), rng.uniform(0.01, 0.5, (K, V)))
    from distlda.gibbs.chunks import iter_chunks
    docs = [[(int(w), 1) for w in rng.integers(0, V, 20)] for _ in range(60)]
    for i, c in enumerate(iter_chunks(docs, V, 15)):
        st.add_chunk(c, i)
    LocalExecutor(workers).run(st, 5, np.random.default_rng(0), lambda it: None)
    nwk, nk = st.recount()
    np.testing.assert_array_equal(st.nwk, nwk)
    np.testing.assert_array_equal(st.nk, nk)
    assert np.isfinite(st.log_likelihood())


def corpus():
    return [[(0, 2), (1, 1)], [(1, 3), (2, 1)], [(0, 1), (3, 2)], [(2, 2), (3, 1)]]


def test_distributed_true_refuses_a_non_scalar_eta_and_auto_trains_in_process(caplog):
    eta = np.array([[1.0, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 1.0]])
    with pytest.raises(ValueError, match="distributed=False"):
        LdaModel(corpus(), num_topics=2, eta=eta, distributed=True)
    with pytest.raises(ValueError, match="distributed=False"):
        LdaModel(corpus(), num_topics=2, eta="auto", distributed=True)
    with caplog.at_level(logging.INFO, logger="distlda.models.ldamodel"):
        lda = LdaModel(corpus(), num_topics=2, eta=eta, iterations=3, random_state=0,
                       ns_conf=dict(host="127.0.0.1", port=1))  # distributed=None
        lda.train(2)
    said = [r for r in caplog.records if "training in-process, not on a cluster" in r.message]
    assert len(said) == 1 and "eta" in said[0].message
    assert lda.executor_info.startswith("serial")


@pytest.mark.parametrize("eta", [np.array([0.5, 0.01, 0.2, 0.05]),
                                 np.array([[1.0, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 1.0]])])
def test_non_scalar_eta_round_trips_and_gives_topics_and_inference(eta, tmp_path):
    lda = LdaModel(corpus(), num_topics=2, eta=eta, iterations=5, random_state=0,
                   distributed=False)
    np.testing.assert_array_equal(lda.eta, eta)
    topics = lda.get_topics()
    st = lda.state
    want = (st.nwk.T + np.broadcast_to(eta, (2, 4))) / (st.nk + np.broadcast_to(eta, (2, 4))
                                                        .sum(1))[:, None]
    np.testing.assert_allclose(topics, want, rtol=1e-12)
    np.testing.assert_allclose([p for _, p in lda.get_topic_terms(1, 4)],
                               np.sort(topics[1])[::-1], rtol=1e-12)
    f = tmp_path / "m.npz"
    lda.save(str(f))
    back = LdaModel.load(str(f))
    np.testing.assert_array_equal(back.eta, eta)
    assert back.log_likelihood_per_token() == lda.log_likelihood_per_token()
    np.testing.assert_array_equal(back.fold_in(corpus()), lda.fold_in(corpus()))
    back.train(2)  # and it trains on, exactly
    nwk, nk = back.state.recount()
    np.testing.assert_array_equal(back.state.nwk, nwk)


def test_eta_forms_and_gensim_shapes():
    K, V = 2, 4
    assert LdaModel(corpus(), num_topics=K, iterations=1).eta.tolist() == [0.01] * V
    assert LdaModel(num_topics=K, eta="symmetric", id2word=list("abcd")).eta.tolist() == [0.5] * V
    uniform = LdaModel(corpus(), num_topics=K, eta=[0.3] * V, iterations=1)
    assert uniform.state.eta_kw is None and uniform.eta.tolist() == [0.3] * V  # fast path
    with pytest.raises(ValueError, match="word id"):  # a vector eta fixes the vocabulary
        LdaModel([[(5, 1)]], num_topics=K, eta=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="mh"):
        LdaModel(corpus(), num_topics=K, eta=[0.1, 0.2, 0.3, 0.4], sampler="mh")


def test_eta_auto_learns_a_symmetric_value():
    rng = np.random.default_rng(0)
    # two planted topics of 10 words each over 40 words: the data want a small eta
    docs = [[(int(w), 1) for w in rng.integers(10 * (d % 2), 10 * (d % 2) + 10, 30)]
            for d in range(80)]
    lda = LdaModel(docs, num_topics=2, id2word=[str(i) for i in range(40)], eta="auto",
                   iterations=30, optimize_burnin=5, optimize_interval=5, random_state=1,
                   distributed=False)
    assert lda.optimize_eta and lda.state.eta_kw is None
    assert lda.eta[0] != 0.5 and lda.eta[0] < 0.2  # moved from 1/K towards the data


@pytest.mark.parametrize("sampler", ["sparse", "dense"])
def test_the_sweep_entry_point_takes_a_non_uniform_prior_from_the_state(sampler):
    """``Prior.of(state)`` carries the state's eta_kw/eta_sum, and either exact sampler's
    options then sweep with :func:`sweep_eta`, the same chain as the kernel called directly."""
    from distlda.gibbs import sampling
    rng = np.random.default_rng(4)
    V, K = 12, 3
    beta = rng.uniform(0.01, 0.5, (K, V))
    st = GibbsState(K, V, np.full(K, 0.3), beta)
    prior = sampling.Prior.of(st)
    assert prior.eta_kw is st.eta_kw and prior.eta_sum is st.eta_sum and prior.vbeta == st.vbeta
    words = rng.integers(0, V, 60).astype(np.int32)
    doc_ptr = np.array([0, 20, 45, 60], np.int64)
    topics = rng.integers(0, K, 60).astype(np.int32)
    nwk, nk = np.zeros((V, K), np.int32), np.zeros(K, np.int32)
    K_.count_assignments(words, topics, nwk, nk, 1)
    want_t, want_nwk, want_nk = topics.copy(), nwk.copy(), nk.copy()
    K_.sweep_eta(words, want_t, doc_ptr, doc_ptr[:-1], doc_ptr[1:], want_nwk, want_nk, st.alpha,
                 st.eta_kw, st.eta_sum, 5)
    options = sampling.SparseOptions() if sampler == "sparse" else sampling.DenseOptions()
    sampling.sweep(sampling.Tokens([words], [topics], [doc_ptr]), nwk, nk, prior, options, [5])
    np.testing.assert_array_equal(topics, want_t)
    np.testing.assert_array_equal(nwk, want_nwk)
