"""The cluster's state classes with no network: messages, planning, a worker's session and
the dispatcher's ledger, driven by fabricated messages (as dask drives a bare WorkerState)."""

import concurrent.futures as cf
import threading

import msgpack
import numpy as np
import pytest

from distlda.cluster import codec, plan
from distlda.cluster.ledger import Ledger
from distlda.cluster.membership import Member
from distlda.cluster.messages import (
    ChunkLoad,
    DenseSlice,
    Job,
    Moves,
    ProtocolError,
    RowChanges,
    SessionConfig,
    ShardLoad,
    ShardSet,
    SliceDelta,
    result_from_wire,
)
from distlda.cluster.worker_session import WorkerSession
from distlda.gibbs import blocks
from distlda.gibbs import kernels as K_

import reference as ref


def over_the_wire(obj):
    """What a peer receives: msgpack out and back (as Pyro5's msgpack serializer does)."""
    return msgpack.unpackb(msgpack.packb(obj, use_bin_type=True), raw=False)


def config(K=5, V=60, sampler="sparse", sizes=(1000,) * 1000):
    """A session of in-memory chunks of ``sizes`` tokens (an inline set)."""
    return SessionConfig(K, V, np.full(K, 0.5), 0.1, sampler, None, num_chunks=len(sizes),
                         num_tokens=sum(sizes), shards=ShardSet.of_chunks(sizes, 0))


# ---------------------------------------------------------------------------- messages
def test_codec_roundtrip_without_pickle():
    for a in (np.arange(7, dtype=np.int32), np.zeros((3, 4), np.int32), np.arange(5.0),
              np.array([65535, 0], np.uint16)):
        b = codec.dec(over_the_wire(codec.enc(a)))
        assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    with pytest.raises(ValueError, match="refusing"):
        codec.dec({"dtype": "|O", "shape": [1], "data": b"x" * 8})


@pytest.mark.parametrize("change, field", [
    (dict(num_topics=0), "num_topics"), (dict(num_terms=-1), "num_terms"),
    (dict(beta=-1.0), "beta"), (dict(beta=float("nan")), "beta"),
    (dict(alpha=codec.enc(np.full(3, 0.5))), "alpha"),
    (dict(alpha=codec.enc(np.array([0.5, 0.5, 0.5, 0.5, -1.0]))), "alpha"),
    (dict(sampler="zzz"), "sampler"), (dict(mh_steps=0), "mh_steps"),
])
def test_session_config_names_the_bad_field(change, field):
    good = over_the_wire(config().to_wire())
    assert SessionConfig.from_wire(good).num_topics == 5
    with pytest.raises(ProtocolError, match=field):
        SessionConfig.from_wire(dict(good, **change))
    with pytest.raises(ProtocolError, match="missing field 'num_topics'"):
        SessionConfig.from_wire({})


def test_chunk_load_checks_ids_offsets_and_topics():
    cfg = config(K=4, V=10)
    words, doc_ptr, topics = (np.array([1, 2, 9], np.int32), np.array([0, 2, 3], np.int64),
                              np.array([0, 3, 1], np.int32))
    ok = ChunkLoad.from_wire(over_the_wire(ChunkLoad(0, words, doc_ptr, topics).to_wire(4)), cfg)
    np.testing.assert_array_equal(ok.topics, topics)
    for bad, match in ((ChunkLoad(0, words + 1, doc_ptr, topics), "words"),
                       (ChunkLoad(0, words, np.array([0, 3, 2], np.int64), topics), "offsets"),
                       (ChunkLoad(0, words, np.array([0, 2, 7], np.int64), topics), "offsets"),
                       (ChunkLoad(0, words, doc_ptr, topics * 2), "topics")):
        with pytest.raises(ProtocolError, match=match):
            ChunkLoad.from_wire(over_the_wire(bad.to_wire(8)), cfg)
    with pytest.raises(ProtocolError, match="expected"):
        ChunkLoad.from_wire([0, 1], cfg)


def test_job_round_trip_and_bad_blocks():
    cfg = config(K=3, V=8)
    rows = np.array([1, 4], np.int32)
    job = Job("j", [0], DenseSlice(rows, np.ones((2, 3), np.int32)), np.ones(3, np.int32),
              np.array([5], np.uint32), np.full(3, 0.5), (np.array([0, 4, 8], np.int32), [1]))
    back = Job.from_wire(over_the_wire(job.to_wire()), cfg)
    assert back.idxs == [0] and back.blocks[1] == [1]
    np.testing.assert_array_equal(back.model.dense, np.ones((2, 3)))
    wire = over_the_wire(job.to_wire())
    with pytest.raises(ProtocolError, match="blocks.of"):
        Job.from_wire(dict(wire, blocks=dict(wire["blocks"], of=[2])), cfg)
    with pytest.raises(ProtocolError, match="seeds"):
        Job.from_wire(dict(wire, seeds=codec.enc(np.zeros(2, np.uint32))), cfg)


# ---------------------------------------------------------------------------- planning
def test_plan_gives_out_unowned_chunks_and_rebalances_only_after_a_change():
    sizes = [10, 10, 10, 10, 40]
    target = plan.assign(sizes, {"a": set(), "b": set()}, set(), rebalance=False)
    assert sorted(target["a"] | target["b"]) == [0, 1, 2, 3, 4]
    assert {sum(sizes[i] for i in t) for t in target.values()} == {40}
    # a newcomer gets chunks only when asked to rebalance
    held = {"a": {0, 1, 2, 3}, "b": {4}, "c": set()}
    owned = {0, 1, 2, 3, 4}
    assert plan.assign(sizes, held, owned, rebalance=False)["c"] == set()
    moved = plan.assign(sizes, held, owned, rebalance=True)
    assert moved["c"] and sorted(set().union(*moved.values())) == [0, 1, 2, 3, 4]


def test_block_schedule_rotates_blocks_over_groups():
    s = plan.BlockSchedule(np.ones(12, np.int64), np.array([0, 1, 2, 0]), 3)
    assert s.cuts.tolist() == [0, 4, 8, 12]
    assert [[s.block(i, step) for i in range(4)] for step in range(3)] == [
        [0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]]


# ---------------------------------------------------------------------------- a job
def job_inputs(K=5, V=60, D=40, seed=3):
    """One sorted chunk, its dense rows, the vocabulary cut in two blocks: a worker's job."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(5, 40, D)
    doc_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    words = rng.integers(0, V, doc_ptr[-1]).astype(np.int32)
    topics = rng.integers(0, K, doc_ptr[-1]).astype(np.int32)
    K_.sort_doc_tokens(words, topics, doc_ptr)
    nwk = ref.counts(words, topics, V, K)[0].astype(np.int32)
    return words, topics, doc_ptr, nwk, np.array([0, V // 2, V], np.int32)


def worker_with_chunk(cfg, words, topics, doc_ptr):
    w = WorkerSession("s", cfg, "distlda.worker.test")
    load = over_the_wire(ChunkLoad(0, words, doc_ptr, topics).to_wire(cfg.num_topics))
    w.load([ChunkLoad.from_wire(load, cfg)])
    return w


def make_job(cfg, nwk, rows, cuts, block=1, name="j1", model=None):
    model = model or DenseSlice(rows, nwk[rows])
    job = Job(name, [0], model, nwk.sum(axis=0).astype(np.int32), np.array([7], np.uint32),
              np.asarray(cfg.alpha), (cuts, [block]), True)
    return Job.from_wire(over_the_wire(job.to_wire()), cfg)


@pytest.fixture
def helpers():
    pool = cf.ThreadPoolExecutor(2)
    yield pool
    pool.shutdown()


@pytest.mark.parametrize("form", ["rows", "moves"])
def test_a_job_result_reproduces_its_counts_and_the_ledger_checks_it(form):
    """A worker's job on one vocabulary block, reported as changed rows or as moves (with
    their words): the ledger, which holds counts and no token, commits it only when it is
    well formed, and what it forwards rebuilds the worker's counts exactly on another
    worker."""
    words, topics, doc_ptr, nwk, cuts = job_inputs(V=60)
    cfg = config(V=80, sizes=(words.shape[0],))  # words 60..79 are in no chunk
    K, V = cfg.num_topics, cfg.num_terms
    nwk = np.vstack([nwk, np.zeros((20, K), nwk.dtype)])
    cuts = np.array([0, 30, V], np.int32)
    rows = np.unique(words).astype(np.int32)
    w = worker_with_chunk(cfg, words, topics, doc_ptr)
    w._moved = 1.0 if form == "rows" else 0.0  # steers the worker's guess of what is cheaper
    job = make_job(cfg, nwk, rows, cuts)
    w.accept(job)
    wire = over_the_wire(w.run(job, threading.RLock()).to_wire())
    r = result_from_wire(wire, cfg)
    kind = RowChanges if form == "rows" else Moves
    assert r.moved > 0 and r.delta and all(isinstance(p, kind) for p in r.delta)
    assert "topics" not in wire  # the topics stay on the worker

    led = Ledger(cfg)
    uniq, freq = np.unique(words, return_counts=True)
    led.learn(0, uniq.astype(np.int32), freq)
    led.replace_counts([DenseSlice(rows, nwk[rows])], {0})

    def read(d):
        return led.read(result_from_wire(d, cfg), [0], "w")

    reading = read(wire)
    assert reading.moved == r.moved
    for bad in ("not a mapping", {}, dict(wire, delta=7), dict(wire, delta=[7]),
                dict(wire, delta=[{"words": codec.enc(np.array([V], np.int32))}])):
        with pytest.raises(ProtocolError):  # malformed input raises ProtocolError only
            read(bad)
    p = wire["delta"][0]
    if form == "rows":
        dd = codec.dec(p["delta"]).copy()
        dd[0, 0] += 1
        with pytest.raises(ProtocolError, match="row totals"):
            read(dict(wire, delta=[dict(p, delta=codec.enc(dd))]))
    outside = 70  # a word of no shard of the job
    ww = codec.dec(p["words"]).copy()
    ww[0] = outside
    with pytest.raises(ProtocolError, match="outside its shards"):
        read(dict(wire, delta=[dict(p, words=codec.enc(ww))]))
    np.testing.assert_array_equal(led.counts()[rows], nwk[rows])  # reading changed nothing
    led.commit(reading)
    after = w.chunks[0].topics
    expect = ref.counts(words, after, V, K)[0]
    np.testing.assert_array_equal(led.counts(), expect)  # the worker's topics' counts
    np.testing.assert_array_equal(led.state.nk, expect.sum(axis=0))
    np.testing.assert_array_equal(reading.nk, expect.sum(axis=0) - nwk.sum(axis=0))
    changed = after != topics
    assert changed.any() and words[changed].min() >= cuts[1]  # only block 1 was resampled
    np.testing.assert_array_equal(w.slice.nwk, expect[rows])
    # another worker holding every row gets the forwarded changes with its next job (a
    # SliceDelta from its last view), and ends with the same counts
    peer_cfg_words = np.arange(V, dtype=np.int32)
    peer = worker_with_chunk(cfg, peer_cfg_words, np.zeros(V, np.int32), np.array([0, V]))
    m = Member("peer", None)
    m.chunks = {0}
    m.ensure_rows(lambda i: peer_cfg_words, V)
    peer.slice.set_dense(DenseSlice(m.rows, nwk[m.rows]))
    peer.slice.view = m.view = "p0"
    led.forward(reading, Member("w", None), [m])
    led.end_step()
    parts = led.delta_for(m, 10 ** 9)
    delta = make_job(cfg, nwk, m.rows, cuts, model=SliceDelta("p0", parts))
    peer._update(delta)
    np.testing.assert_array_equal(peer.slice.nwk, expect)


def test_a_recount_replaces_the_counts_and_must_hold_every_token_held():
    words, topics, doc_ptr, nwk, cuts = job_inputs()
    cfg = config(sizes=(words.shape[0], 7))
    led = Ledger(cfg)
    rows = np.unique(words).astype(np.int32)
    led.replace_counts([DenseSlice(rows, nwk[rows])], {0})  # chunk 1 has no holder now
    np.testing.assert_array_equal(led.counts(), nwk)
    assert led.counted_set == {0} and not led.stale
    with pytest.raises(RuntimeError, match="recount holds"):
        led.replace_counts([DenseSlice(rows, nwk[rows])], {0, 1})


def test_a_failure_at_an_exact_phase_commits_nothing_and_the_worker_starts_again():
    """The test hold point raises in the report phase (after sampling): the worker forgets its
    slice, the ledger never sees a result, and a fresh dense job runs from the committed
    topics."""
    cfg = config()
    words, topics, doc_ptr, nwk, cuts = job_inputs()
    rows = np.unique(words).astype(np.int32)
    w = worker_with_chunk(cfg, words, topics, doc_ptr)
    seen = []

    def hold(phase):
        seen.append(phase)
        if phase == "report":
            raise RuntimeError("killed at report")

    w.hold = hold
    lock = threading.RLock()
    with pytest.raises(RuntimeError, match="killed at report"):
        w.run(make_job(cfg, nwk, rows, cuts), lock)
    assert seen == ["update", "snapshot", "sample", "report"]
    assert w.slice.rows is None and w.slice.view is None  # nothing half-updated is kept
    with pytest.raises(Exception, match="holds rows of job None"):
        w.accept(make_job(cfg, nwk, rows, cuts, model=SliceDelta("j1", [])))
    w.hold = None
    # its chunk comes back with its committed topics: a clean start
    w.load([ChunkLoad(0, words, doc_ptr, topics.copy())])
    r = w.run(make_job(cfg, nwk, rows, cuts, name="j2"), lock)
    assert r.job == "j2" and w.slice.view == "j2"


def test_an_inline_load_must_carry_sorted_tokens():
    cfg = config(K=3, V=10, sizes=(2, 1))
    unsorted = ShardLoad(0, 0, None, np.array([0, 1], np.int32), np.array([3, 1], np.int32),
                         np.array([0, 2]))
    with pytest.raises(ProtocolError, match="sorted"):
        ShardLoad.from_wire(over_the_wire(unsorted.to_wire(3)), cfg)
    bare = ShardLoad(1, 0, None, np.array([0], np.int32))  # no tokens: only a shard set's
    with pytest.raises(ProtocolError, match="carries its tokens"):
        ShardLoad.from_wire(over_the_wire(bare.to_wire(3)), cfg)
    ok = ShardLoad(1, 0, None, np.array([2], np.int32), np.array([4], np.int32), np.array([0, 1]))
    got = ShardLoad.from_wire(over_the_wire(ok.to_wire(3)), cfg)
    assert got.words.tolist() == [4] and got.topics.tolist() == [2]


def test_block_layout_is_one_token_run_per_document():
    rng = np.random.default_rng(5)
    words, topics, doc_ptr, _, cuts = job_inputs(seed=5)
    from distlda.gibbs.chunks import Chunk
    c = Chunk(words=words.copy(), doc_ptr=doc_ptr, topics=topics.copy())
    rng.shuffle(c.words[doc_ptr[0]:doc_ptr[1]])
    blocks.sort_for_blocks(c)
    bp = blocks.block_ranges(c, cuts)
    np.testing.assert_array_equal(bp, ref.block_bounds(c.words, doc_ptr, cuts))
    for b in range(len(cuts) - 1):
        inside = ref.gather_ranges(c.words, bp[b], bp[b + 1])
        assert ((inside >= cuts[b]) & (inside < cuts[b + 1])).all()
    assert sum(int((bp[b + 1] - bp[b]).sum()) for b in range(len(cuts) - 1)) == words.size


def test_big_arrays_travel_in_pieces_and_come_back_whole():
    a, b = np.arange(1000, dtype=np.int32), np.arange(10, dtype=np.int64)
    msg = {"job": "j", "parts": [codec.enc(a), codec.enc(b)]}
    out, blobs = codec.stage_out(msg, limit=300)
    assert len(blobs) == 1 and "staged" in out["parts"][0] and "data" in out["parts"][1]
    inbox = codec.Staging()
    calls = []

    def put(*args):
        calls.append(args)
        inbox.put(*over_the_wire(list(args)))

    codec.send_pieces(put, blobs, limit=300)
    assert len(calls) == 14 and all(len(c[3]) <= 300 for c in calls)  # 4000 bytes in 300s
    back = codec.stage_in(over_the_wire(out), inbox.take)
    np.testing.assert_array_equal(codec.dec(back["parts"][0]), a)
    np.testing.assert_array_equal(codec.dec(back["parts"][1]), b)
    # pulled by the receiver instead (a worker's result): the same bytes
    pulled = codec.stage_in(out, codec.pull(lambda sid, off, n: bytes(blobs[sid][off:off + n]),
                                            limit=300))
    np.testing.assert_array_equal(codec.dec(pulled["parts"][0]), a)
    # a missing piece, a piece outside its message, a total over the bound: refused
    inbox.put("x", 0, 10, b"12345")
    with pytest.raises(ValueError, match="incomplete"):
        inbox.take("x")
    with pytest.raises(ValueError, match="outside"):
        inbox.put("y", 8, 10, b"12345")
    with pytest.raises(ValueError, match="exceed"):
        codec.Staging(max_bytes=100).put("z", 0, 101, b"")


def test_an_mh_worker_keeps_its_sampler_memory_across_jobs_and_drops_it_with_its_chunks():
    """The MH sampler's workspace belongs to the worker session: jobs on the same chunks chain
    exactly as serial sweeps that keep one workspace (not as sweeps that start afresh), and
    loading chunks gives the next job a new one."""
    from distlda.gibbs import mh as _mh
    from distlda.gibbs import sampling
    cfg = config(sampler="mh")
    K, V = cfg.num_topics, cfg.num_terms
    words, topics, doc_ptr, nwk, _ = job_inputs(K, V)
    rows = np.unique(words).astype(np.int32)
    w = worker_with_chunk(cfg, words, topics, doc_ptr)
    local = np.searchsorted(rows, words).astype(np.int32)
    kept, fresh = [(topics.copy(), nwk[rows].copy(), nwk.sum(axis=0).astype(np.int32))
                   for _ in range(2)]
    space, lock, differs = _mh.Workspace(), threading.RLock(), False
    for j in range(4):
        t, slice_nwk, nk = kept
        job = Job(f"j{j}", [0], DenseSlice(rows, slice_nwk.copy()), nk.copy(),
                  np.array([7 + j], np.uint32), np.asarray(cfg.alpha), None, False)
        job = Job.from_wire(over_the_wire(job.to_wire()), cfg)
        w.accept(job)
        w.run(job, lock)
        prior = sampling.Prior(np.asarray(cfg.alpha), cfg.beta, cfg.beta * V)
        for (t, slice_nwk, nk), sp in ((kept, space), (fresh, _mh.Workspace())):
            sampling.sweep(sampling.Tokens([local], [t], [doc_ptr]), slice_nwk, nk, prior,
                           sampling.MhOptions(None, sp), [7 + j])
        np.testing.assert_array_equal(w.chunks[0].topics, kept[0])
        np.testing.assert_array_equal(w.slice.nwk, kept[1])
        differs |= not np.array_equal(kept[0], fresh[0])
    assert differs  # a workspace per job would have been another chain
    before = w._workspaces[(0,)]
    w.load([ChunkLoad(1, words, doc_ptr, topics.copy())])
    assert w._workspaces == {} and before is not None


def test_staged_arrays_pulled_from_a_peer_are_checked():
    ref_ = {"dtype": "<i4", "shape": [2], "staged": "x", "nbytes": 8}
    full = codec.pull(lambda sid, off, n: b"\1" * n)
    assert codec.dec(codec.stage_in({"a": ref_}, full)["a"]).tolist() == [0x01010101] * 2
    short = codec.pull(lambda sid, off, n: b"\1" * (n - 1))
    for bad, fetch in (({"a": ref_}, short), ({"a": dict(ref_, nbytes=None)}, full),
                       ({"a": dict(ref_, nbytes="8")}, full), ({"a": dict(ref_, staged=3)}, full),
                       ({"a": dict(ref_, nbytes=-1)}, full)):
        with pytest.raises(ProtocolError):
            codec.stage_in(bad, fetch)
