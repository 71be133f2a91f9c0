"""Plain-mode least privilege: an outsider who can reach the cluster's ports reads no training
data, cannot end, steer or stall a training it did not start, and cannot lock clients out.

Every test here plays the outsider with a plain Pyro5 proxy (or a raw socket) against real
processes, while a real client trains, and checks that the training stays exact.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import Pyro5.api
import Pyro5.errors
import pytest

from distlda.cluster import codec
from distlda.cluster.messages import ShardSet
from distlda.errors import OwnedElsewhere
from distlda.models import LdaModel

from cluster import Cluster, free_port
from helpers import planted_corpus, run_in_thread, wait_for

HEX_ID = re.compile(r"[0-9a-f]{32}")


def outsider(uri, serializer="msgpack", timeout=5.0):
    p = Pyro5.api.Proxy(uri)
    p._pyroSerializer = serializer
    p._pyroTimeout = timeout
    return p


def lookup(c: Cluster, name="distlda.dispatcher"):
    with c._ns() as ns:
        return ns.lookup(name)


def worker_uris(c: Cluster) -> list:
    with c._ns() as ns:
        return list(ns.list(prefix="distlda.worker.").values())


def train(X, c, **kw):
    args = dict(num_topics=8, iterations=40, random_state=1, distributed=True, eval_every=0,
                chunksize=100, ns_conf=c.ns_conf)
    args.update(kw)
    return LdaModel(X, **args)


def exact(lda, tokens) -> None:
    assert int(lda.sstats.sum()) == tokens
    np.testing.assert_array_equal(lda.sstats, lda.state.recount()[0].T)


def no_id_in(answer) -> None:
    assert not HEX_ID.search(repr(answer)), f"an id leaked: {answer!r}"


@pytest.fixture(scope="module")
def corpus():
    X, _ = planted_corpus(D=600, V=400, K=8, L=60, seed=3)
    return X, int(X.sum())


def test_no_call_returns_an_id_or_data_and_outsider_calls_change_nothing(corpus):
    X, n = corpus
    with Cluster(workers=2, check=False) as c:
        t, box = run_in_thread(lambda: train(X, c, iterations=60))
        wait_for(lambda: c.dispatcher_proxy().stats().get("sweeps", 0) >= 2, 60, "2 sweeps")
        d = outsider(lookup(c))
        for answer in (d.ping(), d.stats(), d.stats(None)):
            no_id_in(answer)
        guess = "0" * 32
        for call in (lambda: d.topics(guess, 0, 5), lambda: d.summary(guess),
                     lambda: d.loglik(guess), lambda: d.histograms(guess),
                     lambda: d.load(guess, [[7, {}, {}, {}]]),
                     lambda: d.sweep(guess, codec.enc(np.zeros(3, np.uint32))),
                     lambda: d.wait(guess, "x")):
            with pytest.raises(Exception, match="no such training session"):
                call()
        d.end_session(guess)  # a wrong id ends nothing
        assert d.ping()["busy"]
        # the workers: they give away no key, and refuse resets, loads and drops from us
        for uri in worker_uris(c):
            w = outsider(uri)
            no_id_in(w.ping())
            cfg = {"num_topics": 2, "num_terms": 5, "alpha": codec.enc(np.ones(2)),
                   "beta": 0.1, "num_chunks": 1, "num_tokens": 1,
                   "shards": ShardSet.of_chunks([1], 0).to_wire()}
            for _ in range(100):  # a loop of resets made the training fail before
                with pytest.raises(OwnedElsewhere, match="works for another dispatcher"):
                    w.reset("s" * 32, cfg, "o" * 32)
            for call in (lambda: w.load_shards(guess, []), lambda: w.drop(guess, [0]),
                         lambda: w.sweep(guess, {}), lambda: w.result(guess, "j")):
                with pytest.raises(RuntimeError, match="not in that session"):
                    call()
            w.release(guess)
        t.join(120)
        assert "error" not in box, box.get("error")
        lda = box["result"]
        exact(lda, n)
        share = lda.sstats.sum(axis=1) / n  # unpoisoned: 8 planted topics, none taken over
        assert share.max() < 0.3, share
        assert lda.executor_info.startswith("distributed")
        assert c.dispatcher_proxy().stats()["lost_workers"] == 0


def test_bad_sessions_are_refused_and_leave_the_dispatcher_free(corpus):
    X, n = corpus
    sizes = [n // 6] * 5 + [n - 5 * (n // 6)]
    good = {"num_topics": 4, "num_terms": 400, "alpha": codec.enc(np.full(4, 0.1)),
            "beta": 0.01, "sampler": "sparse", "num_chunks": 6, "num_tokens": n,
            "shards": ShardSet.of_chunks(sizes, 0).to_wire()}
    bad = [({}, "missing field"), (dict(good, num_topics=0), "num_topics"),
           (dict(good, beta=-1.0), "beta"), (dict(good, beta=float("nan")), "beta"),
           (dict(good, alpha=codec.enc(np.ones(3))), "alpha"),
           (dict(good, alpha=codec.enc(np.array([0.1, 0.1, 0.1, np.inf]))), "alpha"),
           (dict(good, sampler="zzz"), "sampler"), (dict(good, num_tokens=-5), "num_tokens"),
           (dict(good, num_terms=200_000_000, num_topics=100,
                 alpha=codec.enc(np.full(100, 0.1))), "refuses a session"),
           ("not a mapping", "mapping")]
    with Cluster(workers=1, check=False) as c:
        d = outsider(lookup(c))
        for cfg, why in bad:  # a plain Pyro5 client reads the reason, too
            with pytest.raises(ValueError, match=why):
                d.start_session(cfg)
            assert not d.ping()["busy"], cfg
        # a plain Pyro5 client that never imported distlda reads the reason as well
        code = ("import sys, Pyro5.api\n"
                "p = Pyro5.api.Proxy(sys.argv[1]); p._pyroSerializer = 'msgpack'\n"
                "try:\n    p.start_session({})\nexcept Exception as e:\n"
                "    print(type(e).__name__, e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(lookup(c))], capture_output=True,
                             text=True, timeout=60)
        assert out.stdout.startswith("ValueError ProtocolError: session config"), out
        # a session the outsider opened legitimately cannot take more than it declared
        s = d.start_session(good)
        chunk = [0, codec.enc(np.zeros(n + 1, np.int32)), codec.enc(np.array([0, n + 1])),
                 codec.enc(np.zeros(n + 1, np.int32))]
        with pytest.raises(ValueError, match="not one of the chunks the session declared"):
            d.load(s, [chunk])
        d.end_session(s)
        exact(train(X, c, iterations=5), n)  # and a real client trains at once


def test_only_msgpack_is_accepted():
    with Cluster(workers=1, check=False) as c:
        targets = [lookup(c), worker_uris(c)[0]]
        for uri in targets:
            for ser in ("serpent", "marshal", "json"):
                with pytest.raises(Pyro5.errors.PyroError, match="msgpack"):
                    outsider(uri, ser).ping()
            assert outsider(uri).ping()  # and msgpack still is


def test_pickle_in_the_environment_does_not_break_the_client(tmp_path):
    # Pyro5 refuses to make a proxy when PYRO_SERIALIZER names a serializer it lacks
    code = ("from distlda.models import LdaModel\n"
            "lda = LdaModel([[(0, 1), (1, 2)], [(2, 1)]] * 20, num_topics=2, iterations=3)\n"
            "print('tokens', lda.num_tokens)\n")
    env = dict(os.environ, PYRO_SERIALIZER="pickle", PYRO_NS_PORT=str(free_port()))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "tokens 80" in out.stdout


def _idle_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=5)
        socks.append(s)
    return socks


def test_80_idle_connections_lock_out_neither_the_dispatcher_nor_the_name_server(corpus):
    X, n = corpus
    port, bc = free_port(), free_port()
    ns = subprocess.Popen([sys.executable, "-m", "distlda", "nameserver", "--host", "127.0.0.1",
                           "--port", str(port), "--bc-port", str(bc)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    socks: list[socket.socket] = []
    try:
        from distlda.cluster import transport

        def up():
            try:
                with transport.ns_proxy("127.0.0.1", port, 1.0) as p:
                    p.ping()
                return True
            except Pyro5.errors.PyroError:
                return False
        wait_for(up, 30, "distlda nameserver")
        socks += _idle_sockets("127.0.0.1", port, 80)
        t0 = time.monotonic()
        with transport.ns_proxy("127.0.0.1", port, 5.0) as p:  # not locked out
            assert p.list(prefix="distlda.") == {}
        assert time.monotonic() - t0 < 3
    finally:
        for s in socks:
            s.close()
        ns.terminate()
        ns.wait(10)
    socks = []
    with Cluster(workers=1, check=False) as c:
        uri = Pyro5.api.URI(lookup(c))
        try:
            socks += _idle_sockets(uri.host, uri.port, 80)
            exact(train(X, c, iterations=5), n)
        finally:
            for s in socks:
                s.close()


class _Impostor:
    @Pyro5.api.expose
    def ping(self):
        return {"workers": 3, "busy": False}

    @Pyro5.api.expose
    def start_session(self, config):
        raise AssertionError("the client sent data to an impostor")


def test_an_overwritten_dispatcher_entry_is_reported_and_taken_back(corpus):
    X, n = corpus
    import threading
    with Cluster(workers=1, check=False) as c:
        real = str(lookup(c))
        daemon = Pyro5.api.Daemon(host="127.0.0.1")
        fake = daemon.register(_Impostor())
        threading.Thread(target=daemon.requestLoop, daemon=True).start()
        try:
            with c._ns() as ns:
                ns.register("distlda.dispatcher", fake, safe=False)
            # the client refuses the impostor clearly (before the real one takes its name back)
            with pytest.raises(RuntimeError, match="does not answer as a distlda dispatcher"):
                train(X, c, iterations=2)
            wait_for(lambda: str(lookup(c)) == real, 20, "the dispatcher to take its name back")
            exact(train(X, c, iterations=3), n)
        finally:
            daemon.shutdown()
            daemon.close()


def test_a_frozen_dispatcher_that_resumes_yields_to_its_successor(corpus):
    X, n = corpus
    import signal
    with Cluster(workers=1, check=False) as c:
        old = c.dispatcher
        os.kill(old, signal.SIGSTOP)  # by PID: one of ours
        try:
            new = c.start_dispatcher()  # the frozen one does not answer: it is replaced
            c.wait_workers(1)
        finally:
            os.kill(old, signal.SIGCONT)
        # the old one finds its name held by a genuine dispatcher and stops, instead of
        # taking the name back and splitting the cluster's clients between the two
        wait_for(lambda: c.procs[old][1].poll() is not None, 30, "the old dispatcher to stop")
        assert c.procs[old][1].returncode == 1
        assert c.procs[new][1].poll() is None
        lda = train(X, c, iterations=3)
        exact(lda, n)


def test_idle_connections_are_closed_and_distlda_proxies_reconnect(monkeypatch, corpus):
    X, n = corpus
    monkeypatch.setenv("DISTLDA_IDLE_TIMEOUT", "2")
    with Cluster(workers=1, check=False) as c:
        uri = Pyro5.api.URI(lookup(c))
        s = socket.create_connection((uri.host, uri.port), timeout=10)
        t0 = time.monotonic()
        while s.recv(1000):  # Pyro5 says "timeout" and hangs up on a silent socket
            pass
        assert 1.5 < time.monotonic() - t0 < 8
        s.close()
        exact(train(X, c, iterations=3), n)


def test_connections_per_remote_address_are_capped():
    from distlda.cluster import transport

    class Conn:
        def __init__(self, addr):
            self.sock = type("S", (), {"getpeername": lambda _self: (addr, 1)})()

    d = transport._Daemon(host="127.0.0.1")
    try:
        far = [Conn("10.9.8.7") for _ in range(transport.MAX_PER_PEER)]
        for conn in far:
            d.validateHandshake(conn, None)
        with pytest.raises(Pyro5.errors.SecurityError, match="too many connections"):
            d.validateHandshake(Conn("10.9.8.7"), None)
        d.validateHandshake(Conn("10.9.8.6"), None)  # another address is not affected
        for _ in range(3 * transport.MAX_PER_PEER):  # nor is this machine's loopback
            d.validateHandshake(Conn("127.0.0.1"), None)
        d.clientDisconnect(far[0])
        d.validateHandshake(Conn("10.9.8.7"), None)  # a closed connection frees its place
    finally:
        d.close()
