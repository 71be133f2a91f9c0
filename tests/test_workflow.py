"""The training workflow around the sampler: train(), document_topics(), history, callbacks,
summary(), plot_convergence() and the first-run compile note."""

import logging
import sys
import types

import numpy as np
import pytest

from distlda import monitor
from distlda.models import LdaModel

from helpers import planted_corpus, to_bow


@pytest.fixture(scope="module")
def small():
    X, _ = planted_corpus(D=120, V=60, K=3, L=25, seed=4)
    return X


def fit(X, iterations, **kw):
    kw = dict(num_topics=3, random_state=5, distributed=False, chunksize=32, **kw)
    return LdaModel(X, iterations=iterations, **kw)


@pytest.mark.parametrize("workers", [1, 2])
def test_train_continues_the_chain_exactly(small, workers):
    straight = fit(small, 12, workers=workers)
    stepped = fit(small, 5, workers=workers)
    stepped.train(4)
    stepped.update([], iterations=2)    # nothing to add: sweeps only
    stepped.update(None, iterations=1)
    np.testing.assert_array_equal(stepped.sstats, straight.sstats)
    assert stepped.num_docs == straight.num_docs == 120
    assert [h.sweep for h in stepped.history] == list(range(1, 13))


def test_train_needs_documents():
    with pytest.raises(ValueError, match="holds no documents"):
        LdaModel(num_topics=2, distributed=False).train(3)
    with pytest.raises(ValueError, match="corpus is empty"):
        LdaModel(num_topics=2, distributed=False).update([])


def test_document_topics_follow_the_corpus_order(small):
    # two threads reorder tokens inside documents; documents keep their order
    lda = fit(small, 15, workers=2)
    counts = lda.document_topic_counts()
    assert counts.shape == (120, 3)
    np.testing.assert_array_equal(np.asarray(counts.sum(axis=1)).ravel(),
                                  np.asarray(small.sum(axis=1)).ravel())
    assert np.array_equal(np.asarray(counts.sum(axis=0)).ravel(), lda.sstats.sum(axis=1))
    theta = lda.document_topics()
    assert theta.shape == (120, 3) and theta.dtype == np.float64
    np.testing.assert_allclose(theta.sum(axis=1), 1)
    d = 17
    n_d = counts[d].toarray().ravel()
    np.testing.assert_allclose(theta[d], (n_d + lda.alpha) / (n_d.sum() + lda.alpha.sum()))
    # the mixtures agree with fold-in inference on the same documents (same topics)
    inferred = lda.fold_in(small)
    assert np.mean(np.argmax(theta, 1) == np.argmax(inferred, 1)) > 0.8
    # documents added by update() come after the first ones
    lda.update(to_bow(small[:5]), iterations=1)
    assert lda.document_topics().shape == (125, 3)
    assert lda.document_topic_counts()[120:].sum() == small[:5].sum()


def test_history_and_callbacks(small):
    seen = []
    lda = fit(small, 7, eval_every=3, callbacks=[lambda model, stats: seen.append((model, stats))])
    assert [s.sweep for _, s in seen] == list(range(1, 8)) and seen[0][0] is lda
    assert [s for _, s in seen] == lda.history
    evaluated = [h.sweep for h in lda.history if h.log_likelihood is not None]
    assert evaluated == [3, 6, 7]  # every eval_every sweeps and the last one
    assert lda.history[-1].log_likelihood == pytest.approx(lda.log_likelihood_per_token())
    assert all(h.seconds > 0 and h.tokens_per_second > 0 for h in lda.history)
    assert [h.elapsed for h in lda.history] == sorted(h.elapsed for h in lda.history)

    def stop(model, stats):
        if stats.sweep == 9:
            raise KeyboardInterrupt
    lda.callbacks.append(stop)
    with pytest.raises(KeyboardInterrupt):
        lda.train(5)
    assert lda.history[-1].sweep == 9
    with pytest.raises(ValueError, match="not callable"):
        fit(small, 1, callbacks=[42])


def test_summary(small):
    lda = fit(small, 6, alpha="auto", optimize_burnin=2, optimize_interval=2,
              id2word=[f"word{i}" for i in range(60)])
    text = lda.summary(topn=4)
    lines = text.splitlines()
    assert lines[0] == "LdaModel: 3 topics"
    assert f"{small.sum()} tokens" in text and "120 documents" in text and "60 words" in text
    assert "learned ('auto')" in text and "eta:        0.01" in text
    assert "sampler:    dense" in text and "sweeps:     6" in text
    assert f"{lda.log_likelihood_per_token():.4f} per token" in text
    topic_lines = [line for line in lines if "%:" in line]
    assert len(topic_lines) == 3 and all(len(line.split(":")[1].split()) == 4 for line in topic_lines)


def test_plot_convergence(small, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    lda = fit(small, 4, eval_every=2)
    lda.plot_convergence(str(tmp_path / "c.svg"))
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'distlda\[plot\]'"):
        lda.plot_convergence(str(tmp_path / "c.png"))
    monkeypatch.undo()
    with pytest.raises(ValueError, match="no sweeps recorded"):
        LdaModel(num_topics=2, distributed=False).plot_convergence(str(tmp_path / "x.png"))


def test_first_compile_note(monkeypatch, caplog):
    class FakeKernel:  # a numba dispatcher whose on-disk cache index is empty
        signatures = []
        _cache = types.SimpleNamespace(_cache_file=types.SimpleNamespace(_load_index=dict))
    cold = types.ModuleType("cold_kernels")
    cold.kernel = FakeKernel()
    assert monitor.kernels_need_compiling(cold)
    assert not monitor.kernels_need_compiling(types.ModuleType("empty"))
    monkeypatch.setattr(monitor, "_COMPILE_CHECKED", set())
    with caplog.at_level(logging.INFO, logger="distlda"):
        monitor.note_first_compile(cold)
        monitor.note_first_compile(cold)  # once per process
    assert [r.getMessage() for r in caplog.records].count(
        "compiling the sampler's kernels (first run only, 5-20 s; numba caches them for "
        "later runs)...") == 1
    # after a training in this process the real kernels are compiled
    LdaModel([[(0, 1), (1, 2)]], num_topics=2, iterations=2, distributed=False)
    assert not monitor.kernels_need_compiling()
