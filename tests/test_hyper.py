"""alpha="auto": the fixed point moves alpha toward the prior that generated the corpus."""

import numpy as np

from distlda.gibbs.chunks import Chunk
from distlda.gibbs.hyper import count_histograms, optimize_alpha
from distlda.models import LdaModel

from helpers import planted_corpus, topic_recovery


def test_fixed_point_recovers_dirichlet_parameter_from_known_counts():
    # documents whose topic counts are drawn from a Dirichlet-multinomial with a known alpha
    rng = np.random.default_rng(0)
    true = np.array([0.5, 0.1, 0.1, 0.05])
    theta = rng.dirichlet(true, size=4000)
    topics = np.concatenate([rng.choice(4, size=50, p=t) for t in theta]).astype(np.int32)
    doc_ptr = np.arange(0, topics.size + 1, 50, dtype=np.int64)
    chunk = Chunk(words=np.zeros_like(topics), doc_ptr=doc_ptr, topics=topics)
    learned = optimize_alpha(np.full(4, 1.0), count_histograms([chunk], 4))
    np.testing.assert_allclose(learned, true, rtol=0.15)


def test_auto_alpha_moves_toward_the_planted_value():
    X, phi = planted_corpus(D=1000, K=10, alpha=0.05, seed=3)
    # alpha="auto" starts at 1/K = 0.1 per topic, twice the planted 0.05
    lda = LdaModel(X, num_topics=10, alpha="auto", iterations=80, random_state=0,
                   distributed=False, eval_every=0, chunksize=250, optimize_burnin=20)
    mean = lda.alpha.mean()
    assert abs(mean - 0.05) < abs(0.1 - 0.05) / 2, lda.alpha
    assert topic_recovery(lda.get_topics(), phi) >= 0.85  # 0.88; fixed alpha=0.05 gives 0.90-1.0
    assert lda.sstats.sum() == X.sum()


def test_auto_alpha_survives_save_and_load(tmp_path):
    X, _ = planted_corpus(D=200, K=5, seed=1)
    lda = LdaModel(X, num_topics=5, alpha="auto", iterations=30, random_state=0,
                   distributed=False, eval_every=0)
    lda.save(str(tmp_path / "m.npz"))
    back = LdaModel.load(str(tmp_path / "m.npz"))
    assert back.optimize_alpha and np.array_equal(back.alpha, lda.alpha)
    lda.update(X[:20], iterations=10)
    back.update(X[:20], iterations=10)
    np.testing.assert_array_equal(back.alpha, lda.alpha)
    np.testing.assert_array_equal(back.sstats, lda.sstats)
