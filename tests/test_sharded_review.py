"""Regressions found by a new-user review of shard-set training on a cluster (2026-12-08).

Each test is a bug reproduced through the public API, now fixed."""

import os
import signal

import pytest

from distlda.corpora import ShardedCorpus
from distlda.models import LdaModel

from cluster import Cluster
from helpers import assert_exact, outcome, planted_corpus, run_in_thread
from test_sharded_cluster import stats
from test_sharded_cluster import train as train_for


def train(corpus, cluster, **kw):
    return train_for(corpus, cluster, **{"iterations": 5, **kw})


@pytest.fixture(scope="module")
def planted():
    X, _ = planted_corpus(D=600, V=300, K=10, L=60, seed=5)
    return X


def write_set(X, path) -> str:
    ShardedCorpus.write(X, str(path), shards=4, id2word={i: f"w{i}" for i in range(300)})
    return str(path)


def test_two_branches_resumed_from_one_saved_model_both_stay_usable(planted, cluster,
                                                                     tmp_path):
    path = write_set(planted, tmp_path / "set")
    f0, f1 = tmp_path / "m0.npz", tmp_path / "m1.npz"
    train(ShardedCorpus(path), cluster).save(str(f0))
    first = LdaModel.load(str(f0))
    first.ns_conf = cluster.ns_conf
    first.train(3)  # writes z-*-00000008 in the run folder
    first.save(str(f1))
    second = LdaModel.load(str(f0))
    second.ns_conf = cluster.ns_conf
    second.alpha = 0.5  # another branch of the same model (any change of its chain)
    second.train(3)  # writes z-*-00000008 again, in the same run folder
    assert_exact(second, planted.sum())
    assert_exact(LdaModel.load(str(f1)), planted.sum())  # CheckpointError: checksum mismatch


@pytest.mark.parametrize("kind", ["shard set", "in-memory"])
def test_a_second_training_with_the_same_checkpoint_place_keeps_the_first_model(
        planted, cluster, tmp_path, kind):
    place = str(tmp_path / "ck")
    if kind == "shard set":
        corpus_a = corpus_b = ShardedCorpus(write_set(planted, tmp_path / "set"))
    else:
        corpus_a, corpus_b = planted, planted[:400]
    a = train(corpus_a, cluster, checkpoint=place, random_state=1)
    b = train(corpus_b, cluster, checkpoint=place, random_state=2)
    assert_exact(b, b.num_tokens)
    assert_exact(a, planted.sum())  # CheckpointError / CorpusFormatError today


def test_a_frozen_worker_with_checkpoints_every_sweep_does_not_fail_the_training(
        tmp_path):
    from distlda.corpora import load_sample
    docs, words = load_sample()
    docs = list(docs)
    path = str(tmp_path / "set")  # 205k tokens in 8 shards, K=300 below
    X = ShardedCorpus.write(docs + docs, path, shards=8, id2word=words)
    with Cluster(workers=3, check=False, timeout=3.0) as c:
        frozen = c.workers[0]

        def freeze(model, st):
            if st.sweep == 5:  # right after the log-likelihood of sweep 5
                os.kill(frozen, signal.SIGSTOP)

        t, box = run_in_thread(lambda: train(ShardedCorpus(path), c, iterations=30,
                                             num_topics=300, eval_every=5,
                                             callbacks=[freeze],
                                             checkpoint=str(tmp_path / "ck"),
                                             checkpoint_every=(1, 0)))
        try:
            lda = outcome(t, box, 180)
        finally:
            os.kill(frozen, signal.SIGCONT)
        assert_exact(lda, X.num_tokens)
        assert stats(c)["lost_workers"] >= 1
    assert c.alive() == []


def test_a_shard_set_training_says_how_it_ran(planted, cluster, tmp_path):
    lda = train(ShardedCorpus(write_set(planted, tmp_path / "set")), cluster, iterations=2)
    assert lda.executor_info is not None and "distributed" in lda.executor_info


def test_a_relative_shard_set_path_trains_from_another_working_folder(planted, cluster,
                                                                        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the workers run in the repository's folder
    write_set(planted, "shards")
    lda = train(ShardedCorpus("shards/"), cluster, iterations=2)
    assert_exact(lda, planted.sum())


def test_a_place_the_workers_cannot_read_fails_clearly_and_keeps_the_cluster(planted, cluster):
    import time

    from distlda.errors import DispatcherLost
    t0 = time.monotonic()
    with pytest.raises(Exception) as info:
        train(planted, cluster, iterations=2, checkpoint="memory://distlda-review/ck")
    assert not isinstance(info.value, DispatcherLost), info.value  # a bad place, not a lost one
    assert "memory://distlda-review/ck" in str(info.value)
    assert time.monotonic() - t0 < 15
    lda = train(planted, cluster, iterations=2)  # the workers are still there
    assert_exact(lda, planted.sum())


def test_a_saved_model_stays_usable_after_its_successors_train(planted, cluster, tmp_path):
    path = write_set(planted, tmp_path / "set")
    files = [tmp_path / f"m{i}.npz" for i in range(3)]
    train(ShardedCorpus(path), cluster, iterations=3).save(str(files[0]))
    for before, after in zip(files, files[1:]):
        m = LdaModel.load(str(before))
        m.ns_conf = cluster.ns_conf
        m.train(3)
        m.save(str(after))
    assert_exact(LdaModel.load(str(files[2])), planted.sum())
    first = LdaModel.load(str(files[0]))
    assert first.document_topics().shape == (planted.shape[0], 10)  # CheckpointError today
