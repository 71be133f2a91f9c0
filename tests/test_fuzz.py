"""Fuzzing every exposed method of the dispatcher and the worker with msgpack-shaped payloads.

Two layers:

- in-process, with the *right* capability (the session id, the worker key), so that the
  payloads reach the validation behind it: every call returns or raises a clean error
  (ProtocolError/ValueError or RuntimeError, never TypeError, KeyError, IndexError, a crash),
  and a call that fails changes no state;
- over Pyro5 against real processes while a client trains: every call is answered, the
  processes keep serving, and the training ends with exact counts.
"""

from __future__ import annotations

import hashlib
import inspect

import msgpack
import numpy as np
import Pyro5.api
import Pyro5.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distlda.cluster import codec
from distlda.cluster.messages import SessionConfig, ShardLoad, ShardSet
from distlda.models.lda_dispatcher import LdaDispatcher
from distlda.models.lda_worker import LdaWorker

from cluster import Cluster, free_port
from helpers import planted_corpus, run_in_thread, wait_for

CLEAN = (ValueError, RuntimeError)  # ProtocolError and LimitError are ValueErrors

_leaf = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats()
         | st.text(max_size=12) | st.binary(max_size=48))
_array_like = st.fixed_dictionaries({
    "dtype": st.sampled_from(["<i4", "<u2", "|u1", "<f8", "<i8", "|O", "zz"]),
    "shape": st.lists(st.integers(-2, 2**40), max_size=3),
    "data": st.binary(max_size=64)})
PAYLOAD = st.recursive(_leaf | _array_like, lambda ch: st.lists(ch, max_size=4)
                       | st.dictionaries(st.text(max_size=10), ch, max_size=4), max_leaves=12)


def exposed(cls) -> list[str]:
    return sorted(n for n, f in inspect.getmembers(cls, inspect.isfunction)
                  if not n.startswith("_"))


def msgpack_roundtrip(v):
    """What a server receives (msgpack turns tuples into lists, keeps bytes)."""
    return msgpack.unpackb(msgpack.packb(v, use_bin_type=True), raw=False, strict_map_key=False)


K, V = 4, 30


def config() -> SessionConfig:
    return SessionConfig(K, V, np.full(K, 0.1), 0.05, "sparse", None, "fuzz", 2, 40,
                         ShardSet.of_chunks([20, 20], 0))


def chunk(idx: int, n: int = 20) -> dict:
    """A client's chunk on its way to a worker (an inline set's shard load)."""
    rng = np.random.default_rng(idx)
    words = np.sort(rng.integers(0, V, n)).astype(np.int32)
    return ShardLoad(idx, 0, None, rng.integers(0, K, n).astype(np.int32), words,
                     np.array([0, n], np.int64)).to_wire(K)


def load_chunk(w: LdaWorker) -> None:
    job = w.load_shards("k" * 32, [chunk(0)])
    assert w.result("k" * 32, job, 20) is not None


def call_args(draw, key: str, n: int) -> list:
    args = [draw(PAYLOAD) for _ in range(n)]
    if n and draw(st.booleans()):
        args[0] = key  # the right capability: the payload reaches the checks behind it
    return [msgpack_roundtrip(a) for a in args]


def worker_view(w: LdaWorker) -> tuple:
    s = w._state
    return (w.ping()["chunks"], w.ping()["tokens"], s and s.session, w._owner,
            s and tuple(sorted(s.chunks)))


@pytest.fixture(scope="module")
def worker():
    w = LdaWorker("distlda.worker.fuzz", max_memory=1 << 30)
    w.reset("k" * 32, config().to_wire(), "o" * 32)
    load_chunk(w)
    return w


@pytest.mark.parametrize("name", exposed(LdaWorker))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_worker_methods_answer_cleanly_and_failed_calls_change_nothing(worker, name, data):
    fn = getattr(worker, name)
    n = len(inspect.signature(fn).parameters)
    args = call_args(data.draw, "k" * 32, data.draw(st.integers(max(0, n - 1), n)))
    before = worker_view(worker)
    try:
        fn(*args)
    except CLEAN:
        assert worker_view(worker) == before, f"{name}{tuple(args)} failed but changed state"
    except TypeError as e:  # only a wrong number of arguments, as Pyro5 would report it
        assert "positional argument" in str(e), f"{name}{tuple(args)}: {e!r}"
    if worker._state is None or worker._state.session != "k" * 32 or not worker._state.chunks:
        worker._owner = None  # put the fixture back for the next example
        worker.reset("k" * 32, config().to_wire(), "o" * 32)
        load_chunk(worker)


def ledger_view(d: LdaDispatcher, session: str) -> tuple:
    s = d.summary(session)
    return s["tokens"], s["nwk_sha1"], hashlib.sha1(d._run.ledger.state.alpha.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def dispatcher():
    d = LdaDispatcher("127.0.0.1", free_port(), timeout=1.0, max_memory=1 << 30,
                      worker_wait=0.05)
    d.roster.stop()  # no name server, no worker: the fuzz drives the session calls only
    s = d.start_session(config().to_wire())
    return d, s


@pytest.mark.parametrize("name", [n for n in exposed(LdaDispatcher)
                                  if n not in ("sweep", "end_session")])  # tested below
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_dispatcher_methods_answer_cleanly_and_failed_calls_change_nothing(dispatcher, name,
                                                                           data):
    d, s = dispatcher
    fn = getattr(d, name)
    n = len(inspect.signature(fn).parameters)
    args = call_args(data.draw, s, data.draw(st.integers(max(0, n - 1), n)))
    if name == "start_session" and args:
        args[0] = args[0] if not isinstance(args[0], dict) else {**args[0]}
    before = ledger_view(d, s)
    try:
        fn(*args)
    except CLEAN:
        pass
    except TypeError as e:
        assert "positional argument" in str(e), f"{name}{tuple(args)}: {e!r}"
    assert d._run is not None and d._run.session == s, f"{name} took the session away"
    if name != "load":
        assert ledger_view(d, s) == before, f"{name}{tuple(args)} changed the committed state"


def test_dispatcher_sweep_and_end_session_with_bad_payloads(dispatcher):
    d, s = dispatcher
    before = ledger_view(d, s)
    for seeds, alpha in [({}, None), (codec.enc(np.zeros(5, np.uint32)), None),
                         (codec.enc(np.zeros(1, np.uint32)), codec.enc(np.full(K, -1.0))),
                         (codec.enc(np.zeros(1, np.uint32)), codec.enc(np.full(K + 1, 0.1))),
                         (codec.enc(np.zeros(1, np.float64)), None), ("x", 3)]:
        with pytest.raises(ValueError):
            d.sweep(s, seeds, alpha)
    assert ledger_view(d, s) == before and not d._sweeping
    for bad in (None, 3, "x" * 32, [s]):
        d.end_session(bad)
    assert d._run is not None and d._run.session == s


def test_fuzzing_live_processes_over_pyro_leaves_the_training_exact():
    X, _ = planted_corpus(D=400, V=300, K=6, L=50, seed=5)
    n_tok = int(X.sum())
    with Cluster(workers=2, check=False) as c:
        with c._ns() as ns:
            targets = [ns.lookup("distlda.dispatcher")] + list(
                ns.list(prefix="distlda.worker.").values())
        from distlda.models import LdaModel
        t, box = run_in_thread(lambda: LdaModel(
            X, num_topics=6, iterations=40, random_state=2, distributed=True, eval_every=0,
            chunksize=50, ns_conf=c.ns_conf))
        wait_for(lambda: c.dispatcher_proxy().stats().get("sweeps", 0) >= 1, 60, "a sweep")
        names = sorted(set(exposed(LdaDispatcher)) | set(exposed(LdaWorker))) + ["nope"]
        calls = {"n": 0}

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(target=st.sampled_from(targets), name=st.sampled_from(names),
               args=st.lists(PAYLOAD, max_size=4))
        def one_call(target, name, args):
            p = Pyro5.api.Proxy(target)
            p._pyroSerializer = "msgpack"
            p._pyroTimeout = 10.0
            with p:
                try:
                    getattr(p, name)(*args)
                except (Pyro5.errors.PyroError, AttributeError, TypeError, ValueError,
                        RuntimeError):
                    pass  # a clean error, delivered: the server answered
            calls["n"] += 1

        one_call()
        t.join(180)
        assert "error" not in box, box.get("error")
        lda = box["result"]
        assert int(lda.sstats.sum()) == n_tok
        np.testing.assert_array_equal(lda.sstats, lda.state.recount()[0].T)
        for uri in targets:  # every process still serves
            p = Pyro5.api.Proxy(uri)
            p._pyroSerializer = "msgpack"
            with p:
                assert p.ping()
        assert calls["n"] >= 100


def test_the_loads_that_crashed_a_worker_are_refused(worker):
    # topic ids of 2**31-1, or document offsets far past the tokens, then a sweep: SIGSEGV before
    before = worker_view(worker)
    words = codec.enc(np.zeros(20, np.int32))
    for topics, doc_ptr in [(np.full(20, 2**31 - 1, np.int32), np.array([0, 20])),
                            (np.zeros(20, np.int32), np.array([0, 2**40])),
                            (np.zeros(20, np.int32), np.array([0, 12, 1, 20])),
                            (np.full(20, -1, np.int32), np.array([0, 20]))]:
        item = {"idx": 1, "seed": 0, "ref": None, "topics": codec.enc(topics), "words": words,
                "doc_ptr": codec.enc(doc_ptr)}
        with pytest.raises(ValueError):
            worker.load_shards("k" * 32, [item])
    assert worker_view(worker) == before
