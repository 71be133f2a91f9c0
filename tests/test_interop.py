"""gensim's consumers on a distlda model: the docs/interop.rst recipes (run as they are),
CoherenceModel, pyLDAvis (the offline page opened in headless Chromium), to_gensim /
from_gensim, the scikit-learn estimator, and the vocabulary and document forms accepted."""

import os
import pickle
import runpy
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from gensim.corpora import Dictionary as GensimDictionary
from gensim.corpora import MmCorpus as GensimMmCorpus
from gensim.models import CoherenceModel

from distlda.corpora import Dictionary, MmCorpus
from distlda.models import LdaModel
from distlda.vocabulary import Vocabulary

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
TEXTS = [["socket", "network", "bytes", "send"], ["file", "path", "read", "lines"],
         ["thread", "lock", "queue", "wait"]] * 20


@pytest.fixture(scope="module")
def small():
    d = GensimDictionary(TEXTS)
    bows = [d.doc2bow(t) for t in TEXTS]
    lda = LdaModel(bows, num_topics=3, id2word=d, iterations=40, random_state=0,
                   distributed=False, workers=1)
    return lda, bows, d


def run_recipe(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # third-party deprecation noise
        return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")


# ---------------------------------------------------------------------- the docs' recipes
def test_recipe_gensim(tmp_path, monkeypatch):
    ns = run_recipe("gensim_convert", tmp_path, monkeypatch)
    g, lda, again = ns["g"], ns["lda"], ns["again"]
    np.testing.assert_allclose(g.get_topics(), lda.get_topics(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(g.alpha, lda.alpha)
    assert g.id2word.token2id == lda.id2word.token2id
    from gensim.models import LdaModel as GensimLda
    back = GensimLda.load(str(tmp_path / "from_distlda.gensim"))
    np.testing.assert_allclose(back.get_topics(), lda.get_topics(), rtol=0, atol=1e-12)
    # the seeded model holds the three planted topics: each word list is one of them
    tops = {frozenset(w for w, _ in again.show_topic(k, 4)) for k in range(3)}
    assert tops == {frozenset(t) for t in TEXTS[:3]}


def test_recipe_coherence_matches_gensim(tmp_path, monkeypatch):
    ns = run_recipe("coherence", tmp_path, monkeypatch)
    g = ns["lda"].to_gensim()
    for measure, cm in ns["scores"].items():
        kw = dict(corpus=ns["corpus"]) if measure == "u_mass" else dict(texts=TEXTS, topn=4)
        ref = CoherenceModel(model=g, coherence=measure, **kw).get_coherence()
        assert cm.get_coherence() == pytest.approx(ref, abs=1e-12), measure
    assert ns["scores"]["c_v"].get_coherence() > 0.9  # the planted topics are coherent


def test_recipe_sklearn(tmp_path, monkeypatch):
    ns = run_recipe("sklearn_pipeline", tmp_path, monkeypatch)
    assert ns["theta"].shape == (60, 3)
    np.testing.assert_allclose(ns["theta"].sum(axis=1), 1)
    assert ns["search"].best_params_ == {"lda__n_components": 3}


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run "
                    "installs it when run as root)")
    return exe


def _circles(exe, page: Path) -> int:
    """Topic circles (svg circle.dot) in the page's DOM after its JavaScript ran, no network."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    if shutil.which("unshare") and os.geteuid() == 0:
        cmd = ["unshare", "-n"] + cmd  # a network namespace without any interface
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    return out.count('class="dot"')


def test_recipe_pyldavis_offline_page_draws_topics(tmp_path, monkeypatch):
    ns = run_recipe("pyldavis_offline", tmp_path, monkeypatch)
    vis = ns["vis"]
    assert len(vis.topic_coordinates) == 3
    page = tmp_path / "topics.html"
    html = page.read_text()
    assert "http" not in html.split("<script", 1)[1].split(">", 1)[0]  # d3 linked locally
    exe = _chromium()
    assert _circles(exe, page) == 3
    # the check can fail: the same page linking the CDN draws nothing without a network
    import pyLDAvis
    pyLDAvis.save_html(vis, str(tmp_path / "online.html"))
    assert _circles(exe, tmp_path / "online.html") == 0


# ---------------------------------------------------------------------- gensim's consumers
def test_pyldavis_prepare_agrees_with_the_gensim_conversion(small):
    import pyLDAvis.gensim_models
    lda, bows, d = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = pyLDAvis.gensim_models.prepare(lda, bows, d, n_jobs=1)
        theirs = pyLDAvis.gensim_models.prepare(lda.to_gensim(), bows, d, n_jobs=1)
        own_vocab = pyLDAvis.gensim_models.prepare(lda, bows, lda.id2word, n_jobs=1)
        distlda_dict = pyLDAvis.gensim_models.prepare(lda, bows, Dictionary(TEXTS), n_jobs=1)
    np.testing.assert_allclose(ours.topic_info["Freq"].to_numpy()[:12],
                               theirs.topic_info["Freq"].to_numpy()[:12], rtol=0.05)
    for other in (own_vocab, distlda_dict):  # the model's id2word or distlda's Dictionary
        assert other.topic_info.equals(ours.topic_info)


def test_inference_has_gensims_shapes(small):
    lda, bows, _ = small
    docs = bows[:5] + [[]]
    gamma, sstats = lda.inference(docs, collect_sstats=True)
    assert gamma.shape == (6, 3) and sstats.shape == (3, lda.num_terms)
    np.testing.assert_allclose(gamma / gamma.sum(1, keepdims=True), lda.fold_in(docs))
    lengths = np.array([sum(c for _, c in doc) for doc in docs])
    np.testing.assert_allclose(gamma.sum(1), lengths + lda.alpha.sum())
    assert sstats.sum() == pytest.approx(lengths.sum())
    # each word's expected counts go where the topic holding the word is
    for w in (0, 5):
        assert sstats[:, w].argmax() == lda.get_topics()[:, w].argmax()
    g2, none = lda.inference(bows[0])
    assert none is None and g2.shape == (1, 3)
    np.testing.assert_array_equal(g2[0], gamma[0])


def test_from_gensim_starts_from_gensims_topics(small):
    from gensim.models import LdaModel as GensimLda
    _, bows, d = small
    g = GensimLda(bows, num_topics=3, id2word=d, passes=10, random_state=1)
    seeded = LdaModel.from_gensim(g, bows, random_state=0)
    assert seeded.num_tokens == 240 and seeded.state.recount()[0].sum() == 240
    np.testing.assert_array_equal(seeded.alpha, g.alpha)
    # no sweep run: the counts are a draw of gensim's solution, not uniform noise
    l1 = np.abs(seeded.get_topics() - g.get_topics()).sum(axis=1)
    uniform = LdaModel(bows, num_topics=3, id2word=d, iterations=0, random_state=0,
                       distributed=False)
    l1_uniform = np.abs(uniform.get_topics() - g.get_topics()).sum(axis=1)
    assert l1.max() < 0.1 and l1_uniform.min() > 1.0


def test_to_gensim_without_vocabulary_and_from_gensim_errors():
    X = sp.csr_matrix(np.array([[3, 1, 0, 0], [0, 0, 2, 4]] * 10))
    lda = LdaModel(X, num_topics=2, iterations=10, random_state=0, distributed=False)
    g = lda.to_gensim()
    assert len(g.id2word) == 4
    np.testing.assert_allclose(g.get_topics(), lda.get_topics(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        LdaModel.from_gensim(g, [[(7, 1)]])
    with pytest.raises(ValueError, match="no vocabulary"):
        LdaModel(num_topics=2, distributed=False).to_gensim()


# ---------------------------------------------------------------------- vocabularies
@pytest.mark.parametrize("make", [
    lambda w: w, lambda w: tuple(w), lambda w: np.array(w), lambda w: np.array(w, dtype=object),
    lambda w: dict(enumerate(w)), lambda w: Dictionary.from_vocab(w),
    lambda w: iter(w), lambda w: [s.encode() for s in w],
    lambda w: GensimDictionary([w]),
], ids=["list", "tuple", "ndarray", "object-array", "dict", "distlda-Dictionary", "iterator",
        "bytes", "gensim-Dictionary"])
def test_every_reasonable_vocabulary(make):
    words = ["bond", "cat", "dog", "stock"]  # sorted, so gensim's ids agree
    lda = LdaModel(num_topics=2, id2word=make(words), distributed=False)
    v = lda.id2word
    assert isinstance(v, Vocabulary) and len(v) == 4 and v[2] == "dog"
    assert v.id2token is v and v.token2id == {w: i for i, w in enumerate(words)}
    assert list(v.keys()) == [0, 1, 2, 3] and dict(v.items()) == dict(enumerate(words))
    assert v.doc2bow(["dog", "cat", "dog", "emu"]) == [(1, 1), (2, 2)]


def test_sklearn_feature_names_as_vocabulary_and_saved(tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer
    cv = CountVectorizer()
    X = cv.fit_transform([" ".join(t) for t in TEXTS])
    lda = LdaModel(X, num_topics=3, id2word=cv.get_feature_names_out(), iterations=5,
                   distributed=False)
    lda.save(str(tmp_path / "m.npz"))
    back = LdaModel.load(str(tmp_path / "m.npz"))
    assert isinstance(back.id2word, Vocabulary) and back.id2word == lda.id2word
    assert back.id2word.token2id["socket"] == cv.vocabulary_["socket"]


@pytest.mark.parametrize("bad, message", [
    ("cat dog", "single string"), ({"cat", "dog"}, "set has no order"),
    (np.array([["a", "b"]]), "1-D array"), (5, "int"), ([["a"], ["b"]], "must be strings"),
    ({"a": "cat"}, "not a non-negative integer"), ([], "empty"),
])
def test_unreasonable_vocabularies_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        LdaModel(num_topics=2, id2word=bad, distributed=False)


# ---------------------------------------------------------------------- single documents
def test_every_reasonable_single_document(small):
    lda, bows, _ = small
    bow = bows[1]
    row = np.zeros(lda.num_terms, np.int64)
    for i, c in bow:
        row[i] = c
    want = lda[bow]
    assert lda[sp.csr_matrix(row)] == want and lda[row] == want
    assert lda[sp.coo_array(row.reshape(1, -1))] == want
    assert lda.get_document_topics(sp.csr_matrix(row)) == want
    assert lda[np.vstack([row, row])] == [want, want]  # a 2-D array is a corpus
    assert lda[sp.csr_matrix(np.vstack([row, row]))] == [want, want]


@pytest.mark.parametrize("bad, message", [
    (np.ones(3), "count vector of 3 words for a vocabulary of 12"),
    (sp.csr_matrix(np.ones((1, 20))), "count vector of 20 words"),
    (["socket", "network"], "a list of words.*doc2bow"),
    (np.array([0.5] * 12), "count must be an integer"),
])
def test_unreasonable_documents_are_refused(small, bad, message):
    lda = small[0]
    with pytest.raises(ValueError, match=message):
        lda[bad]


# ---------------------------------------------------------------------- scikit-learn
#: check_estimator's checks that fail with the default non_integer="error", all because their
#: data are random reals, which a Gibbs sampler of word counts refuses (by design).
def test_check_estimator_passes():
    from sklearn.utils.estimator_checks import check_estimator

    from distlda.sklearn import GibbsLDA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            GibbsLDA(n_components=3, max_iter=10, inference_iterations=10, random_state=0,
                     non_integer="round"), on_fail=None)
    not_passed = {r["check_name"]: r["status"] for r in results if r["status"] != "passed"}
    # check_array_api_input: sklearn skips it itself unless SCIPY_ARRAY_API=1 is set, and
    # GibbsLDA does not take array-API arrays (numba kernels need numpy).
    assert set(not_passed) <= {"check_array_api_input"}, not_passed
    assert all(s == "skipped" for s in not_passed.values())
    assert len(results) > 40


def test_estimator_params_and_errors():
    from sklearn.base import clone

    from distlda.sklearn import GibbsLDA
    X = np.array([[3, 1, 0, 0], [0, 0, 2, 4], [2, 2, 0, 0], [0, 1, 3, 3]] * 5)
    est = GibbsLDA(n_components=2, max_iter=20, random_state=0, n_jobs=-1)
    assert est.get_params()["n_jobs"] == -1 and clone(est).set_params(n_jobs=2).n_jobs == 2
    theta = est.fit_transform(X)
    assert est.model_.workers >= 1 and est.model_.distributed is False
    np.testing.assert_allclose(est.components_ / est.components_.sum(1, keepdims=True),
                               est.model_.get_topics())
    assert theta.shape == (20, 2) and (theta[0].argmax() != theta[1].argmax())
    assert est.perplexity(X) == pytest.approx(np.exp(-est.score(X)))
    with pytest.raises(ValueError, match="non-integer counts.*non_integer='round'"):
        GibbsLDA(n_components=2).fit(X * 0.5)
    with pytest.raises(ValueError, match="Negative values"):
        GibbsLDA(n_components=2).fit(-X)
    with pytest.raises(ValueError, match="n_jobs"):
        GibbsLDA(n_components=2, n_jobs=0).fit(X)


# ---------------------------------------------------------------------- corpora
def test_mmcorpus_random_access_as_gensim(tmp_path):
    docs = [[(0, 1), (3, 2)], [], [(1, 5)], [(2, 1), (4, 1), (5, 3)]] * 25
    GensimMmCorpus.serialize(str(tmp_path / "g.mm"), docs)
    MmCorpus.serialize(str(tmp_path / "d.mm.gz"), docs)
    g = GensimMmCorpus(str(tmp_path / "g.mm"))
    for fname in ("g.mm", "d.mm.gz"):
        c = MmCorpus(str(tmp_path / fname))
        assert len(c) == 100
        for i in (0, 1, 2, 51, 99, -1):
            assert c[i] == [(int(w), int(n)) for w, n in g[i]] == docs[i]
        assert c[1:4] == docs[1:4] and c[[3, 0]] == [docs[3], docs[0]]
    with pytest.raises(IndexError):
        c[100]
    with pytest.raises(TypeError):
        c["0"]


def test_dictionary_saves_json_and_refuses_pickles(tmp_path):
    d = Dictionary(TEXTS[:3] + [["socket", "socket"]])
    d.save(str(tmp_path / "d.json.gz"))
    back = Dictionary.load(str(tmp_path / "d.json.gz"))
    assert back == d and back.cfs == d.cfs and back.dfs == d.dfs
    assert (back.num_docs, back.num_pos, back.num_nnz) == (d.num_docs, d.num_pos, d.num_nnz)
    GensimDictionary(TEXTS).save(str(tmp_path / "g.dict"))
    with pytest.raises(ValueError, match="pickle.*runs code.*save_as_text"):
        Dictionary.load(str(tmp_path / "g.dict"))
    # a pickle that would run code when loaded does not
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    (tmp_path / "evil.dict").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="pickle"):
        Dictionary.load(str(tmp_path / "evil.dict"))
    assert not marker.exists()
    (tmp_path / "junk.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a valid distlda Dictionary"):
        Dictionary.load(str(tmp_path / "junk.json"))


@pytest.mark.parametrize("bad, error, message", [
    (42, TypeError, "expected a document .* got int"),
    ("socket network", TypeError, "a string is not a document.*doc2bow"),
])
def test_neither_document_nor_corpus(small, bad, error, message):
    with pytest.raises(error, match=message):
        small[0][bad]


def test_gibbs_lda_takes_scikit_learns_vb_settings_and_names_its_own_errors():
    from distlda.sklearn import GibbsLDA
    X = np.random.default_rng(0).integers(0, 3, (30, 12))
    with pytest.warns(UserWarning, match="ignores batch_size, learning_method"):
        GibbsLDA(3, learning_method="online", batch_size=64, max_iter=3,
                 random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's defaults: no warning
        GibbsLDA(3, learning_method="batch", max_iter=3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        GibbsLDA(0).fit(X)


def test_from_gensim_refuses_what_is_not_a_gensim_model_and_keeps_its_sweeps():
    from gensim.models import LdaModel as GensimLda
    from gensim.test.utils import common_corpus, common_dictionary

    from distlda.models import LdaModel
    with pytest.raises(TypeError, match="gensim LdaModel, got str"):
        LdaModel.from_gensim("foo", common_corpus)
    g = GensimLda(common_corpus, num_topics=2, id2word=common_dictionary, random_state=0)
    lda = LdaModel.from_gensim(g, common_corpus, iterations=5, random_state=0)
    assert lda.iterations == 5 and int(lda.sstats.sum()) == sum(c for d in common_corpus
                                                                  for _, c in d)
