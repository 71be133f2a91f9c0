"""gensim's LdaModel calls against a distlda model, side by side with gensim's own model.

Each test makes the calls of gensim's test-suite (test_ldamodel.py, basetmtests.py,
test_tmdiff.py, the callbacks) on gensim's 9-document ``common_corpus`` against both models,
and asserts that shapes, types and meaning agree (not values: Gibbs sampling is not
variational Bayes). docs/parity.rst is the table of the same.
"""

import inspect
import logging
import numbers
import warnings

import numpy as np
import pytest

gensim = pytest.importorskip("gensim")
from gensim.models import LdaModel as GensimLda  # noqa: E402
from gensim.models.callbacks import (  # noqa: E402
    CoherenceMetric,
    ConvergenceMetric,
    DiffMetric,
    PerplexityMetric,
)
from gensim.test.utils import common_corpus, common_dictionary  # noqa: E402

from distlda.models import LdaModel  # noqa: E402

corpus, dictionary = common_corpus, common_dictionary
V = len(dictionary)


@pytest.fixture(scope="module")
def pair():
    """(gensim model, distlda model), both 2 topics on common_corpus."""
    g = GensimLda(corpus, id2word=dictionary, num_topics=2, passes=10, random_state=0)
    d = LdaModel(corpus, id2word=dictionary, num_topics=2, passes=10, iterations=50,
                 random_state=0, distributed=False)
    return g, d


def params(func) -> set:
    return {n for n, p in inspect.signature(func).parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self"}


@pytest.mark.parametrize("method", ["__init__", "update", "get_document_topics",
                                    "get_term_topics", "diff", "top_topics", "get_topic_terms",
                                    "show_topic", "show_topics", "print_topics", "print_topic",
                                    "get_topics", "log_perplexity", "bound", "save", "load",
                                    "sync_state", "__getitem__"])
def test_every_gensim_keyword_is_accepted(method):
    ours = params(getattr(LdaModel, method))
    theirs = params(getattr(GensimLda, method)) - {"eps"}  # lda[bow, eps] cannot be written
    assert theirs <= ours, f"{method}: missing {sorted(theirs - ours)}"


def test_gensim_constructor_call_runs_with_one_warning_for_vb_keywords(caplog):
    kwargs = dict(num_topics=2, id2word=dictionary, distributed=False, chunksize=2000,
                  passes=3, update_every=1, alpha=None, eta=None, decay=0.5, offset=1.0,
                  eval_every=None, iterations=50, gamma_threshold=0.001,
                  minimum_probability=0.01, random_state=np.random.RandomState(0),
                  ns_conf=None, minimum_phi_value=0.01, per_word_topics=False, callbacks=None,
                  dtype=np.float32)
    GensimLda(corpus, **kwargs)
    with warnings.catch_warnings(record=True) as caught, \
            caplog.at_level(logging.INFO, logger="distlda.models.ldamodel"):
        warnings.simplefilter("always")
        lda = LdaModel(corpus, **kwargs)
    vb = [w for w in caught if "variational-Bayes settings" in str(w.message)]
    assert len(vb) == 1
    for name in ("update_every", "decay", "offset", "gamma_threshold"):
        assert name in str(vb[0].message)
    sweeps = [r for r in caplog.records if "Gibbs sweeps" in r.message]
    assert len(sweeps) == 1 and "passes=3, iterations=50: 50 Gibbs sweeps" in sweeps[0].message
    assert lda.state.sweeps_done == 50 and lda.passes == 3 and lda.eval_every == 0


@pytest.mark.filterwarnings("ignore:LdaModel. decay")
def test_passes_and_iterations_choose_the_sweeps():
    assert LdaModel(corpus, num_topics=2, passes=80, iterations=20).state.sweeps_done == 80
    assert LdaModel(corpus, num_topics=2, passes=2, iterations=20).state.sweeps_done == 20
    lda = LdaModel(corpus, num_topics=2, iterations=5)
    lda.update(corpus, passes=9, decay=0.7)  # gensim's update keywords
    assert lda.state.sweeps_done == 5 + 9 and lda.num_docs == 18


@pytest.mark.parametrize("alpha, want", [
    (None, [0.5, 0.5]), ("symmetric", [0.5, 0.5]), ("asymmetric", [0.630602, 0.369398]),
    (0.3, [0.3, 0.3]), (3, [3, 3]), ([0.3, 0.3], [0.3, 0.3]), (np.array([0.3, 0.3]), [0.3, 0.3])])
def test_alpha_forms_as_gensim(alpha, want):
    for cls in (GensimLda, LdaModel):
        m = cls(id2word=dictionary, num_topics=2, alpha=alpha)
        assert m.alpha.shape == (2,)
        np.testing.assert_allclose(m.alpha, want, rtol=1e-5)


@pytest.mark.parametrize("alpha", [[0.3, 0.3, 0.3], [[0.3], [0.3]], [0.3], "gensim is cool"])
def test_bad_alpha_is_refused_as_gensim(alpha):
    with pytest.raises((AssertionError, ValueError)):
        GensimLda(id2word=dictionary, num_topics=2, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):  # ours: always a ValueError naming it
        LdaModel(id2word=dictionary, num_topics=2, alpha=alpha)


@pytest.mark.parametrize("eta, want", [
    ("symmetric", 0.5), (0.3, 0.3), (3, 3.0), ([0.3] * V, 0.3), (np.array([0.3] * V), 0.3)])
def test_eta_forms_have_gensims_shape_and_values(eta, want):
    for cls in (GensimLda, LdaModel):
        m = cls(id2word=dictionary, num_topics=2, eta=eta)
        assert m.eta.shape == (V,)
        np.testing.assert_allclose(m.eta, want)


def test_eta_none_and_matrix_shapes():
    g = GensimLda(id2word=dictionary, num_topics=2, eta=None)
    d = LdaModel(id2word=dictionary, num_topics=2, eta=None)
    assert g.eta.shape == d.eta.shape == (V,)
    np.testing.assert_allclose(d.eta, 0.01)  # ours: 0.01 (documented), gensim's: 1/K
    matrix = np.full((2, V), 0.5)
    matrix[0, 3] = 2.0
    for cls in (GensimLda, LdaModel):
        assert cls(id2word=dictionary, num_topics=2, eta=matrix).eta.shape == (2, V)


@pytest.mark.parametrize("eta", [np.full((V, 2), 0.5), [0.3], [0.3] * (V + 1),
                                 "gensim is cool", "asymmetric"])
def test_bad_eta_is_refused_as_gensim(eta):
    with pytest.raises((AssertionError, ValueError)):
        GensimLda(id2word=dictionary, num_topics=2, eta=eta)
    with pytest.raises(ValueError, match="eta"):
        LdaModel(id2word=dictionary, num_topics=2, eta=eta)


def test_auto_priors_learn_something():
    kw = dict(id2word=dictionary, num_topics=2, passes=10, iterations=60, random_state=0,
              distributed=False, optimize_burnin=10, optimize_interval=10)
    sym = LdaModel(corpus, eta="symmetric", **kw)
    auto = LdaModel(corpus, eta="auto", alpha="auto", **kw)
    assert not np.allclose(sym.eta, auto.eta)
    assert not np.allclose(sym.alpha, auto.alpha)


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_base_topic_model_calls(pair, which):
    """basetmtests.py's calls, on both models."""
    m = pair[which]
    for no, topic in m.show_topics(formatted=True) + m.print_topics():
        assert isinstance(no, int) and isinstance(topic, str)
    for k, v in m.show_topic(1):
        assert isinstance(k, str) and isinstance(v, (np.floating, float))
    for no, topic in m.show_topics(formatted=False):
        assert isinstance(no, int) and isinstance(topic, list)
        assert all(isinstance(k, str) and isinstance(v, (np.floating, float)) for k, v in topic)
    assert isinstance(m.print_topic(0), str) and "*" in m.print_topic(0)
    topics = m.get_topics()
    assert topics.shape == (2, V)
    np.testing.assert_allclose(topics.sum(1), 1.0, rtol=1e-5)
    for k, v in m.get_topic_terms(1):
        assert isinstance(k, numbers.Integral) and np.issubdtype(type(v), np.floating)


def test_dtype_keyword_gives_gensims_float32():
    g = GensimLda(corpus, id2word=dictionary, num_topics=2, dtype=np.float32)
    d = LdaModel(corpus, id2word=dictionary, num_topics=2, iterations=5, dtype=np.float32)
    assert type(g.get_topic_terms(0)[0][1]) is type(d.get_topic_terms(0)[0][1]) is np.float32
    assert type(d.get_document_topics(corpus[0])[0][1]) is np.float32


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_get_document_topics_on_a_corpus_and_per_word(pair, which):
    """test_ldamodel.py's test_get_document_topics, on both models."""
    m = pair[which]
    docs = m.get_document_topics(corpus)
    assert len(docs) == len(corpus)
    for topics in docs:
        assert isinstance(topics, list)
        assert all(isinstance(k, numbers.Integral) and np.issubdtype(type(v), np.floating)
                   for k, v in topics)
    assert m.state.numdocs == len(corpus)
    for doc, triple in zip(corpus, m.get_document_topics(corpus, per_word_topics=True)):
        assert isinstance(triple, tuple) and len(triple) == 3
        assert [w for w, _ in triple[1]] == [w for w, _ in doc]  # one entry per word
        assert [w for w, _ in triple[2]] == [w for w, _ in doc]
        assert all(isinstance(t, list) for _, t in triple[1])
        assert all(isinstance(p, list) for _, p in triple[2])
    doc_count = word_count = 0
    for triple in m.get_document_topics(corpus, minimum_probability=0.8,
                                        minimum_phi_value=1.0, per_word_topics=True):
        doc_count += bool(triple[0])
        word_count += sum(bool(p) for _, p in triple[2])
    assert m.state.numdocs > doc_count
    assert sum(len(d) for d in corpus) > word_count
    topics, word_topics, word_phis = m.get_document_topics(corpus[1], per_word_topics=True)
    assert len(word_topics) == len(word_phis) == len(corpus[1])


def test_per_word_phis_mean_what_gensims_do(pair):
    """phi values: each word's count split over topics (they sum to the count), topics
    sorted by it; minimum_probability=0 keeps every topic (not clamped to 1e-8)."""
    _, d = pair
    doc = [(0, 1), (1, 3), (2, 1)]
    topics, word_topics, word_phis = d.get_document_topics(
        doc, minimum_probability=0.0, minimum_phi_value=0.0, per_word_topics=True)
    assert [k for k, _ in topics] == [0, 1]
    for (w, count), (_, phis), (_, order) in zip(doc, word_phis, word_topics):
        assert sum(p for _, p in phis) == pytest.approx(count)
        assert order == sorted(range(2), key=lambda k: -dict(phis)[k])
    lda = LdaModel(corpus, id2word=dictionary, num_topics=2, iterations=5,
                   per_word_topics=True)
    assert len(lda[doc]) == 3  # lda[bow] follows the model's per_word_topics, as gensim


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_get_term_topics(pair, which):
    m = pair[which]
    for word in (2, str(m.id2word[2])):
        result = m.get_term_topics(word)
        for topic_no, probability in result:
            assert isinstance(topic_no, int) and np.issubdtype(type(probability), np.floating)
    assert len(m.get_term_topics(2, minimum_probability=0.0)) == 2


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_diff_as_test_tmdiff(which):
    """test_tmdiff.py on both models (5 topics)."""
    kw = dict(corpus=corpus, id2word=dictionary, num_topics=5, passes=10)
    m = GensimLda(**kw) if which == 0 else LdaModel(iterations=40, **kw)
    mdiff, annotation = m.diff(m, n_ann_terms=10)
    assert mdiff.shape == (5, 5) and len(annotation) == 5 and len(annotation[0]) == 5
    mdiff, annotation = m.diff(m, n_ann_terms=10, diagonal=True)
    assert mdiff.shape == (5,) and len(annotation) == 5
    for dist in ["hellinger", "kullback_leibler", "jaccard", "jensen_shannon"]:
        mdiff, annotation = m.diff(m, n_ann_terms=10, distance=dist)
        for i in range(5):
            int_tokens, diff_tokens = annotation[i][i]
            assert diff_tokens == [] and len(int_tokens) == 10
        np.testing.assert_allclose(np.diag(mdiff), 0, atol=1e-12)
        if dist == "jaccard":
            assert mdiff.min() >= 0
        mdiff, _ = m.diff(m, n_ann_terms=10, distance=dist, diagonal=True)
        np.testing.assert_allclose(mdiff, 0, atol=1e-12)
    with pytest.raises(ValueError):
        m.diff(m, distance="something")


def test_diff_between_a_distlda_and_a_gensim_model(pair):
    g, d = pair
    for dist in ("kullback_leibler", "hellinger", "jensen_shannon", "jaccard"):
        mdiff, annotation = d.diff(g, distance=dist, normed=False)
        assert mdiff.shape == (2, 2) and annotation.shape == (2, 2)
        assert (mdiff >= 0).all()
    mdiff, _ = d.diff(g, distance="hellinger", normed=False, annotation=False)
    assert mdiff.max() <= 1.0
    mdiff, _ = d.diff(d, distance="jensen_shannon", normed=True)
    assert mdiff.max() == pytest.approx(1.0)


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_top_topics(pair, which):
    result = pair[which].top_topics(corpus, topn=5)
    assert len(result) == 2
    scores = [s for _, s in result]
    assert scores == sorted(scores, reverse=True)
    for topic, score in result:
        assert isinstance(topic, list) and isinstance(score, float) and len(topic) == 5
        for v, k in topic:
            assert isinstance(k, str) and np.issubdtype(type(v), np.floating)


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_state_attributes(pair, which):
    st = pair[which].state
    assert st.numdocs == len(corpus)
    assert st.sstats.shape == (2, V) and np.issubdtype(st.sstats.dtype, np.floating)
    assert st.sstats.sum() == pytest.approx(sum(c for doc in corpus for _, c in doc), rel=1e-3)
    assert st.get_lambda().shape == st.get_Elogbeta().shape == (2, V)
    assert (st.get_Elogbeta() < 0).all()
    assert pair[which].expElogbeta.shape == (2, V)


def test_state_cannot_be_replaced_by_counts(pair):
    _, d = pair
    d.sync_state()  # accepted, nothing to do
    with pytest.raises(AttributeError, match="deepcopy"):
        d.state = d.state


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_persistence_calls(pair, which, tmp_path):
    m = pair[which]
    cls = type(m)
    fname = str(tmp_path / "m")
    m.save(fname)
    m2 = cls.load(fname)
    assert m2.num_topics == m.num_topics
    np.testing.assert_allclose(m.expElogbeta, m2.expElogbeta)
    np.testing.assert_allclose(m[[]], m2[[]])
    m.save(fname, sep_limit=0)
    m2 = cls.load(fname, mmap="r")
    np.testing.assert_allclose(m.expElogbeta, m2.expElogbeta)
    m.save(fname + "a", ignore="id2word")
    assert not cls.load(fname + "a").id2word
    m.save(fname + "b", ignore=["id2word"])
    assert not cls.load(fname + "b").id2word


def test_load_refuses_an_unknown_mmap_mode(pair, tmp_path):
    _, d = pair
    d.save(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="mmap"):
        LdaModel.load(str(tmp_path / "m"), mmap="x")


@pytest.mark.parametrize("which", [0, 1], ids=["gensim", "distlda"])
def test_gensim_callback_metrics(which):
    metrics = [PerplexityMetric(corpus=corpus, logger="shell"),
               DiffMetric(distance="jaccard", num_words=5, logger="shell"),
               ConvergenceMetric(distance="hellinger", logger="shell"),
               CoherenceMetric(corpus=corpus, dictionary=dictionary, coherence="u_mass",
                               topn=5, logger="shell")]
    kw = dict(id2word=dictionary, num_topics=2, passes=3, callbacks=metrics, random_state=0)
    m = GensimLda(corpus, **kw) if which == 0 else LdaModel(corpus, iterations=12, **kw)
    assert sorted(m.metrics) == sorted(str(x) for x in metrics)
    for name, values in m.metrics.items():
        assert len(values) == 3, name  # once per pass
    perplexity = m.metrics[str(metrics[0])]
    assert all(np.isfinite(v) and v > 1 for v in perplexity)
    assert np.asarray(m.metrics[str(metrics[1])][0]).shape == (2,)


def test_seeded_eta_puts_seed_words_on_top():
    """Seeding: a large eta for a topic's seed words, small elsewhere, puts those words at
    the top of that topic (gensim's commented-out test_topic_seeding, made to pass)."""
    seeds = {0: ["graph", "trees", "minors"], 1: ["computer", "system", "user"]}
    for seed in range(3):
        eta = np.full((2, V), 0.01)
        for k, words in seeds.items():
            for w in words:
                eta[k, dictionary.token2id[w]] = 1.0
        lda = LdaModel(corpus, id2word=dictionary, num_topics=2, eta=eta, iterations=60,
                       random_state=seed, distributed=False)
        for k, words in seeds.items():
            top = [w for w, _ in lda.show_topic(k, topn=3)]
            assert sorted(top) == sorted(words), (seed, k, top)


def test_get_document_topics_of_a_sparse_matrix_corpus(pair):
    from gensim.matutils import corpus2csc
    _, d = pair
    X = corpus2csc(corpus, num_terms=V).T.tocsr()
    got = d.get_document_topics(X, minimum_probability=0.0)
    assert len(got) == len(corpus)
    rows = list(got)
    for bow, row, theta in zip(corpus, rows, d.fold_in(corpus)):
        np.testing.assert_allclose([p for _, p in row], theta)
    assert got[3] == rows[3]
