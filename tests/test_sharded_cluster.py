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
from helpers import (
    assert_exact,
    outcome,
    planted_corpus,
    run_in_thread,
    topic_recovery,
    wait_for,
)


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
    # as good as the same training in-process (seed 0 finds the same optimum there)
    serial = LdaModel(X, num_topics=10, iterations=60, random_state=0, distributed=False,
                      alpha=0.1, eval_every=0)
    assert topic_recovery(lda.get_topics(), phi) >= topic_recovery(serial.get_topics(), phi) - 0.05
    assert lda.history[-1].log_likelihood >= serial.log_likelihood_per_token() - 0.05
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
        lda = outcome(t, box, 180)
        assert_exact(lda, X.sum())
        s = stats(c)
        assert s["sweeps"] == 40 and s["lost_workers"] >= 1 and s["restored_shards"] >= 1
        assert "restored shards" in c.logs() and str(tmp_path / "ckpt") in c.logs()
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


def test_cli_trains_a_shard_set_on_the_cluster_and_writes_doc_topics(planted_set, cluster,
                                                                       tmp_path):
    from distlda import cli
    X, _, path = planted_set
    out, model = tmp_path / "dt.txt", tmp_path / "m.npz"
    host, port = cluster.ns_conf["host"], cluster.ns_conf["port"]
    rc = cli.main(["train", path, "-k", "10", "--iterations", "4", "--distributed", "yes",
                   "--ns-host", host, "--ns-port", str(port), "-q",
                   "--checkpoint", str(tmp_path / "ck"), "--output-doc-topics", str(out),
                   "--output", str(model)])
    assert rc == 0
    lda = LdaModel.load(str(model))
    assert lda.state.shards.place == str(tmp_path / "ck")
    assert lda.state.shards.checkpoint.startswith(str(tmp_path / "ck") + "/")
    # the training documents' mixtures, read back shard by shard from the checkpoints
    counts = lda.document_topic_counts()
    assert counts.shape == (X.shape[0], 10)
    np.testing.assert_array_equal(np.asarray(counts.sum(axis=1)).ravel(),
                                  np.asarray(X.sum(axis=1)).ravel())
    np.testing.assert_array_equal(np.asarray(counts.sum(axis=0)).ravel(), lda.state.nk)
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(rows) == X.shape[0] and rows[5][1] == "planted:6"
    theta = np.array([[float(v) for v in r[2:]] for r in rows])
    np.testing.assert_allclose(theta, lda.document_topics(), rtol=1e-5)
    # --resume goes on from the checkpoints
    rc = cli.main(["train", "--resume", str(model), "--iterations", "2", "--distributed", "yes",
                   "--ns-host", host, "--ns-port", str(port), "-q", "--output", str(model)])
    assert rc == 0
    back = LdaModel.load(str(model))
    assert back.state.sweeps_done == 6 and all(r["sweep"] == 6 for r in back.state.shards.refs)
    assert_exact(back, X.sum())


def test_learned_alpha_and_more_documents_on_a_shard_set_model(planted_set, cluster):
    X, _, path = planted_set
    # alpha="auto": the histograms come from the workers' documents
    lda = train(ShardedCorpus(path), cluster, iterations=12, alpha="auto", optimize_burnin=4,
                optimize_interval=4, eval_every=4)
    assert not np.allclose(lda.alpha, lda.alpha[0])  # learned, asymmetric
    assert len(lda.history) == 12 and np.isfinite(lda.history[-1].log_likelihood)
    assert_exact(lda, X.sum())
    # more in-memory documents: refused on the cluster (nothing changes) ...
    more = [[(1, 2), (5, 1)], [(7, 3)]]
    with pytest.raises(ValueError, match="shard set"):
        lda.update(more, iterations=1)
    assert lda.state.shards is not None and lda.num_tokens == X.sum()
    # ... taken in-process, where the set is read into memory first
    lda.distributed = False
    lda.update(more, iterations=2)
    assert lda.state.shards is None
    assert_exact(lda, X.sum() + 6)


def test_an_in_memory_corpus_with_a_checkpoint_place_goes_to_the_workers_as_a_shard_set(
        planted_set, cluster, tmp_path):
    X, _, _ = planted_set
    lda = train(X, cluster, iterations=5, checkpoint=str(tmp_path / "shared"))
    # written once where every machine reads it, never loaded into the dispatcher
    shared = str(tmp_path / "shared") + "/"
    assert lda.state.shards.url.startswith(shared) and lda.state.shards.url.endswith("/corpus")
    assert lda.state.shards.checkpoint.startswith(shared)
    assert stats(cluster)["bytes_load"] == 0
    assert_exact(lda, X.sum())


def test_dispatcher_killed_mid_training_the_model_keeps_its_last_checkpoint_and_goes_on(
        planted_set, monkeypatch, tmp_path):
    from distlda.cluster import client as _client
    from distlda.errors import DispatcherLost
    monkeypatch.setattr(_client.DistributedExecutor, "CHECKPOINT_SECONDS", 0.0)  # every sweep
    X, _, path = planted_set
    with Cluster(workers=2, check=False) as c:
        corpus = ShardedCorpus(path)
        # checkpoints every 2 sweeps; the training would take far longer than the test
        lda = LdaModel(None, num_topics=10, distributed=True, ns_conf=c.ns_conf, random_state=0,
                       eval_every=0, checkpoint=str(tmp_path / "ck"), checkpoint_every=(2, 600))
        t, box = run_in_thread(lambda: lda.update(corpus, iterations=100000))
        wait_for(lambda: stats(c).get("sweeps", 0) >= 7, 90, "7 sweeps")
        c.kill(c.dispatcher, signal.SIGKILL)
        t.join(60)
        assert not t.is_alive()
        err = box.get("error")
        assert isinstance(err, DispatcherLost), err
        kept = err.model.state.sweeps_done
        assert kept >= 2 and kept % 2 == 0  # a checkpoint that holds every shard
        assert all(r is not None and r["sweep"] == kept for r in lda.state.shards.refs)
        assert_exact(lda, X.sum())
        # a new dispatcher takes over the workers; the model goes on from its checkpoints
        c.start_dispatcher()
        c.wait_workers(2)
        lda.train(3)
        assert lda.state.sweeps_done == kept + 3
        assert_exact(lda, X.sum())
    assert c.alive() == []


def test_a_frozen_worker_is_dropped_and_its_shards_restored(planted_set, tmp_path):
    X, _, path = planted_set
    with Cluster(workers=3, check=True, timeout=3.0) as c:
        t, box = run_in_thread(lambda: train(ShardedCorpus(path), c, iterations=40,
                                             checkpoint=str(tmp_path / "ck")))
        wait_for(lambda: stats(c).get("sweeps", 0) >= 12, 120, "12 sweeps")
        frozen = c.workers[0]
        os.kill(frozen, signal.SIGSTOP)
        try:
            lda = outcome(t, box, 180)
        finally:
            os.kill(frozen, signal.SIGCONT)
        assert_exact(lda, X.sum())
        s = stats(c)
        assert s["lost_workers"] >= 1 and s["restored_shards"] >= 1
    assert c.alive() == []


@pytest.mark.cluster(workers=1)
def test_a_worker_that_joins_mid_training_gets_shards_moved_to_it(planted_set, cluster):
    from distlda.cluster import transport
    X, _, path = planted_set
    lda = LdaModel(None, num_topics=10, distributed=True, ns_conf=cluster.ns_conf,
                   random_state=0, eval_every=0)
    added = []

    def add_one(model, stats_):
        if stats_.sweep == 3:  # between sweeps 3 and 4 it registers and is admitted
            added.append(cluster.add_worker())
            cluster.wait_workers(2)

    lda.callbacks = [add_one]
    lda.update(ShardedCorpus(path), iterations=10)
    assert_exact(lda, X.sum())
    # whole shards moved to it, their assignments relayed from the first worker
    name = next(n for n in cluster.worker_names() if n.endswith(f".{added[0]}"))
    with cluster._ns() as ns:
        uri = ns.lookup(name)
    with transport.proxy(uri, 5.0) as w:
        info = w.ping()
    assert info["sweeps"] > 0  # it swept (its shards were released when the training ended)
    workers = [s["workers"] for s in stats(cluster)["per_sweep"]]
    assert workers[:3] == [1, 1, 1] and workers[-1] == 2


@pytest.mark.parametrize("sampler,K", [("mh", 10), ("dense", 20), ("sparse", 300)])
def test_every_sampler_trains_a_shard_set_exactly(planted_set, cluster, sampler, K):
    # K=300: two bytes a topic, and the moves form (words with their old and new topics)
    X, _, path = planted_set
    lda = train(ShardedCorpus(path), cluster, iterations=4, num_topics=K, sampler=sampler)
    assert lda.executor_info.startswith("distributed (2 workers")
    assert_exact(lda, X.sum())


def test_cli_saves_the_kept_model_when_the_dispatcher_is_lost(planted_set, tmp_path, capsys,
                                                             monkeypatch):
    from distlda import cli
    from distlda.cluster import client as _client
    monkeypatch.setattr(_client.DistributedExecutor, "CHECKPOINT_SECONDS", 0.0)
    X, _, path = planted_set
    model = tmp_path / "m.npz"
    with Cluster(workers=2, check=False) as c:
        host, port = c.ns_conf["host"], c.ns_conf["port"]
        t, box = run_in_thread(lambda: cli.main([
            "train", path, "-k", "10", "--iterations", "100000", "--distributed", "yes",
            "--ns-host", host, "--ns-port", str(port), "-q", "--checkpoint", str(tmp_path / "ck"),
            "-o", str(model)]))
        wait_for(lambda: stats(c).get("sweeps", 0) >= 14, 90, "14 sweeps")
        c.kill(c.dispatcher, signal.SIGKILL)
        t.join(60)
        assert not t.is_alive() and box.get("result") == 2, box
    err = capsys.readouterr().err
    assert "was saved to" in err and str(model) in err, err
    lda = LdaModel.load(str(model))
    assert lda.state.sweeps_done >= 10  # its first checkpoint, at least
    assert_exact(lda, X.sum())
