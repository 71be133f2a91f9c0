"""The exact sparse sampler (SparseLDA, :func:`distlda.gibbs.kernels.sweep_sparse`) against
the enumerated posterior and the exact conditional, and the sampler entry point's rules."""

import numpy as np
import pytest

from distlda.gibbs import kernels as K_
from distlda.gibbs import sampling

import reference as ref
from test_gibbs_mh import long_run


def test_sparse_sampler_dense_rows_sample_the_exact_posterior():
    """17 topics and one word in every token: the sparse sampler's q bucket runs over the
    whole row (blocks of 16 topics plus a tail) when the word's list is long and over the list
    when it is short; both must give the enumerated posterior."""
    docs = [[0, 0], [0, 0]]
    V, K = 1, 17
    assert 3 * K_.DENSE_Q > K >= 2 * K_.DENSE_Q  # lists of 3 go dense, of 1-2 stay sparse
    alpha = np.linspace(0.05, 0.8, K)
    beta = 0.1
    marg, same = ref.exact_marginals(docs, V, K, alpha, beta)
    got_marg, got_same = long_run(docs, V, K, alpha, beta, "sparse", 40000, split=1)
    assert np.abs(got_marg - marg).max() < 0.02
    assert np.abs(got_same - same).max() < 0.02


@pytest.mark.parametrize("sampler, K, spread, scale", [
    ("sparse", 40, 40, 1), ("sparse", 40, 3, 1), ("sparse", 100, 100, 1), ("sparse", 7, 7, 1),
    ("dense", 7, 7, 1), ("dense", 8, 8, 1), ("dense", 9, 2, 1), ("dense", 17, 17, 1),
    ("dense", 100, 100, 1), ("dense", 100, 3, 1), ("dense", 17, 17, 1e60)])
def test_exact_sampler_step_draws_the_exact_conditional(sampler, K, spread, scale):
    """One token resampled many times from the same state: its new topic must follow
    p(z = k | rest) ~ (n_dk + alpha_k)(n_wk + beta)/(n_k + V beta). Sparse: whether the
    word's q bucket goes over its list (few topics: ``spread`` 3) or over the dense row.
    Dense: whatever K is against its draw's blocks of 8 (a tail block, one, many), although
    the token's own topic is tested first (``spread`` 2-3: most often the likeliest), and with
    alpha times 1e60, where its float32 masses overflow and the token is drawn in float64
    (not a fallback: no uniform draw is counted)."""
    rng = np.random.default_rng(K + spread)
    V = 5
    doc = rng.integers(0, V, 60).astype(np.int32)
    doc[0] = 2
    topics = rng.integers(0, spread, 60).astype(np.int32)
    other_w = rng.integers(0, V, 3000).astype(np.int32)  # the rest of the corpus
    other_t = rng.integers(0, spread, 3000).astype(np.int32)
    alpha = rng.uniform(0.05, 0.5, K) * scale
    beta = 0.05
    nwk = np.zeros((V, K), np.int32)
    nk = np.zeros(K, np.int32)
    K_.count_assignments(doc, topics, nwk, nk, 1)
    K_.count_assignments(other_w, other_t, nwk, nk, 1)
    p = ref.conditional(topics, 0, 2, nwk, nk, alpha, beta, V)  # token 0 is word 2
    fallbacks = np.zeros(1, np.int64)
    doc_ptr = np.array([0, 60], np.int64)
    lo, hi = np.array([0], np.int64), np.array([1], np.int64)
    draws = np.zeros(K)
    n = 50000
    for seed in range(n):
        t, a, b = topics.copy(), nwk.copy(), nk.copy()
        if sampler == "dense":
            K_.sweep_dense(doc, t, doc_ptr, lo, hi, a, b, alpha, beta, V * beta, seed,
                           fallbacks)
        else:
            lists = K_.build_word_lists(a, np.full(V, 60))
            K_.sweep_sparse(doc, t, doc_ptr, lo, hi, a, b, *lists, alpha, beta, V * beta, seed)
        draws[t[0]] += 1
    # each topic within 5 binomial standard deviations (a topic weighted 1.5x too much in
    # the dense branch, at p = 0.01, fails this by 2x)
    assert np.all(np.abs(draws / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 5e-4)
    assert fallbacks[0] == 0


def test_step_seeds_are_the_one_rule_threads_and_workers_share():
    seeds = np.array([0, 1, 2 ** 32 - 1], np.int64)
    np.testing.assert_array_equal(sampling.step_seeds(seeds, 0), seeds.astype(np.uint32))
    want = [(int(s) + 3 * sampling.STEP_SEED) % 2 ** 32 for s in seeds]
    assert sampling.step_seeds(seeds, 3).tolist() == want


def test_resolve_names_the_samplers():
    assert sampling.resolve("sparse", 100, 10.0) == "sparse"
    assert sampling.resolve("auto", 5000, 100.0) == "mh"
    with pytest.raises(ValueError, match="unknown sampler 'zzz'"):
        sampling.resolve("zzz", 10, 10.0)
    with pytest.raises(ValueError, match="whole documents"):
        sampling.sweep(sampling.Tokens([np.zeros(1, np.int32)], [np.zeros(1, np.int32)],
                                       [np.array([0, 1])], [(np.array([0]), np.array([1]))]),
                       np.ones((1, 2), np.int32), np.ones(2, np.int32),
                       sampling.Prior(np.ones(2), 0.1, 0.1), sampling.MhOptions(), [0])


@pytest.mark.parametrize("sampler", ["sparse", "dense"])
def test_sweep_on_a_block_resamples_only_its_tokens_and_keeps_counts_exact(sampler):
    rng = np.random.default_rng(0)
    V, K = 30, 6
    lens = rng.integers(1, 20, 25)
    doc_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    words = rng.integers(0, V, doc_ptr[-1]).astype(np.int32)
    topics = rng.integers(0, K, doc_ptr[-1]).astype(np.int32)
    K_.sort_doc_tokens(words, topics, doc_ptr)
    nwk, nk = (a.astype(np.int32) for a in ref.counts(words, topics, V, K))
    cuts = np.array([0, 12, V], np.int32)
    bp = K_.block_bounds(words, doc_ptr, cuts)
    t = topics.copy()
    options = sampling.SparseOptions() if sampler == "sparse" else sampling.DenseOptions()
    moved = sampling.sweep(sampling.Tokens([words], [t], [doc_ptr], [(bp[1], bp[2])]), nwk, nk,
                           sampling.Prior(np.full(K, 0.5), 0.1, 0.1 * V), options, [3])
    assert moved == int((t != topics).sum()) > 0
    assert (words[t != topics] >= 12).all()  # only block 1 (words 12..) was resampled
    want_nwk, want_nk = ref.counts(words, t, V, K)
    np.testing.assert_array_equal(nwk, want_nwk)
    np.testing.assert_array_equal(nk, want_nk)


@pytest.mark.parametrize("threads", [1, 2])
def test_check_mode_counts_fallback_draws_in_the_executor(threads, monkeypatch, caplog):
    """A prior the model would refuse (alpha = inf, set on the state directly) makes every
    topic mass non-finite: the draws fall back to valid topics, the counts stay exact, and
    with DISTLDA_CHECK=1 the executor says how many draws fell back."""
    import logging

    from distlda.gibbs.chunks import iter_chunks
    from distlda.gibbs.local import LocalExecutor
    from distlda.gibbs.state import GibbsState

    from helpers import planted_corpus
    monkeypatch.setenv("DISTLDA_CHECK", "1")
    X, _ = planted_corpus(D=60, V=40, K=3, L=20, seed=1)
    state = GibbsState(3, 40, np.full(3, 0.5), 0.1)
    for c in iter_chunks(X, 40, 20):
        state.add_chunk(c, 7)
    state._alpha = np.full(3, np.inf)  # past the setter's rule, on purpose
    with caplog.at_level(logging.WARNING, logger="distlda"):
        LocalExecutor(threads, sampler="sparse").run(state, 2, np.random.default_rng(0),
                                                     lambda it: None)
    assert "fell back to a uniform topic" in caplog.text
    nwk, nk = state.recount()
    np.testing.assert_array_equal(nwk, state.nwk)
    np.testing.assert_array_equal(nk, state.nk)
    assert all(((c.topics >= 0) & (c.topics < 3)).all() for c in state.chunks)
