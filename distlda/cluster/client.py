"""How a model finds the cluster, and the executor that trains on it.

``choose_executor`` makes the serial/distributed decision: it connects to the name server at
``ns_conf`` host/port (default PYRO_NS_HOST / PYRO_NS_PORT), or, with neither, tries
localhost:9090 and then one broadcast round (0.7 s; ``ns_conf=dict(broadcast=False)`` skips
it), so with no cluster it answers in under a second (a bare ``Pyro5.api.locate_ns()`` spends
about 2.1 s). In auto mode a dispatcher gets 1 s to answer; with ``distributed=True`` it gets
:data:`DISPATCHER_WAIT` seconds (a loaded machine is slow, not absent).

:class:`DistributedExecutor` streams the model's chunks (tokens and committed topics) once to
the dispatcher, which spreads them over the workers; it then asks for one sweep at a time and
finally copies the committed topics back into the client's :class:`GibbsState`, checking that
the client's counts equal the dispatcher's. Until then the client's state is the one from before
the training, so a training that fails (dispatcher gone) leaves the model exact and usable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

import numpy as np

from distlda import config
from distlda.cluster import codec as _wire
from distlda.cluster import names, transport
from distlda.cluster import tls as _tls
from distlda.cluster.messages import ChunkLoad, SessionConfig, ShardSet, is_dispatcher
from distlda.errors import ClusterUnavailable, DispatcherLost, DistldaError, data_error
from distlda.gibbs import blocks
from distlda.params import resolve_ns_conf

logger = logging.getLogger(__name__)

DISPATCHER = names.DISPATCHER
#: Seconds allowed to each step of the decision (name server, dispatcher lookup, ping).
DECIDE_TIMEOUT = 0.5
#: Seconds a registered dispatcher may take to answer when the cluster was asked for.
DISPATCHER_WAIT = 10.0


def use_tls(folder) -> str:
    """Connect with mutual TLS (``folder``: a folder of ``python -m distlda certs``, presenting
    its ``client.pem``), or plainly (None); returns a hint for connection errors.

    Raises
    ------
    distlda.cluster.tls.TLSError
        The folder cannot be used (no ``ca.pem``, no client certificate, a foreign one).
    """
    if folder is None:
        transport.use_tls(None)
        return "; if the cluster uses TLS, pass tls=DIR (or set $DISTLDA_TLS)"
    f = _tls.TLSFolder(folder)
    cert, key = f.for_client()
    transport.use_tls(str(f.ca_file), cert, key)
    logger.info("TLS: presenting %s, trusting %s", cert, f.ca_file)
    return (f"; with TLS ({f.folder}), the cluster must run with --tls and certificates of the "
            f"same CA")


def find_dispatcher(ns_conf: dict | None = None, timeout: float = DECIDE_TIMEOUT,
                    wait: float = 1.0, hint: str = ""):
    """Locate the dispatcher: returns (uri, ping info) or raises :class:`ClusterUnavailable`.

    ``wait``: seconds the dispatcher may take to answer its ping; ``hint``: appended to the
    errors of connections that fail (:func:`use_tls`).
    """
    conf = resolve_ns_conf(ns_conf)  # the table's rule (a model checked it already)
    host, port = conf.get("host"), conf.get("port")
    direct = host is not None or bool(config.ns_host())
    broadcast = bool(conf.get("broadcast", True)) and not direct
    where = (transport.ns_address(host, port) if not broadcast else
             f"{transport.ns_address('localhost', port)} or by broadcast")
    try:
        ns = transport.locate_ns(host, port, timeout=timeout, broadcast=broadcast)
    except transport.PyroError as e:
        raise ClusterUnavailable(f"no Pyro5 name server at {where} ({e}); start one with "
                                 f"'python -m distlda nameserver' or pass ns_conf=dict(host=..., "
                                 f"port=...){hint}") from None
    try:
        with ns:
            uri = ns.lookup(DISPATCHER)
    except transport.NamingError:
        raise ClusterUnavailable(f"no dispatcher registered with the name server at {where}; "
                                 f"start one with 'python -m distlda.models.lda_dispatcher'") from None
    except transport.PyroError as e:
        raise ClusterUnavailable(f"the name server at {where} does not answer ({e}){hint}") from None
    try:
        with transport.proxy(uri, max(timeout, wait)) as d:
            info = d.ping()
    except transport.PyroError as e:
        raise ClusterUnavailable(f"the dispatcher registered at {uri} does not answer ({e}); "
                                 f"restart 'python -m distlda.models.lda_dispatcher'{hint}") from None
    if not is_dispatcher(info):
        # plain mode: anyone may overwrite a name-server entry; a restarted dispatcher takes
        # its name back within seconds (TLS keeps outsiders off the name server)
        raise ClusterUnavailable(f"the name server's entry {DISPATCHER!r} points to {uri}, "
                                 f"which does not answer as a distlda dispatcher (another "
                                 f"process registered that name?); restart 'python -m "
                                 f"distlda.models.lda_dispatcher', or use --tls") from None
    if info.get("busy"):
        raise ClusterUnavailable(f"the dispatcher at {uri} is busy with another training "
                                 f"({info.get('training', 'unnamed')})")
    if not info.get("workers"):
        raise ClusterUnavailable(f"the dispatcher at {uri} has 0 workers; start some with "
                                 f"'python -m distlda.models.lda_worker'")
    return uri, info


def choose_executor(distributed, ns_conf: dict, workers: int, tls=None):
    """Return a cluster executor, or None to train in-process.

    ``distributed`` is None or True (a model with distributed=False never calls this, nor
    imports this module). None falls back to serial when no dispatcher with workers is found
    (deciding in under 2 s); True raises :class:`~distlda.errors.ClusterUnavailable` (a
    RuntimeError) naming what is missing. ``tls``: a folder of ``python -m distlda certs``
    (default ``$DISTLDA_TLS``) for mutual TLS; one that cannot be used raises
    :class:`~distlda.errors.TLSError` in every mode.
    """
    t0 = time.perf_counter()
    hint = use_tls(tls if tls is not None else config.tls_folder())
    try:
        uri, info = find_dispatcher(ns_conf, wait=DISPATCHER_WAIT if distributed else 1.0,
                                    hint=hint)
    except ClusterUnavailable as e:
        if distributed is True:
            raise ClusterUnavailable(f"distributed=True, but there is no usable cluster: {e}") \
                from None
        logger.info("serial: no cluster (%s); training in-process with %d thread(s) "
                    "[decided in %.2f s]", e, workers, time.perf_counter() - t0)
        return None
    logger.info("using distributed version with %d workers (dispatcher %s)", info["workers"], uri)
    return DistributedExecutor(uri, info["workers"])


#: Times a fetch is tried again when chunks were lost meanwhile.
FETCH_TRIES = 20


class _Mismatch(DistldaError, RuntimeError):
    """The counts copied back differ from the dispatcher's (a bug)."""


class DistributedExecutor:
    """Runs Gibbs sweeps on a Pyro5 cluster (see :mod:`distlda.models.lda_dispatcher`).

    Parameters
    ----------
    uri : str or Pyro5 URI
        The dispatcher.
    num_workers : int
        Workers the dispatcher reported (for ``describe``; the cluster may change).
    timeout : float
        Seconds without an answer from the dispatcher before the training fails.
    sampler, mh_steps
        Passed to :func:`distlda.gibbs.sampling.sweep` on the workers.

    Attributes
    ----------
    stats : dict
        The dispatcher's traffic counters of the last run (``bytes_per_token_per_sweep``...).
    """

    #: Bytes of chunk payload per load call.
    LOAD_BATCH = 8 << 20
    #: Seconds between checkpoints: the client copies the cluster's assignments into its own
    #: state (about 1 byte a token), so a lost dispatcher costs at most this much training.
    CHECKPOINT_SECONDS = 30.0

    def __init__(self, uri, num_workers: int = 0, timeout: float = 120.0, sampler: str = "sparse",
                 mh_steps: int | None = None):
        self.uri = uri
        self.num_workers = num_workers
        self.timeout = float(timeout)
        self.sampler = sampler
        self.mh_steps = mh_steps
        self.stats: dict = {}

    def describe(self) -> str:
        return f"distributed ({self.num_workers} workers at {self.uri})"

    def run(self, state, iterations: int, rng: np.random.Generator, on_sweep) -> None:
        """Run ``iterations`` sweeps on the cluster, then commit the result into ``state``.

        Raises :class:`DispatcherLost` if the dispatcher stops answering; ``state`` then holds
        the last checkpoint (every :attr:`CHECKPOINT_SECONDS`), exact.
        """
        self.sweeps_kept = 0
        run = self._run_sharded if state.shards is not None else self._run
        with transport.proxy(self.uri, self.timeout) as d:
            try:
                run(d, state, iterations, rng, on_sweep)
            except transport.CommunicationError as e:
                raise DispatcherLost(
                    f"lost the dispatcher at {self.uri} during training ({e}); the model keeps "
                    f"the {self.sweeps_kept} sweeps of this training done before its last "
                    f"checkpoint", self.sweeps_kept) from None
            except _Mismatch:
                raise
            except RuntimeError as e:  # raised on the dispatcher (e.g. no worker left)
                typed = data_error(e)  # a shard or checkpoint that cannot be read
                if typed is not None:
                    raise typed from None
                raise DispatcherLost(
                    f"distributed training failed: {e}; the model keeps the "
                    f"{self.sweeps_kept} sweeps of this training done before its last "
                    f"checkpoint", self.sweeps_kept) from None

    def _run(self, d, state, iterations, rng, on_sweep):
        """An in-memory corpus: its chunks go to the workers once, relayed by the dispatcher
        (which keeps none); the client keeps the full Gibbs state, brought up to date at each
        checkpoint, and sends a lost worker's chunks again from it when a sweep says so."""
        for c in state.chunks:
            # The dispatcher hands out vocabulary blocks as word id ranges: sorted, a
            # block's tokens are one run per document. (Order in a document is free.)
            blocks.sort_for_blocks(c)
        shards = ShardSet.of_chunks([c.num_tokens for c in state.chunks], state.sweeps_done)
        with self._session(d, state, shards) as session:
            t0 = time.perf_counter()
            self._send(d, session, state, range(len(state.chunks)))
            logger.info("sent %d chunks (%d tokens) to the workers in %.2f s",
                        len(state.chunks), state.num_tokens, time.perf_counter() - t0)
            n_tok = max(state.num_tokens, 1)
            last_checkpoint = time.perf_counter()
            for it in range(iterations):
                seeds = rng.integers(2 ** 32, size=len(state.chunks)).astype(np.uint32)
                done = self._wait(d, session, d.sweep(session, _wire.enc(seeds),
                                                      _wire.enc(state.alpha)))
                self._send(d, session, state, done.get("need") or [])
                if (it + 1 < iterations
                        and time.perf_counter() - last_checkpoint >= self.CHECKPOINT_SECONDS):
                    self._fetch(d, session, state)
                    self.sweeps_kept = it + 1
                    last_checkpoint = time.perf_counter()
                on_sweep(it, loglik=lambda: d.loglik(session) / n_tok,
                         histograms=lambda: tuple(_wire.dec(a) for a in d.histograms(session)),
                         sync=lambda: self._fetch(d, session, state))
            self._fetch(d, session, state)
            self._report(d, session, "redispatched_chunks", "chunks sent again")

    @contextlib.contextmanager
    def _session(self, d, state, shards: ShardSet):
        """A training session of the dispatcher ``d`` for ``state``'s model and the corpus
        ``shards`` says, ended (its workers freed) however the training ends."""
        label = f"{socket.gethostname()} pid {os.getpid()}"
        session = d.start_session(SessionConfig(
            state.num_topics, state.num_terms, state.alpha, state.beta, self.sampler,
            self.mh_steps, label, len(shards.sizes), int(sum(shards.sizes)), shards).to_wire())
        try:
            yield session
        finally:
            try:
                d.end_session(session)
            except transport.PyroError:
                pass

    def _report(self, d, session, key: str, what: str) -> None:
        """Keep the dispatcher's counters of the training and log its summary line."""
        self.stats = d.stats(session)
        logger.info("distributed training: %.2f bytes/token/sweep on the wire (%d workers "
                    "lost, %d %s)", self.stats.get("bytes_per_token_per_sweep", 0.0),
                    self.stats.get("lost_workers", 0), self.stats.get(key, 0), what)

    def _send(self, d, session, state, idxs) -> None:
        """Chunks ``idxs`` with the client's topics (its last checkpoint), in batches of
        about :attr:`LOAD_BATCH` bytes, to the workers through the dispatcher."""
        K = state.num_topics
        batch, size = [], 0
        idxs = list(idxs)
        for n, i in enumerate(idxs):
            c = state.chunks[i]
            batch.append(ChunkLoad(i, c.words, c.doc_ptr, c.topics).to_wire(K))
            size += c.words.nbytes * 2
            if size >= self.LOAD_BATCH or n + 1 == len(idxs):
                batch, blobs = _wire.stage_out(batch)  # a big chunk goes in pieces
                _wire.send_pieces(lambda *a: d.put(session, *a), blobs)
                d.load(session, batch)
                batch, size = [], 0

    def _run_sharded(self, d, state, iterations, rng, on_sweep):
        """A shard set's training: the workers read their shards; the client sends the
        set's address and gets back the counts of each complete checkpoint."""
        sh = state.shards
        start = state.sweeps_done
        shards = ShardSet(sh.url, sh.checkpoint, tuple(sh.sizes), sh.seeds, tuple(sh.refs),
                          start, tuple(sh.every))
        with self._session(d, state, shards) as session:
            n_tok = max(sh.num_tokens, 1)
            last = time.perf_counter()
            for it in range(iterations):
                seeds = rng.integers(2 ** 32, size=sh.num_shards).astype(np.uint32)
                self._wait(d, session, d.sweep(session, _wire.enc(seeds), _wire.enc(state.alpha)))
                if (it + 1 < iterations
                        and time.perf_counter() - last >= self.CHECKPOINT_SECONDS):
                    self._fetch_kept(d, session, state, start)
                    last = time.perf_counter()
                on_sweep(it, loglik=lambda: d.loglik(session) / n_tok,
                         histograms=lambda: tuple(_wire.dec(a) for a in d.histograms(session)),
                         sync=lambda: self._fetch_kept(d, session, state, start))
            self._wait(d, session, d.finish(session))
            if not self._fetch_kept(d, session, state, start, final=start + iterations):
                raise _Mismatch("the cluster's final model is missing (please report this bug)")
            self._report(d, session, "restored_shards", "shards restored from checkpoints")

    @staticmethod
    def _wait(d, session, job):
        while True:
            r = d.wait(session, job, 1.0)
            if r is not None:
                return r

    def _fetch_kept(self, d, session, state, start: int, final: int | None = None) -> bool:
        """Take the cluster's last model whose every shard is checkpointed (``final``: the
        one at that sweep) into ``state``, with its checkpoint references; False if there is
        none newer than what ``state`` holds."""
        k = d.kept(session)
        if k is None or (final is not None and k["sweep"] != final):
            return False
        if final is None and start + self.sweeps_kept >= k["sweep"]:
            return False
        V, K = state.num_terms, state.num_topics
        nwk = np.empty((V, K), np.int32)
        step = max(1, self.LOAD_BATCH // (4 * K))
        for a in range(0, V, step):
            b = min(V, a + step)
            rows = _wire.dec(d.rows(session, a, b))
            if rows.shape != (b - a, K):
                raise _Mismatch("the cluster sent counts of the wrong shape")
            nwk[a:b] = rows
        nk = _wire.dec(k["nk"]).astype(np.int32)
        _check_counts(nwk, nk, state.num_tokens, k)
        state.nwk, state.nk = nwk, nk
        state.shards.refs = list(k["refs"])
        self.sweeps_kept = k["sweep"] - start
        state.touch()
        return True

    def _fetch(self, d, session, state) -> None:
        """Commit the cluster's current topics into the client state and check the counts
        (chunks whose worker was lost meanwhile are sent again from the client first)."""
        n = len(state.chunks)
        step = max(1, self.LOAD_BATCH // max(4 * state.num_tokens // max(n, 1), 1))
        for _ in range(FETCH_TRIES):
            got: list = []
            for start in range(0, n, step):
                page = d.topics(session, start, min(n, start + step))
                if isinstance(page, dict):  # a worker was lost: send its chunks, start again
                    self._send(d, session, state, page.get("need") or [])
                    break
                got.append((start, page))
            else:
                break
        else:
            raise RuntimeError("the cluster kept losing chunks while the client fetched them")
        for start, page in got:  # committed once every page is in: all of one moment
            for k, t in enumerate(page):
                state.commit(start + k, _wire.dec_topics(t))
        _check_counts(state.nwk, state.nk, state.num_tokens, d.summary(session))


def _check_counts(nwk: np.ndarray, nk: np.ndarray, tokens: int, theirs: dict) -> None:
    """The client's copy of the counts must be the dispatcher's (``theirs``: its token count,
    topic totals ``nk`` and digest ``nwk_sha1``) and hold ``tokens`` tokens."""
    if (_wire.digest(nwk) != theirs["nwk_sha1"] or int(nk.sum()) != tokens
            or theirs["tokens"] != tokens or not np.array_equal(_wire.dec(theirs["nk"]), nk)
            or not np.array_equal(nwk.sum(axis=0, dtype=np.int64), nk)):
        raise _Mismatch("the counts copied back from the cluster do not match the "
                        "dispatcher's (please report this bug)")
