"""Distributed mode on a real Pyro5 cluster (name server, dispatcher, workers as subprocesses).

Every test's processes are started by :class:`cluster.Cluster` on free ports of 127.0.0.1 and
stopped by PID when the test ends.
"""

import logging
import signal
import threading
import time

import numpy as np
import pytest

from cluster import REPO, Cluster, free_port
from conftest import planted_corpus, to_bow, topic_recovery
from distlda.cluster import client as _client
from distlda.cluster import codec as _wire
from distlda.models import LdaModel


def assert_exact(lda, n_tokens):
    """sstats sums to the token count and equals the counts recomputed from the assignments."""
    assert lda.sstats.sum() == n_tokens
    nwk, nk = lda._state.recount()
    np.testing.assert_array_equal(nwk.T, lda.sstats)
    np.testing.assert_array_equal(nk, lda.sstats.sum(axis=1))


@pytest.fixture
def cluster(request):
    """A cluster: 2 workers, or ``@pytest.mark.parametrize("cluster", [n], indirect=True)``
    for ``n``, or ``[(n, False)]`` for ``n`` workers without the dispatcher's self-check
    (DISTLDA_CHECK, which makes workers verify every sparse model update)."""
    param = getattr(request, "param", 2)
    n, check = param if isinstance(param, tuple) else (param, True)
    c = Cluster(workers=n, check=check)
    try:
        yield c
    finally:
        c.stop()
        print(c.logs())  # shown by pytest when the test fails
        c.cleanup()
        assert c.alive() == [], "every process the test started is stopped"


def train(corpus, cluster, **kw):
    args = dict(num_topics=10, iterations=60, random_state=0, distributed=True, eval_every=0,
                chunksize=100, ns_conf=cluster.ns_conf)
    args.update(kw)
    return LdaModel(corpus, **args)


def dispatcher_stats(cluster):
    with cluster.dispatcher_proxy() as d:
        return d.stats()


def run_in_thread(fn):
    """Run ``fn`` in a thread; returns (thread, box) where box gets 'result' or 'error'."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # re-raised by the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


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


@pytest.mark.parametrize("cluster", [(1, False)], indirect=True, ids=["1"])
def test_one_worker_runs_the_serial_sweep_function_bit_for_bit(cluster):
    # One worker sweeps every chunk (tokens sorted by word in each document, as the client
    # sends them), with the same seeds, keeping its word lists across sweeps: exactly the
    # chain of the in-process executor with one thread.
    from distlda.gibbs import kernels as K_
    from distlda.gibbs.local import LocalExecutor
    X, _ = planted_corpus(D=300, V=200, K=5, L=50, seed=2)
    kw = dict(num_topics=5, iterations=0, random_state=7, chunksize=50, sampler="sparse")
    ref = LdaModel(X, distributed=False, **kw)
    for c in ref._state.chunks:
        K_.sort_doc_tokens(c.words, c.topics, c.doc_ptr)
    LocalExecutor(1).run(ref._state, 15, ref._rng, lambda it: None)
    dist = LdaModel(X, distributed=False, **kw)
    uri, _ = _client.find_dispatcher(cluster.ns_conf)
    _client.DistributedExecutor(uri, 1).run(dist._state, 15, dist._rng,
                                            lambda it, **kw: None)
    np.testing.assert_array_equal(dist.sstats, ref.sstats)
    assert_exact(dist, X.sum())


@pytest.mark.parametrize("cluster", [(2, False)], indirect=True, ids=["2"])
def test_auto_alpha_on_the_cluster_learns_from_the_current_assignments(cluster):
    # as tests/test_hyper.py in-process: alpha="auto" starts at 0.1, twice the planted 0.05;
    # on a cluster the histograms come from the dispatcher's committed topics every sweep
    X, phi = planted_corpus(D=600, V=300, K=10, L=80, alpha=0.05, seed=4)
    lda = train(X, cluster, num_topics=10, alpha="auto", iterations=80, optimize_burnin=20)
    assert lda.executor_info.startswith("distributed")
    assert abs(lda.alpha.mean() - 0.05) < abs(0.1 - 0.05) / 2, lda.alpha
    assert_exact(lda, X.sum())


@pytest.mark.parametrize("cluster", [(2, False)], indirect=True, ids=["2"])
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
@pytest.mark.parametrize("cluster", [3, (3, False)], indirect=True,
                         ids=["checked", "unchecked"])
def test_worker_sigkilled_mid_sweep_run_completes_exactly(cluster):
    X, _ = planted_corpus(D=3000, V=1000, K=20, L=100, seed=5)
    victim = cluster.workers[0]
    t, box = run_in_thread(lambda: train(X, cluster, num_topics=20, iterations=60))
    wait_for(lambda: dispatcher_stats(cluster).get("sweeps", 0) >= 3, 60, "3 sweeps")
    # SIGKILL while the victim is inside a sweep job
    name = next(n for n in cluster.worker_names() if n.endswith(f".{victim}"))
    with cluster._ns() as ns:
        uri = ns.lookup(name)
    with _wire.proxy(uri, 5.0) as w:
        wait_for(lambda: w.ping()["busy"], 30, "the victim to be sweeping")
        cluster.kill(victim, signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    if "error" in box:
        raise box["error"]
    lda = box["result"]
    assert_exact(lda, X.sum())
    stats = dispatcher_stats(cluster)
    assert stats["sweeps"] == 60
    assert stats["lost_workers"] >= 1 and stats["redispatched_chunks"] >= 1
    assert name not in cluster.worker_names()  # the dispatcher removed the dead registration


def test_workers_sigkilled_while_chunks_are_loaded_and_another_joins():
    # kill 2 of 3 workers as soon as the training starts (chunks in flight to them), then
    # kill the last one mid-training and start a fresh one: the run still completes exactly
    X, _ = planted_corpus(D=2000, V=800, K=10, L=100, seed=8)
    with Cluster(workers=3, check=False) as c:
        first, second, third = c.workers
        t, box = run_in_thread(lambda: train(X, c, iterations=60))
        wait_for(lambda: "session" in dispatcher_stats(c), 60, "the training to start")
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


@pytest.mark.parametrize("cluster", [1], indirect=True)
def test_worker_added_mid_training_gets_work(cluster):
    X, _ = planted_corpus(D=1000, V=500, K=10, L=100, seed=6)
    lda = LdaModel(X, num_topics=10, iterations=0, random_state=0, chunksize=100)
    uri, info = _client.find_dispatcher(cluster.ns_conf)
    assert info["workers"] == 1
    added = []

    def on_sweep(it, **kw):
        if it == 2:  # between sweeps 3 and 4 (training goes on while it starts)
            added.append(cluster.add_worker())

    ex = _client.DistributedExecutor(uri, 1)
    ex.run(lda._state, 12, np.random.default_rng(0), on_sweep)
    assert_exact(lda, X.sum())
    name = next(n for n in cluster.worker_names() if n.endswith(f".{added[0]}"))
    with cluster._ns() as ns:
        uri = ns.lookup(name)
    with _wire.proxy(uri, 5.0) as w:
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
    assert c.alive() == []


# ---------------------------------------------------------------------------- the decision
def test_distributed_true_without_cluster_fails_fast_and_clearly():
    X, _ = planted_corpus(D=20, V=30, K=2, L=10)
    port = free_port()
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=rf"no Pyro5 name server at 127\.0\.0\.1:{port}"):
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


def test_vocabulary_blocks_are_one_token_run_per_document():
    from distlda.gibbs import kernels as K_
    rng = np.random.default_rng(0)
    doc_ptr = np.array([0, 7, 7, 20, 21], np.int64)
    words = rng.integers(0, 30, 21).astype(np.int32)
    topics = (words * 7 + np.arange(21)).astype(np.int32)  # tells the tokens apart
    pairs = [sorted(zip(words[a:b], topics[a:b])) for a, b in zip(doc_ptr[:-1], doc_ptr[1:])]
    assert K_.sort_doc_tokens(words, topics, doc_ptr)
    assert not K_.sort_doc_tokens(words, topics, doc_ptr)  # already sorted: nothing moves
    for d, (a, b) in enumerate(zip(doc_ptr[:-1], doc_ptr[1:])):
        assert list(zip(words[a:b], topics[a:b])) == pairs[d]  # same tokens, in word order
    cuts = np.array([0, 10, 10, 25, 30], np.int32)
    bp = K_.block_bounds(words, doc_ptr, cuts)
    for d, (a, b) in enumerate(zip(doc_ptr[:-1], doc_ptr[1:])):
        assert bp[0, d] == a and bp[-1, d] == b
        for k in range(4):
            inside = (words[a:b] >= cuts[k]) & (words[a:b] < cuts[k + 1])
            assert np.flatnonzero(inside).tolist() == list(range(bp[k, d] - a, bp[k + 1, d] - a))


def counts(words, topics, V, K):
    """The word-topic counts of assignments."""
    from distlda.gibbs import kernels as K_
    nwk = np.zeros((V, K), np.int32)
    K_.count_assignments(words, topics, nwk, np.zeros(K, np.int32), 1)
    return nwk


def random_moves(rng, V, K, N, share):
    """N tokens' words and topics before and after ``share`` of them are resampled."""
    words = rng.integers(0, V, N).astype(np.int32)
    before = rng.integers(0, K, N).astype(np.int32)
    after = np.where(rng.random(N) < share, rng.integers(0, K, N), before).astype(np.int32)
    return words, before, after


def test_worker_keeps_word_lists_in_step_with_foreign_moves():
    from distlda.gibbs import kernels as K_
    from distlda.models.lda_worker import _apply_foreign
    V, K = 40, 12
    words, before, after = random_moves(np.random.default_rng(1), V, K, 400, 0.5)
    nwk = counts(words, before, V, K)
    lists = K_.build_word_lists(nwk, nwk.sum(axis=1))
    rowmap = np.arange(V, dtype=np.int32)
    rowmap[::5] = -1  # rows this worker does not hold are skipped
    moved = before != after
    assert _apply_foreign(rowmap, words[moved], before[moved], after[moved], nwk, *lists, True)
    expect = counts(words, after, V, K)
    held = rowmap >= 0
    np.testing.assert_array_equal(nwk[held], expect[held])
    wt_ptr, wt_len, wt_top = lists
    for v in np.flatnonzero(held):
        topics = wt_top[wt_ptr[v]: wt_ptr[v] + wt_len[v]]
        assert sorted(topics) == np.flatnonzero(nwk[v]).tolist()
    # an update that does not fit the rows is refused, not applied as garbage
    w0 = [v for v in np.flatnonzero(held) if (nwk[v] == 0).any()][0]
    empty = np.flatnonzero(nwk[w0] == 0)[0]
    assert not _apply_foreign(rowmap, np.array([w0], np.int32), np.array([empty], np.int32),
                              np.array([0], np.int32), nwk, *lists, True)


def test_worker_row_changes_rebuild_peer_rows_and_lists():
    from distlda.gibbs import kernels as K_
    from distlda.models.lda_worker import _apply_rows, _row_delta
    V, K = 30, 9
    words, before, after = random_moves(np.random.default_rng(2), V, K, 500, 0.3)
    nwk0, nwk1 = counts(words, before, V, K), counts(words, after, V, K)
    rows = np.arange(V, dtype=np.int32) * 3  # the sender's rows are words 0, 3, 6, ...
    lo = 4                                   # it changed rows 4.. (a block of its rows)
    snap = nwk0[lo:].copy()
    ow, od = np.empty(V - lo, np.int32), np.empty((V - lo, K), np.int8)
    bw, bd = np.empty(V - lo, np.int32), np.empty((V - lo, K), np.int32)
    n, nb = _row_delta(nwk1, snap, lo, rows, 127, ow, od, bw, bd)
    changed = np.flatnonzero((nwk1[lo:] != nwk0[lo:]).any(axis=1)) + lo
    assert nb == 0 and ow[:n].tolist() == rows[changed].tolist()  # only changed rows travel
    np.testing.assert_array_equal(od[:n], (nwk1 - nwk0)[changed])
    # rows whose changes do not fit the narrow dtype go whole to the wide part
    fit = np.abs(nwk1 - nwk0)[changed].max(axis=1) <= 1
    n, nb = _row_delta(nwk1, snap, lo, rows, 1, ow, od, bw[:1], bd[:1])
    assert nb > 1  # counted past the capacity it was given, for the caller to grow it
    n, nb = _row_delta(nwk1, snap, lo, rows, 1, ow, od, bw, bd)
    assert 0 < nb < len(changed) and n + nb == len(changed)
    assert ow[:n].tolist() == rows[changed[fit]].tolist()
    assert bw[:nb].tolist() == rows[changed[~fit]].tolist()
    np.testing.assert_array_equal(bd[:nb], (nwk1 - nwk0)[changed[~fit]])
    n, nb = _row_delta(nwk1, snap, lo, rows, 127, ow, od, bw, bd)
    # The receiver holds the same rows under other numbers, minus every fifth word.
    peer = nwk0.copy()
    peer[:lo] = nwk1[:lo]  # rows outside the block are not the sender's business
    lists = K_.build_word_lists(peer, peer.sum(axis=1))
    rowmap = np.full(3 * V, -1, np.int32)
    rowmap[rows] = np.arange(V, dtype=np.int32)
    rowmap[rows[::5]] = -1
    assert _apply_rows(rowmap, ow[:n], od[:n], peer, *lists, True)
    held = rowmap[rows] >= 0
    np.testing.assert_array_equal(peer[held], nwk1[held])
    wt_ptr, wt_len, wt_top = lists
    for r in np.flatnonzero(held):
        assert sorted(wt_top[wt_ptr[r]: wt_ptr[r] + wt_len[r]]) == np.flatnonzero(peer[r]).tolist()
    # a change that does not fit the rows (a count below zero) is refused
    r = [r for r in np.flatnonzero(held) if (peer[r] == 0).any()][0]
    bad = np.zeros((1, K), np.int8)
    bad[0, np.flatnonzero(peer[r] == 0)[0]] = -1
    bad[0, np.flatnonzero(peer[r])[0]] = 1
    assert not _apply_rows(rowmap, rows[[r]], bad, peer, *lists, True)


def _job_inputs(K=5, V=60, D=40, seed=3):
    """One sorted chunk, its dense rows, the vocabulary cut in two blocks: a worker's job."""
    from distlda.gibbs import kernels as K_
    rng = np.random.default_rng(seed)
    lens = rng.integers(5, 40, D)
    doc_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    words = rng.integers(0, V, doc_ptr[-1]).astype(np.int32)
    topics = rng.integers(0, K, doc_ptr[-1]).astype(np.int32)
    K_.sort_doc_tokens(words, topics, doc_ptr)
    nwk = counts(words, topics, V, K)
    rows = np.unique(words).astype(np.int32)
    return (words, topics, doc_ptr, nwk, nwk.sum(axis=0).astype(np.int32), rows,
            np.array([0, V // 2, V], np.int32))


@pytest.mark.parametrize("form", ["rows", "moves"])
def test_worker_job_result_reproduces_its_counts_and_the_dispatcher_checks_it(form):
    """A real worker job (in process) on one vocabulary block, reported as changed rows or
    as moves: the dispatcher commits it only when it is well formed (and, as rows, when the
    rows agree with the topics), and what it forwards rebuilds the worker's counts exactly
    on another worker."""
    from distlda.gibbs import kernels as K_
    from distlda.models.lda_dispatcher import LdaDispatcher, _Member
    from distlda.models.lda_worker import LdaWorker, _apply_foreign, _apply_rows
    K, V = 5, 60
    words, topics, doc_ptr, nwk, nk, rows, cuts = _job_inputs(K, V)
    config = {"num_topics": K, "num_terms": V, "alpha": _wire.enc(np.full(K, 0.5)),
              "beta": 0.1, "sampler": "sparse", "mh_steps": None}
    w = LdaWorker("distlda.worker.test")
    w.reset("s", config)
    w.load("s", [[0, _wire.enc(words), _wire.enc(doc_ptr), _wire.enc_topics(topics, K)]])
    w._moved = 1.0 if form == "rows" else 0.0  # steers the worker's guess of what is cheaper
    model = {"rows": _wire.enc(rows), "dense": _wire.enc(nwk[rows])}
    job = w.sweep("s", "j1", [0], model, _wire.enc(nk), _wire.enc(np.array([7], np.uint32)),
                  blocks={"cuts": _wire.enc(cuts), "of": [1]}, peers=True)
    r = w.result("s", job, 10.0)
    assert ("delta" in r) == (form == "rows") and ("mask" in r) == (form == "moves")
    assert r["moved"] > 0

    d = LdaDispatcher()
    try:
        s = d.start_session(config)
        d.load(s, [[0, _wire.enc(words), _wire.enc(doc_ptr), _wire.enc_topics(topics, K)]])
        m = _Member("distlda.worker.test", None)
        ranges = d._ranges([0], (cuts, np.zeros(1, np.int64), 1))

        def prepare(result):
            return d._prepare(m, [0], result, ranges, True)

        prep = prepare(r)
        assert prep["moved"] == r["moved"]
        if form == "rows":
            new = _wire.dec(r["topics"][0])
            with pytest.raises(ValueError, match="disagree"):
                prepare(dict(r, topics=[_wire.enc((new + (np.arange(new.size) == 3)) % K)]))
            with pytest.raises(ValueError, match="topic out of range"):
                prepare(dict(r, topics=[_wire.enc(np.full(new.size, K, new.dtype))]))
            with pytest.raises(ValueError, match="number of topics"):
                prepare(dict(r, topics=[_wire.enc(new[1:])]))
            with pytest.raises(ValueError, match="how its rows changed"):
                prepare(dict(r, delta=None))
            p = r["delta"][0]
            dd = _wire.dec(p["delta"]).copy()
            dd[0, 0] += 1
            with pytest.raises(ValueError, match="row totals"):
                prepare(dict(r, delta=[dict(p, delta=_wire.enc(dd))]))
        else:
            packed, new = _wire.dec(r["mask"][0]), _wire.dec(r["new"][0])
            bits = np.unpackbits(packed)
            extra = packed.copy()
            extra[np.flatnonzero(bits == 0)[0] >> 3] |= 128 >> (np.flatnonzero(bits == 0)[0] & 7)
            for bad in ({"mask": [_wire.enc(extra)]}, {"new": [_wire.enc(new[1:])]},
                        {"new": [_wire.enc(np.full(new.size, K, new.dtype))]},
                        {"mask": [_wire.enc(packed[1:])]}):
                with pytest.raises(ValueError, match="malformed"):
                    prepare(dict(r, **bad))
        d._commit(m, [0], prep, "j1", {0}, {})
        after = d._state.chunks[0].topics.astype(np.int32)
        expect = counts(words, after, V, K)
        np.testing.assert_array_equal(d._counts(), expect)  # nk checked against the recount
        np.testing.assert_array_equal(prep["nk"], expect.sum(axis=0) - nk)
    finally:
        d._pool.shutdown()
        d._helpers.shutdown()
    np.testing.assert_array_equal(after, w._chunks[0][2])  # the worker's own topics
    changed = after != topics
    assert changed.any() and words[changed].min() >= cuts[1]  # only block 1 was resampled
    np.testing.assert_array_equal(w._slice, expect[rows])
    # another worker holding every row applies what the dispatcher forwards: same counts
    peer = nwk.copy()
    rowmap = np.arange(V, dtype=np.int32)
    lists = K_.build_word_lists(peer, peer.sum(axis=1))
    for p in prep["fwd"]:
        p = {k: _wire.dec(v) for k, v in p.items()}
        if form == "rows":
            assert _apply_rows(rowmap, p["words"], p["delta"], peer, *lists, True)
        else:
            assert _apply_foreign(rowmap, p["words"], p["old"], p["new"], peer, *lists, True)
    np.testing.assert_array_equal(peer, expect)



def test_dispatcher_reads_results_in_halves_even_when_every_job_thread_waits():
    """A result's second half is read in a helper thread. With every thread of the job pool
    busy reading a result (as with that many workers finishing together), the helpers must
    still run: they may not queue behind the job tasks that wait for them."""
    import concurrent.futures as cf
    from distlda.models.lda_dispatcher import LdaDispatcher
    d = LdaDispatcher()
    d._pool.shutdown()
    d._pool = cf.ThreadPoolExecutor(2)
    try:
        jobs = [d._pool.submit(d._halves, lambda x: (time.sleep(0.05), 2 * x)[1], [1, 2, 3, 4])
                for _ in range(4)]
        assert [f.result(timeout=20) for f in jobs] == [[2, 4, 6, 8]] * 4
    finally:  # on a deadlock: cancel what is queued, so that the waiting threads end
        d._pool.shutdown(wait=False, cancel_futures=True)
        d._helpers.shutdown(wait=False, cancel_futures=True)

def test_wire_codec_roundtrip_without_pickle():
    import msgpack
    for a in (np.arange(7, dtype=np.int32), np.zeros((3, 4), np.int32), np.arange(5.0),
              np.array([65535, 0], np.uint16)):
        msg = msgpack.unpackb(msgpack.packb(_wire.enc(a), use_bin_type=True), raw=False)
        b = _wire.dec(msg)
        assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    with pytest.raises(ValueError, match="refusing"):
        _wire.dec({"dtype": "|O", "shape": [1], "data": b"x" * 8})


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
