"""Issue 12: no input makes a kernel write out of range, overflow a limit or depend on its batch.

- every sampler (sparse, mh, threads, a cluster worker) and fold-in under extreme priors that
  the model still accepts: exact counts, every topic in range;
- the kernels themselves under priors the model refuses (inf, NaN, 1e155): topics in range,
  counts exact, and the check-mode counter sees the fallback draws;
- size limits raise before allocating;
- inference gives a document the same answer whatever batch it is in.
"""

import copy
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import planted_corpus, to_bow

from distlda.gibbs import kernels as K_
from distlda.gibbs import mh as _mh
from distlda.gibbs import sampling
from distlda.gibbs.chunks import MAX_TOKENS, MAX_TOPICS, iter_chunks
from distlda.gibbs.state import GibbsState, check_sizes
from distlda.models import LdaModel
from distlda.models.ldamodel import PRIOR_MAX, PRIOR_MIN

from cluster import Cluster

ISSUE_CORPUS = [[(0, 2), (1, 1)], [(1, 2), (2, 1)], [(3, 1)]]
EXTREMES = [(PRIOR_MAX, PRIOR_MAX), (PRIOR_MIN, PRIOR_MIN), (PRIOR_MAX, PRIOR_MIN),
            (PRIOR_MIN, PRIOR_MAX)]


def small_corpus(seed=0):
    X, _ = planted_corpus(D=60, V=40, K=4, L=20, seed=seed)
    return X


def assert_exact(lda, n_tokens):
    st = lda.state
    assert int(lda.sstats.sum()) == n_tokens == lda.num_tokens
    for c in st.chunks:
        assert c.topics.min() >= 0 and c.topics.max() < lda.num_topics
    nwk, nk = st.recount()
    np.testing.assert_array_equal(nwk, st.nwk)
    np.testing.assert_array_equal(nk, st.nk)
    assert (st.nk >= 0).all() and (st.nwk >= 0).all()


# ------------------------------------------------------------------ priors
@pytest.mark.parametrize("bad", [1e155, 1e101, 1e-101, 0.0, -1.0, float("inf"), float("nan")])
@pytest.mark.parametrize("param", ["alpha", "eta"])
def test_priors_outside_the_documented_range_are_refused_by_name(param, bad):
    with pytest.raises(ValueError, match=f"'{param}'.*1e-100, 1e\\+100"):
        LdaModel(ISSUE_CORPUS, num_topics=3, iterations=1, distributed=False, **{param: bad})


def test_issue_example_gives_a_clear_error():
    with pytest.raises(ValueError, match="'alpha'"):
        LdaModel(ISSUE_CORPUS, num_topics=3, alpha=1e155, eta=1e155, iterations=1,
                 sampler="sparse", random_state=1, distributed=False, workers=1)


def test_alpha_vector_with_one_bad_value_is_refused():
    with pytest.raises(ValueError, match="'alpha'.*1e\\+200"):
        LdaModel(ISSUE_CORPUS, num_topics=3, alpha=[0.1, 1e200, 0.1], distributed=False)


@pytest.mark.parametrize("sampler,workers", [("sparse", 1), ("mh", 1), ("sparse", 2), ("mh", 2),
                                             ("dense", 1), ("dense", 2)])
@pytest.mark.parametrize("alpha,eta", EXTREMES)
def test_every_in_process_sampler_is_exact_under_extreme_accepted_priors(sampler, workers,
                                                                         alpha, eta):
    X = small_corpus()
    lda = LdaModel(X, num_topics=5, alpha=alpha, eta=eta, iterations=3, sampler=sampler,
                   workers=workers, random_state=2, distributed=False, eval_every=1)
    assert_exact(lda, int(X.sum()))
    assert np.isfinite(lda.log_likelihood_per_token())
    theta = lda.fold_in(X[:10])
    assert np.isfinite(theta).all()
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)


def test_issue_corpus_at_the_largest_accepted_priors_is_exact():
    lda = LdaModel(ISSUE_CORPUS, num_topics=3, alpha=PRIOR_MAX, eta=PRIOR_MAX, iterations=10,
                   sampler="sparse", random_state=1, distributed=False, workers=1)
    assert_exact(lda, 7)


def test_a_cluster_worker_is_exact_under_extreme_accepted_priors():
    X = small_corpus(1)
    with Cluster(workers=1, check=True) as c:
        for sampler in ("sparse", "dense", "mh"):
            lda = LdaModel(X, num_topics=5, alpha=PRIOR_MAX, eta=PRIOR_MIN, iterations=3,
                           sampler=sampler, random_state=3, distributed=True,
                           ns_conf=c.ns_conf, chunksize=20)
            assert lda.executor_info.startswith("distributed"), lda.executor_info
            assert_exact(lda, int(X.sum()))


# ------------------------------------------------------------------ kernels under refused priors
def _sparse_setup(K=3, seed=0):
    chunk = next(iter_chunks(ISSUE_CORPUS * 5, None, 100))
    V = int(chunk.words.max()) + 1
    st = GibbsState(K, V, np.ones(K), 1.0)
    st.add_chunk(chunk, seed)
    return st, chunk


@pytest.mark.parametrize("prior", [1e155, 1e308, float("inf"), float("nan"), 1e-320, 0.0])
def test_sparse_sweep_stays_in_range_and_counts_fallbacks_whatever_the_masses(prior):
    K = 3
    st, c = _sparse_setup(K)
    alpha = np.full(K, prior)
    fallbacks = np.zeros(1, np.int64)
    for it in range(5):
        lists = K_.build_word_lists(st.nwk, np.bincount(c.words, minlength=st.num_terms))
        K_.sweep_sparse(c.words, c.topics, c.doc_ptr, c.doc_ptr[:-1], c.doc_ptr[1:], st.nwk,
                        st.nk, *lists, alpha, prior, prior * st.num_terms, it, fallbacks)
        assert c.topics.min() >= 0 and c.topics.max() < K
        nwk, nk = st.recount()
        np.testing.assert_array_equal(nwk, st.nwk)
        np.testing.assert_array_equal(nk, st.nk)
    if prior in (1e308, float("inf"), float("nan")):
        assert fallbacks[0] > 0
    # without the counter (how the executors call it) the draws are as safe
    K_.sweep_sparse(c.words, c.topics, c.doc_ptr, c.doc_ptr[:-1], c.doc_ptr[1:], st.nwk, st.nk,
                    *lists, alpha, prior, prior * st.num_terms, 9)
    assert c.topics.min() >= 0 and c.topics.max() < K


def test_sparse_sweep_counts_no_fallback_at_ordinary_priors():
    K = 3
    st, c = _sparse_setup(K)
    fallbacks = np.zeros(1, np.int64)
    lists = K_.build_word_lists(st.nwk, np.bincount(c.words, minlength=st.num_terms))
    K_.sweep_sparse(c.words, c.topics, c.doc_ptr, c.doc_ptr[:-1], c.doc_ptr[1:], st.nwk, st.nk,
                    *lists, np.full(K, 0.1), 0.01, 0.01 * st.num_terms, 1, fallbacks)
    assert fallbacks[0] == 0


@pytest.mark.parametrize("prior", [1e155, 1e308, float("inf"), float("nan")])
def test_mh_sweep_stays_in_range_whatever_the_masses(prior):
    K = 3
    st, c = _sparse_setup(K)
    alpha = np.full(K, prior)
    tokens, space = sampling.Tokens.of([c]), _mh.Workspace()
    if np.isnan(prior):  # the driver refuses NaN priors; the kernel itself must still cope
        with pytest.raises(ValueError, match="alpha > 0"):
            sampling.sweep(tokens, st.nwk, st.nk, sampling.Prior(alpha, prior, prior),
                           sampling.MhOptions(), [0])
    work = _mh._Work([c.words], [c.doc_ptr], st.num_terms, 2, K)
    for it in range(4):
        if np.isnan(prior):
            _mh.load_topics(work.rec, 4, 0, c.topics)
            _mh.sweep_mh(work.rec, 2, work.wptr, work.widx, work.doc_ptr, st.nwk, st.nk, alpha,
                         prior, prior, np.uint64(it), it == 0, it % 2 == 0)
            _mh.store_topics(work.rec, 4, 0, c.topics)
        else:
            sampling.sweep(tokens, st.nwk, st.nk,
                           sampling.Prior(alpha, prior, prior * st.num_terms),
                           sampling.MhOptions(2, space), [it])
        assert c.topics.min() >= 0 and c.topics.max() < K
        nwk, nk = st.recount()
        np.testing.assert_array_equal(nwk, st.nwk)
        np.testing.assert_array_equal(nk, st.nk)


@pytest.mark.parametrize("prior", [1e155, 1e308, float("inf"), float("nan")])
def test_foldin_stays_in_range_and_counts_fallbacks(prior):
    K = 4
    c = next(iter_chunks(ISSUE_CORPUS * 3, None, 100))
    nwk = np.ones((4, K), np.int32)
    fallbacks = np.zeros(1, np.int64)
    theta = K_.foldin(c.words, c.doc_ptr, nwk, np.full(K, 1.0 / (4 + 4 * prior)), prior,
                      np.full(K, prior), 6, 3, 7, fallbacks)
    assert theta.shape == (c.num_docs, K)
    if prior in (1e308, float("inf"), float("nan")):
        assert fallbacks[0] > 0


def test_init_topics_refuses_zero_topics():
    with pytest.raises(ValueError):
        K_.init_topics(np.zeros(3, np.int32), 0, 1)


# ------------------------------------------------------------------ size limits
def test_token_limit_raises_before_expanding_the_tokens():
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="2200000000 is more than the 2147483647 tokens"):
            LdaModel([[(0, 2_200_000_000)]], num_topics=2, distributed=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2 ** 20  # expanding the tokens would take 8.2 GiB


@pytest.mark.parametrize("corpus", [
    [[(0, 2_000_000_000), (1, 2_000_000_000)]],                # one document
    [[(0, 1_500_000_000)], [(1, 1_500_000_000)]],               # one chunk
    sp.csr_matrix(np.array([[1_500_000_000, 1_500_000_000]])),  # a matrix
])
def test_token_limit_of_a_chunk_names_its_documents_and_the_limit(corpus):
    with pytest.raises(ValueError, match=r"document.* [34]000000000 tokens.*2147483647"):
        LdaModel(corpus, num_topics=2, distributed=False)


def test_token_limit_of_the_model_counts_the_tokens_it_already_holds():
    lda = LdaModel([[(0, 1_000)]], num_topics=2, iterations=0, distributed=False)
    with pytest.raises(ValueError, match=f"{MAX_TOKENS - 1000} the model can still take"):
        lda.update([[(0, MAX_TOKENS - 999)]], iterations=0)
    assert lda.num_tokens == 1000


@pytest.mark.parametrize("corpus", [
    [[(2_000_000_000, 1)]], [[(3_000_000_000, 1)]], [[(1e300, 1)]],
    sp.csr_matrix((1, 2_000_000_000), dtype=np.int64)])
def test_vocabulary_beyond_the_table_limit_raises_before_allocating(corpus):
    with pytest.raises(ValueError, match="words"):
        LdaModel(corpus, num_topics=100, distributed=False)


def test_declared_vocabulary_of_id2word_is_checked():
    with pytest.raises(ValueError, match=r"word-topic table.*GiB"):
        LdaModel(None, num_topics=1000, id2word={10 ** 9: "w"})
    with pytest.raises(ValueError, match="int32 word ids"):
        LdaModel(None, num_topics=1, id2word={2 ** 40: "w"})


def test_topic_limit():
    with pytest.raises(ValueError, match=f"{MAX_TOPICS} topics"):
        LdaModel(None, num_topics=MAX_TOPICS + 1)
    check_sizes(MAX_TOPICS, 1)


def test_a_reader_declaring_10_to_the_12_documents_is_refused_before_streaming(tmp_path):
    from distlda.corpora import MmCorpus
    path = tmp_path / "big.mm"
    path.write_text("%%MatrixMarket matrix coordinate real general\n1000000000000 5 0\n")
    with pytest.raises(ValueError, match="declares 1000000000000 documents.*2147483647"):
        LdaModel(MmCorpus(str(path)), num_topics=2, distributed=False)


def test_document_limit_counts_streamed_documents():
    with pytest.raises(ValueError, match="documents 2..3: more than the 3 documents"):
        list(iter_chunks(iter([[(0, 1)]] * 5), None, 2, max_docs=3))


def test_huge_counts_as_floats_are_refused_not_wrapped():
    with pytest.raises(ValueError, match="count"):
        LdaModel([[(0, 1e300)]], num_topics=2, distributed=False)


# ------------------------------------------------------------------ inference per document
@pytest.fixture(scope="module")
def trained():
    X = small_corpus(3)
    lda = LdaModel(X, num_topics=6, iterations=20, random_state=5, distributed=False,
                   workers=1, inference_iterations=20)
    return lda, to_bow(X)


def test_issue_example_same_topics_in_any_batch(trained):
    lda, docs = trained
    t = docs[7]
    a = lda.fold_in([t])[0]
    np.testing.assert_array_equal(a, lda.fold_in([[(1, 1)], t])[1])
    np.testing.assert_array_equal(a, lda.fold_in(docs[:100] + [t])[-1])


def test_inference_is_per_document_for_shuffled_batches_of_any_size(trained):
    lda, docs = trained
    ref = lda.fold_in(docs)
    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 33, len(docs)):
        order = rng.permutation(len(docs))[:size]
        got = lda.fold_in([docs[i] for i in order])
        np.testing.assert_array_equal(got, ref[order])
    # the order of a document's (word_id, count) pairs does not matter either
    np.testing.assert_array_equal(lda.fold_in([docs[3][::-1]])[0], ref[3])


def test_lda_getitem_get_document_topics_and_inference_agree(trained):
    lda, docs = trained
    ref = lda.fold_in(docs[:5])
    for d, doc in enumerate(docs[:5]):
        expect = [(k, float(p)) for k, p in enumerate(ref[d]) if p >= lda.minimum_probability]
        assert lda.get_document_topics(doc) == expect
        assert lda[doc] == expect
    assert lda[docs[:5]] == [lda[doc] for doc in docs[:5]]


def test_inference_is_the_same_with_any_number_of_threads(trained):
    lda, docs = trained
    ref = lda.fold_in(docs)
    chunksize, workers = lda.chunksize, lda.workers
    try:
        lda.chunksize = 7
        for w in (1, 2, 3):
            lda.workers = w
            np.testing.assert_array_equal(lda.fold_in(docs), ref)
    finally:
        lda.chunksize, lda.workers = chunksize, workers


def test_inference_warns_of_fallback_draws(trained, caplog):
    lda, docs = trained
    ref = lda.fold_in(docs[:3])
    assert "fell back" not in caplog.text
    saved = lda.alpha
    try:
        lda.state._alpha = np.full(lda.num_topics, float("inf"))  # past the rule, on purpose
        lda.state.touch()
        theta = lda.fold_in(docs[:3])
    finally:
        lda.state.alpha = saved
    assert "fold-in draws had a non-finite topic mass" in caplog.text
    assert theta.shape == ref.shape


def test_inference_cache_keys_on_the_state_version():
    from distlda.inference import inference_tables
    X = small_corpus(4)
    lda = LdaModel(X, num_topics=4, iterations=5, random_state=1, distributed=False, workers=1)
    doc = to_bow(X[:1])[0]
    lda.fold_in([doc])
    tables, version = inference_tables(lda), lda.state.version
    assert inference_tables(lda) is tables  # cached while the state is unchanged
    lda.update(X[:10], iterations=5)
    assert lda.state.version > version and inference_tables(lda) is not tables
    fresh = copy.deepcopy(lda)
    fresh.state.touch()  # the same counts, tables built anew
    np.testing.assert_array_equal(lda.fold_in([doc]), fresh.fold_in([doc]))
    lda.alpha = lda.alpha * 2  # a new prior: rebuilt
    a = lda.fold_in([doc])
    assert inference_tables(lda)[2][0] == pytest.approx(lda.alpha[0])
    assert np.isfinite(a).all()
