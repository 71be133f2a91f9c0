"""Distributed mode end to end, on a real Pyro5 cluster (name server, dispatcher and workers
as subprocesses on free ports of 127.0.0.1, stopped by PID when each test ends)."""

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

from distlda.cluster import client as _client
from distlda.cluster import transport
from distlda.errors import ClusterUnavailable
from distlda.models import LdaModel

from cluster import REPO, Cluster, free_port
from helpers import assert_exact, planted_corpus, run_in_thread, to_bow, topic_recovery, wait_for


def train(corpus, cluster, **kw):
    args = dict(num_topics=10, iterations=60, random_state=0, distributed=True, eval_every=0,
                chunksize=100, ns_conf=cluster.ns_conf)
    args.update(kw)
    return LdaModel(corpus, **args)


def dispatcher_stats(cluster):
    with cluster.dispatcher_proxy() as d:
        return d.stats()


# ---------------------------------------------------------------------------- training
def test_recovers_planted_topics_exactly(planted, cluster, caplog):
    X, phi = planted
    with caplog.at_level(logging.INFO, logger="distlda"):
        lda = train(X, cluster, alpha=0.1, eval_every=20)
    assert "using distributed version with 2 workers" in caplog.text
    assert lda.executor_info.startswith("distributed")
    assert topic_recovery(lda.get_topics(), phi) >= 0.9
    assert_exact(lda, X.sum())
    stats = dispatcher_stats(cluster)
    assert stats["sweeps"] == 60 and stats["lost_workers"] == 0
    # two vocabulary blocks, so two steps a sweep, each worker on one block at a time
    assert [r["steps"] for r in stats["per_sweep"]] == [2] * len(stats["per_sweep"])
    # topics travel as 1 byte a token, rows as sparse deltas: a few bytes a token a sweep
    assert 0 < stats["bytes_per_token_per_sweep"] < 8


@pytest.mark.parametrize("cluster,sampler", [
    pytest.param(None, "sparse", marks=pytest.mark.cluster(workers=1, check=False), id="whole"),
    pytest.param(None, "dense", marks=pytest.mark.cluster(workers=1, check=False),
                 id="dense"),
    pytest.param(None, "sparse", marks=pytest.mark.cluster(workers=1, check=False,
                                                           piece_bytes=999),
                 id="in-pieces")], indirect=["cluster"])
def test_one_worker_runs_the_serial_sweep_function_bit_for_bit(cluster, sampler, monkeypatch):
    # One worker sweeps every chunk (tokens sorted by word in each document, as the client
    # sends them), with the same seeds, keeping its word lists across sweeps: exactly the
    # chain of the in-process executor with one thread.
    from distlda.gibbs import blocks
    from distlda.gibbs.local import LocalExecutor
    X, _ = planted_corpus(D=300, V=200, K=5, L=50, seed=2)
    kw = dict(num_topics=5, iterations=0, random_state=7, chunksize=50, sampler=sampler)
    ref = LdaModel(X, distributed=False, **kw)
    for c in ref.state.chunks:
        blocks.sort_for_blocks(c)
    LocalExecutor(1, sampler=sampler).run(ref.state, 15, ref.rng, lambda it: None)
    dist = LdaModel(X, distributed=False, **kw)
    if cluster.env.get("DISTLDA_PIECE_BYTES"):  # every array over 999 bytes goes in pieces
        from distlda.cluster import codec
        monkeypatch.setattr(codec, "PIECE_BYTES", 999)
    uri, _ = _client.find_dispatcher(cluster.ns_conf)
    _client.DistributedExecutor(uri, 1, sampler=sampler).run(dist.state, 15, dist.rng,
                                                             lambda it, **kw: None)
    np.testing.assert_array_equal(dist.sstats, ref.sstats)
    assert_exact(dist, X.sum())


@pytest.mark.cluster(workers=2, check=False)
def test_auto_alpha_on_the_cluster_learns_from_the_current_assignments(cluster):
    # as tests/test_hyper.py in-process: alpha="auto" starts at 0.1, twice the planted 0.05;
    # on a cluster the histograms come from the dispatcher's committed topics every sweep
    X, phi = planted_corpus(D=600, V=300, K=10, L=80, alpha=0.05, seed=4)
    lda = train(X, cluster, num_topics=10, alpha="auto", iterations=80, optimize_burnin=20)
    assert lda.executor_info.startswith("distributed")
    assert abs(lda.alpha.mean() - 0.05) < abs(0.1 - 0.05) / 2, lda.alpha
    assert_exact(lda, X.sum())


@pytest.mark.cluster(workers=2, check=False)
def test_callbacks_on_the_cluster_see_the_model_after_each_sweep(planted, cluster):
    X, _ = planted
    seen = []
    lda = train(X, cluster, iterations=6,
                callbacks=[lambda m, st: seen.append(m.sstats.copy())])
    assert len(seen) == 6
    assert all(not np.array_equal(a, b) for a, b in zip(seen, seen[1:]))  # not a checkpoint
    np.testing.assert_array_equal(seen[-1], lda.sstats)
    assert_exact(lda, X.sum())


@pytest.mark.cluster(workers=2, check=False)
def test_mh_sampler_on_the_cluster_is_exact(cluster):
    X, phi = planted_corpus(D=600, V=300, K=8, L=80, seed=9)
    lda = train(X, cluster, num_topics=8, iterations=40, sampler="mh", alpha=0.1)
    assert lda.executor_info.startswith("distributed")
    assert_exact(lda, X.sum())
    # MH phases need whole documents: one step a sweep (AD-LDA), no vocabulary blocks
    assert {r["steps"] for r in dispatcher_stats(cluster)["per_sweep"]} == {1}
    assert topic_recovery(lda.get_topics(), phi) >= 0.85


def test_full_api_in_client_and_cluster_serves_next_training(cluster, tmp_path):
    X, phi = planted_corpus(D=300, V=200, K=5, L=50, seed=3)
    lda = train(X, cluster, num_topics=5, iterations=20)
    assert_exact(lda, X.sum())
    doc = to_bow(X[:1])[0]
    topics = lda.get_document_topics(doc, minimum_probability=0)
    assert len(topics) == 5 and abs(sum(p for _, p in topics) - 1) < 1e-6
    assert np.allclose(lda.get_topics().sum(axis=1), 1)
    lda.save(str(tmp_path / "m.npz"))
    back = LdaModel.load(str(tmp_path / "m.npz"))
    np.testing.assert_array_equal(back.sstats, lda.sstats)
    # a second training (update with new documents) on the same cluster, then one in-process
    Y, _ = planted_corpus(D=100, V=200, K=5, L=50, seed=4)
    lda.update(Y, iterations=10)
    assert lda.executor_info.startswith("distributed")
    assert_exact(lda, X.sum() + Y.sum())
    lda.distributed = False
    lda.update(Y, iterations=5)
    assert lda.executor_info.startswith("serial")
    assert_exact(lda, X.sum() + 2 * Y.sum())


# ---------------------------------------------------------------------------- failures
@pytest.mark.parametrize("check", [True, False], ids=["checked", "unchecked"])
@pytest.mark.parametrize("phase", ["sample", "report"])
def test_worker_sigkilled_at_a_phase_of_its_job_run_completes_exactly(check, phase):
    # The hold point stops a worker's job at the start of ``phase`` (sampling, or reporting
    # after sampling): it is killed exactly there, and its chunks are swept again elsewhere.
    X, _ = planted_corpus(D=3000, V=1000, K=20, L=100, seed=5)
    c = Cluster(workers=3, check=check, hold=phase)
    try:
        t, box = run_in_thread(lambda: train(X, c, num_topics=20, iterations=60))
        wait_for(lambda: dispatcher_stats(c).get("sweeps", 0) >= 3, 60, "3 sweeps")
        c.hold_file.touch()
        wait_for(lambda: c.held(), 30, f"a worker to reach its {phase} phase")
        victim = c.held()[0]
        name = next(n for n in c.worker_names() if n.endswith(f".{victim}"))
        c.kill(victim, signal.SIGKILL)
        c.hold_file.unlink()
        t.join(120)
        assert not t.is_alive()
        if "error" in box:
            raise box["error"]
        lda = box["result"]
        assert_exact(lda, X.sum())
        stats = dispatcher_stats(c)
        assert stats["sweeps"] == 60
        assert stats["lost_workers"] >= 1 and stats["redispatched_chunks"] >= 1
        assert name not in c.worker_names()  # the dispatcher removed the dead registration
    finally:
        c.stop()
        print(c.logs())
        c.cleanup()
    assert c.alive() == []


def test_workers_sigkilled_while_chunks_are_loaded_and_another_joins():
    # kill 2 of 3 workers as soon as the training starts (chunks in flight to them), then
    # kill the last one mid-training and start a fresh one: the run still completes exactly
    X, _ = planted_corpus(D=2000, V=800, K=10, L=100, seed=8)
    with Cluster(workers=3, check=False) as c:
        first, second, third = c.workers
        t, box = run_in_thread(lambda: train(X, c, iterations=60))
        wait_for(lambda: "sweeps" in dispatcher_stats(c), 60, "the training to start")
        c.kill(first)
        c.kill(second)
        wait_for(lambda: dispatcher_stats(c).get("sweeps", 0) >= 5, 60, "5 sweeps")
        c.add_worker(wait=False)
        c.kill(third)
        t.join(120)
        assert not t.is_alive()
        if "error" in box:
            raise box["error"]
        assert_exact(box["result"], X.sum())
        assert dispatcher_stats(c)["lost_workers"] >= 3
    assert c.alive() == []


@pytest.mark.cluster(workers=1)
def test_worker_added_mid_training_gets_work(cluster):
    X, _ = planted_corpus(D=1000, V=500, K=10, L=100, seed=6)
    lda = LdaModel(X, num_topics=10, iterations=0, random_state=0, chunksize=100)
    uri, info = _client.find_dispatcher(cluster.ns_conf)
    assert info["workers"] == 1
    added = []

    def on_sweep(it, **kw):
        if it == 2:  # between sweeps 3 and 4: it registers, and the dispatcher admits it
            added.append(cluster.add_worker())
            cluster.wait_workers(2)

    ex = _client.DistributedExecutor(uri, 1)
    ex.run(lda.state, 12, np.random.default_rng(0), on_sweep)
    assert_exact(lda, X.sum())
    name = next(n for n in cluster.worker_names() if n.endswith(f".{added[0]}"))
    with cluster._ns() as ns:
        uri = ns.lookup(name)
    with transport.proxy(uri, 5.0) as w:
        assert w.ping()["sweeps"] > 0, "the late worker swept chunks"
    workers = [s["workers"] for s in ex.stats["per_sweep"]]
    assert workers[:3] == [1, 1, 1] and workers[-1] == 2


def test_dispatcher_death_fails_training_and_keeps_model_exact():
    X, _ = planted_corpus(D=2000, V=1000, K=20, L=100, seed=7)
    with Cluster(workers=1) as c:
        lda = LdaModel(X, num_topics=20, iterations=0, distributed=True, ns_conf=c.ns_conf,
                       random_state=0)
        t, box = run_in_thread(lambda: lda.update(X[:10], iterations=1000))
        wait_for(lambda: dispatcher_stats(c).get("sweeps", 0) >= 2, 60, "2 sweeps")
        c.kill(c.dispatcher, signal.SIGKILL)
        t.join(60)
        assert not t.is_alive()
        assert isinstance(box.get("error"), RuntimeError)
        assert "dispatcher" in str(box["error"])
        # the model keeps its state from before the training, exact (plus the new chunks'
        # initial assignments) and usable
        assert_exact(lda, X.sum() + X[:10].sum())
        assert len(lda.get_document_topics(to_bow(X[:1])[0])) >= 1
        # the history holds the sweeps the state holds, not the ones rolled back
        assert [h.sweep for h in lda.history] == list(range(1, lda.state.sweeps_done + 1))
    assert c.alive() == []


def test_dispatcher_death_in_auto_mode_finishes_in_process_from_the_last_checkpoint(
        monkeypatch, caplog):
    monkeypatch.setattr(_client.DistributedExecutor, "CHECKPOINT_SECONDS", 0.0)  # every sweep
    X, phi = planted_corpus(D=600, V=300, K=8, L=80, seed=11)
    with Cluster(workers=1) as c:
        with caplog.at_level(logging.INFO, logger="distlda"):
            t, box = run_in_thread(lambda: LdaModel(
                X, num_topics=8, iterations=60, distributed=None, ns_conf=c.ns_conf,
                random_state=0, eval_every=0, alpha=0.5))
            wait_for(lambda: dispatcher_stats(c).get("sweeps", 0) >= 5, 60, "5 sweeps")
            c.kill(c.dispatcher, signal.SIGKILL)
            t.join(120)
        assert not t.is_alive()
        assert "error" not in box, box.get("error")
        lda = box["result"]
        assert "then serial" in lda.executor_info
        kept = [r.getMessage() for r in caplog.records if "lost the dispatcher" in r.message]
        assert kept and "keeps the 0 sweeps" not in kept[0], kept  # checkpoints kept progress
        assert_exact(lda, X.sum())
        assert topic_recovery(lda.get_topics(), phi) >= 0.85
        assert [h.sweep for h in lda.history] == list(range(1, 61))  # each sweep once
    assert c.alive() == []


def test_a_restarted_dispatcher_takes_over_the_live_workers():
    X, _ = planted_corpus(D=300, V=200, K=5, L=50, seed=12)
    with Cluster(workers=2, check=False) as c:
        first = train(X, c, num_topics=5, iterations=10)
        assert_exact(first, X.sum())
        names = c.worker_names()
        c.kill(c.dispatcher, signal.SIGKILL)  # its registration stays behind, dead
        c.start_dispatcher()                  # replaces it, and finds the workers by itself
        c.wait_workers(2)
        again = train(X, c, num_topics=5, iterations=10)
        assert again.executor_info.startswith("distributed (2 workers")
        assert_exact(again, X.sum())
        assert c.worker_names() == names  # the same processes, no manual step
    assert c.alive() == []


def test_a_frozen_worker_never_makes_the_dispatcher_look_dead():
    # ping answers from the dispatcher's own state: with a worker frozen (SIGSTOP) the
    # decision still takes well under a second, and the frozen worker is dropped
    X, _ = planted_corpus(D=300, V=200, K=5, L=50, seed=13)
    with Cluster(workers=2, check=False, timeout=3.0) as c:
        frozen = c.workers[0]
        os.kill(frozen, signal.SIGSTOP)
        try:
            t0 = time.perf_counter()
            uri, info = _client.find_dispatcher(c.ns_conf)
            assert time.perf_counter() - t0 < 1.0
            lda = train(X, c, num_topics=5, iterations=10)
            assert_exact(lda, X.sum())
        finally:
            os.kill(frozen, signal.SIGCONT)
    assert c.alive() == []


def test_distributed_true_waits_for_a_slow_dispatcher():
    # a dispatcher that answers late (here frozen for 2 s) is slow, not missing: with
    # distributed=True the client waits for it (up to client.DISPATCHER_WAIT seconds)
    X, _ = planted_corpus(D=100, V=100, K=3, L=30, seed=14)
    with Cluster(workers=1, check=False) as c:
        os.kill(c.dispatcher, signal.SIGSTOP)
        threading.Timer(2.0, os.kill, (c.dispatcher, signal.SIGCONT)).start()
        t0 = time.perf_counter()
        lda = train(X, c, num_topics=3, iterations=5)
        assert time.perf_counter() - t0 > 1.5
        assert lda.executor_info.startswith("distributed")
        assert_exact(lda, X.sum())
    assert c.alive() == []


# ---------------------------------------------------------------------------- the decision
def test_distributed_true_without_cluster_fails_fast_and_clearly():
    X, _ = planted_corpus(D=20, V=30, K=2, L=10)
    port = free_port()
    t0 = time.perf_counter()
    # ClusterUnavailable: a RuntimeError, and a DistldaError users catch by name
    with pytest.raises(ClusterUnavailable, match=rf"no Pyro5 name server at 127\.0\.0\.1:{port}"):
        LdaModel(X, num_topics=2, iterations=2, distributed=True,
                 ns_conf={"host": "127.0.0.1", "port": port})
    assert time.perf_counter() - t0 < 2


def test_distributed_true_names_the_missing_part():
    X, _ = planted_corpus(D=20, V=30, K=2, L=10)
    with Cluster(workers=0, dispatcher=False) as c:
        with pytest.raises(RuntimeError, match="no dispatcher registered"):
            LdaModel(X, num_topics=2, iterations=2, distributed=True, ns_conf=c.ns_conf)
    with Cluster(workers=0) as c:
        with pytest.raises(RuntimeError, match="0 workers"):
            LdaModel(X, num_topics=2, iterations=2, distributed=True, ns_conf=c.ns_conf)
        # auto mode falls back to serial when the cluster has no workers
        lda = LdaModel(X, num_topics=2, iterations=2, distributed=None, ns_conf=c.ns_conf)
        assert lda.executor_info.startswith("serial")
    assert c.alive() == []


def test_auto_mode_falls_back_to_serial_in_under_2_seconds(caplog):
    X, _ = planted_corpus(D=20, V=30, K=2, L=10)
    conf = {"host": "127.0.0.1", "port": free_port()}
    t0 = time.perf_counter()
    assert _client.choose_executor(None, conf, 1) is None
    assert time.perf_counter() - t0 < 2
    with caplog.at_level(logging.INFO, logger="distlda"):
        lda = LdaModel(X, num_topics=2, iterations=2, distributed=None, ns_conf=conf)
    assert lda.executor_info.startswith("serial")
    assert "serial" in caplog.text
    assert_exact(lda, X.sum())


def test_distributed_false_never_touches_the_network(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("network used")
    monkeypatch.setattr(_client, "find_dispatcher", boom)
    X, _ = planted_corpus(D=20, V=30, K=2, L=10)
    lda = LdaModel(X, num_topics=2, iterations=2, distributed=False)
    assert lda.executor_info.startswith("serial")



# ---------------------------------------------------------------------------- processes
@pytest.mark.parametrize("module", ["lda_worker", "lda_dispatcher"])
def test_cluster_processes_have_help(module):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", f"distlda.models.{module}", "--help"],
                         capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert out.returncode == 0
    for opt in ("--ns-host", "--ns-port", "--host", "--port"):
        assert opt in out.stdout


def test_busy_dispatcher_auto_mode_trains_in_process(cluster):
    X, _ = planted_corpus(D=1000, V=500, K=10, L=100, seed=10)
    t, box = run_in_thread(lambda: train(X, cluster, iterations=150))
    wait_for(lambda: dispatcher_stats(cluster).get("sweeps", 0) >= 1, 60, "a sweep")
    Y, _ = planted_corpus(D=20, V=30, K=2, L=10)
    lda = LdaModel(Y, num_topics=2, iterations=2, distributed=None, ns_conf=cluster.ns_conf)
    assert lda.executor_info.startswith("serial")
    with pytest.raises(RuntimeError, match="busy"):
        LdaModel(Y, num_topics=2, iterations=2, distributed=True, ns_conf=cluster.ns_conf)
    t.join(120)
    assert "error" not in box
    assert_exact(box["result"], X.sum())


def test_a_dispatcher_that_has_just_started_counts_the_registered_workers():
    # It answered "0 workers" for about 0.5 s (its first listing came after one probe
    # interval): distributed=True then failed with "has 0 workers" and auto mode trained
    # in-process without a word about the cluster it missed (issue 25).
    with Cluster(workers=2, check=False) as c:
        for _ in range(3):
            c.kill(c.dispatcher, signal.SIGKILL)
            c.start_dispatcher()  # returns as soon as the new one answers a ping
            uri, info = _client.find_dispatcher(c.ns_conf)
            assert info["workers"] == 2, info
    assert c.alive() == []
