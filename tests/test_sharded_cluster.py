"""Shard sets on a real cluster: the workers read their own shards, the dispatcher and the
client hold counts and no token, topic assignments live in checkpoints beside the shards,
and the counts stay exactly those of the checkpointed assignments through failures."""

import logging
import os
import signal

import numpy as np
import pytest

from distlda.corpora import ShardedCorpus
from distlda.corpora.checkpoints import CheckpointStore
from distlda.errors import CheckpointError, CorpusFormatError
from distlda.models import LdaModel

from cluster import Cluster
from helpers import assert_exact, planted_corpus, run_in_thread, topic_recovery, wait_for


def train(corpus, cluster, **kw):
    args = dict(num_topics=10, iterations=30, random_state=0, distributed=True, eval_every=0,
                ns_conf=cluster.ns_conf)
    args.update(kw)
    return LdaModel(corpus, **args)


def stats(cluster):
    with cluster.dispatcher_proxy() as d:
        return d.stats()


@pytest.fixture(scope="module")
def planted_set(tmp_path_factory):
    X, phi = planted_corpus(D=1200, V=600, K=10, L=80, seed=3)
    path = tmp_path_factory.mktemp("sets") / "planted"
    ShardedCorpus.write(X, str(path), shards=6, id2word={i: f"w{i}" for i in range(600)})
    return X, phi, str(path)


def test_cluster_trains_a_shard_set_exactly_and_the_model_names_its_checkpoints(
        planted_set, cluster, tmp_path, caplog):
    X, phi, path = planted_set
    corpus = ShardedCorpus(path)
    with caplog.at_level(logging.INFO, logger="distlda"):
        lda = train(corpus, cluster, alpha=0.1, eval_every=20, iterations=60,
                    id2word=corpus.id2word)
    assert "training LDA on the cluster from the shard set" in caplog.text
    # the client holds counts and references, no token
    assert lda.state.chunks == [] and lda.state.shards is not None
    assert lda.num_tokens == X.sum() and lda.num_docs == X.shape[0]
    refs = lda.state.shards.refs
    assert all(r is not None and r["sweep"] == 60 for r in refs)
    assert_exact(lda, X.sum())  # the counts are those of the checkpointed assignments
    assert topic_recovery(lda.get_topics(), phi) >= 0.9
    s = stats(cluster)
    assert s["sweeps"] == 60 and s["lost_workers"] == 0
    # no topic travels: only row changes, far under the byte a token the chunk path sends
    assert 0 < s["bytes_per_token_per_sweep"] < 1.0
    # the checkpoints are beside the shards, two per shard kept
    store = CheckpointStore(lda.state.shards.checkpoint)
    assert lda.state.shards.checkpoint.startswith(path + "/checkpoints/")
    assert store.latest(0)["sweep"] == 60
    # the saved model refers to them, and loads exact
    f = tmp_path / "m.npz"
    lda.save(str(f))
    back = LdaModel.load(str(f))
    assert back.state.shards.refs == refs
    np.testing.assert_array_equal(back.sstats, lda.sstats)
    assert_exact(back, X.sum())
    # it goes on from the checkpoints, on the cluster, exactly
    back.ns_conf = cluster.ns_conf
    back.train(5)
    assert back.state.sweeps_done == 65
    assert all(r["sweep"] == 65 for r in back.state.shards.refs)
    assert_exact(back, X.sum())
    # and in-process: the set and its checkpoints read back into memory
    back.distributed = False
    back.train(2)
    assert back.state.shards is None and back.num_tokens == X.sum()
    assert_exact(back, X.sum())


def test_worker_sigkilled_mid_step_its_shards_come_back_from_checkpoints(planted_set, tmp_path):
    X, _, path = planted_set
    c = Cluster(workers=3, check=True, hold="sample")
    try:
        corpus = ShardedCorpus(path)
        t, box = run_in_thread(lambda: train(corpus, c, iterations=40,
                                             checkpoint=str(tmp_path / "ckpt")))
        # checkpoints every 10 sweeps: kill after the first one
        wait_for(lambda: stats(c).get("sweeps", 0) >= 12, 120, "12 sweeps")
        c.hold_file.touch()
        wait_for(lambda: c.held(), 30, "a worker to reach its sample phase")
        victim = c.held()[0]
        c.kill(victim, signal.SIGKILL)
        c.hold_file.unlink()
        t.join(180)
        assert not t.is_alive()
        if "error" in box:
            raise box["error"]
        lda = box["result"]
        assert_exact(lda, X.sum())
        s = stats(c)
        assert s["sweeps"] == 40 and s["lost_workers"] >= 1 and s["restored_shards"] >= 1
        assert "restored shards" in c.logs() and "from their checkpoints in" in c.logs()
        assert all(r["sweep"] == 40 for r in lda.state.shards.refs)
    finally:
        c.stop()
        print(c.logs())
        c.cleanup()
    assert c.alive() == []


def test_the_first_training_of_a_shard_set_uses_the_models_sampler(planted_set, cluster):
    # A set's first training went around LdaModel._train: the executor kept its default
    # sampler ("sparse", whatever the model said) and executor_info stayed None.
    X, _, path = planted_set
    for sampler, steps in (("mh", 1), ("sparse", 2)):  # MH: one AD-LDA step a sweep
        lda = train(ShardedCorpus(path), cluster, iterations=3, sampler=sampler)
        assert lda.executor_info.startswith("distributed (2 workers"), lda.executor_info
        assert [r["steps"] for r in stats(cluster)["per_sweep"]] == [steps] * 3
        assert_exact(lda, X.sum())


def damaged_copy(src: str, dest) -> str:
    import shutil
    shutil.copytree(src, dest)
    return str(dest)


def test_bad_shard_sets_fail_clearly_before_any_sweep_and_the_cluster_stays_usable(
        planted_set, cluster, tmp_path):
    X, _, path = planted_set
    # a missing shard file
    gone = damaged_copy(path, tmp_path / "gone")
    info = ShardedCorpus(gone).shard(2)
    os.remove(os.path.join(gone, info.words))
    with pytest.raises(CorpusFormatError, match="missing"):
        train(ShardedCorpus(gone), cluster, iterations=3)
    # a shard whose bytes changed
    bad = damaged_copy(path, tmp_path / "bad")
    w = os.path.join(bad, ShardedCorpus(bad).shard(1).words)
    data = bytearray(open(w, "rb").read())
    data[-1] ^= 1
    open(w, "wb").write(bytes(data))
    with pytest.raises(CorpusFormatError, match="checksum"):
        train(ShardedCorpus(bad), cluster, iterations=3)
    # a checkpoint place nobody can write (a path under a regular file)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError):
        train(ShardedCorpus(path), cluster, iterations=3, checkpoint=str(blocker / "ckpt"))
    # a vocabulary that disagrees with id2word
    with pytest.raises(CorpusFormatError, match="disagrees with id2word"):
        train(ShardedCorpus(path), cluster, iterations=3,
              id2word={i: f"other{i}" for i in range(600)})
    # the cluster trains the next one
    lda = train(ShardedCorpus(path), cluster, iterations=3)
    assert_exact(lda, X.sum())


def test_a_saved_model_refuses_when_its_checkpoints_or_its_set_changed(planted_set, cluster,
                                                                        tmp_path):
    X, _, path = planted_set
    mine = damaged_copy(path, tmp_path / "mine")
    lda = train(ShardedCorpus(mine), cluster, iterations=3)
    f = tmp_path / "m.npz"
    lda.save(str(f))
    ref = lda.state.shards.refs[0]
    os.remove(os.path.join(lda.state.shards.checkpoint, ref["file"]))
    back = LdaModel.load(str(f))
    back.ns_conf = cluster.ns_conf
    with pytest.raises(CheckpointError, match="gone"):
        back.state.recount()
    with pytest.raises(CheckpointError):
        back.train(1)
