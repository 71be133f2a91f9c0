"""The distlda dispatcher: runs Gibbs sweeps on the workers and keeps the counts exact.

Run it once per cluster, after the name server (and before or after the workers)::

    python -m distlda.models.lda_dispatcher                     # name server from PYRO_NS_HOST/PORT
    python -m distlda.models.lda_dispatcher --ns-host 10.0.0.1 --host 10.0.0.1 --timeout 5

It registers as ``distlda.dispatcher``. A client (``LdaModel(..., distributed=True)``) opens a
training session, then sends the address of its shard set, or streams its in-memory chunks
through the dispatcher to the workers once, and asks for sweeps. No token stays here.
This module is the remote shell: sessions and their sweeps are run by
:class:`distlda.cluster.coordinator.Coordinator` (the schedule and failure handling are
described there), the committed counts are kept by :class:`distlda.cluster.ledger.Ledger`,
and where the data is by :class:`distlda.cluster.shard_session.ShardKeeper`.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import logging
import sys
import threading
import time

import numpy as np

from distlda.cluster import codec, names, process, transport
from distlda.cluster.coordinator import Coordinator, Roster
from distlda.cluster.messages import (
    DISPATCHER_SERVICE,
    ProtocolError,
    SessionConfig,
    arg_alpha,
    arg_array,
    arg_float,
    arg_int,
    arg_list,
    arg_str,
    is_dispatcher,
)
from distlda.gibbs import sampling

logger = logging.getLogger("distlda.dispatcher")

NAME = META = names.DISPATCHER

__all__ = ["LdaDispatcher", "NAME", "main"]


@transport.expose
class LdaDispatcher:
    """Remote API used by :class:`distlda.cluster.client.DistributedExecutor`."""

    def __init__(self, ns_host=None, ns_port=None, timeout: float = 5.0, poll: float = 1.0,
                 worker_wait: float | None = None, session_timeout: float = 120.0,
                 max_memory: int | None = None):
        self.poll = float(poll)
        self.max_memory = process.default_max_memory() if max_memory is None else max_memory
        self.worker_wait = max(float(timeout), 10.0) if worker_wait is None else float(worker_wait)
        self.session_timeout = float(session_timeout)
        self._lock = threading.RLock()
        self.roster = Roster(ns_host, ns_port, float(timeout), self._lock)
        self._run: Coordinator | None = None
        self._last_stats: tuple[str, dict] | None = None  # (session, counters)
        self._trainings = 0
        self._touched = 0.0
        self._sweeps = transport.PolledJobs("sweep job")
        self._inbox = codec.Staging()  # big arrays of a client's next load, sent in pieces
        self._sweeping = False
        self._pool = cf.ThreadPoolExecutor(64, thread_name_prefix="worker-rpc")
        #: DISTLDA_CHECK=1: send the dense rows along with every sparse update, for the
        #: worker to verify (tests).
        self.check = sampling.check_mode()
        self.roster.start(self._pool)

    def _busy(self) -> bool:
        return self._run is not None and time.time() - self._touched < self.session_timeout

    def _session(self, session) -> Coordinator:
        run = self._run
        if session is None or run is None or session != run.session:
            raise RuntimeError("no such training session (the dispatcher restarted, or another "
                               "client took over after this one went silent)")
        self._touched = time.time()
        return run

    # ------------------------------------------------------------ sessions
    #: Seconds a ping waits for the first round of the worker discovery of a dispatcher that
    #: has just started (it pings each registered worker, at most 1 s each, in turn).
    FIRST_ROUND_WAIT = 3.0

    def ping(self) -> dict:
        """Workers available now, from the dispatcher's own state (it contacts no worker);
        a dispatcher that has just started answers once it has asked the registered ones."""
        self.roster.first_round.wait(self.FIRST_ROUND_WAIT)
        with self._lock:
            info = {"service": DISPATCHER_SERVICE, "workers": len(self.roster.membership),
                    "names": self.roster.membership.names(), "busy": self._busy()}
            if info["busy"] and self._run is not None:
                info["training"] = self._describe(self._run)
            return info

    def _describe(self, run: Coordinator) -> str:
        """A running training, as other clients are told of it (never its session id)."""
        return (f"the training of {run.config.label or 'a client'}, started "
                f"{time.time() - run.started:.0f} s ago, {run.telemetry.totals['sweeps']} "
                f"sweeps done")

    def start_session(self, config: dict) -> str:
        """Open a training session (:class:`distlda.cluster.messages.SessionConfig`)."""
        cfg = SessionConfig.from_wire(config)  # checked whole before any state changes
        cfg.check_limits(self.max_memory, "the dispatcher")
        with self._lock:
            if self._busy() and self._run is not None:
                raise RuntimeError(f"the dispatcher is busy with {self._describe(self._run)}; "
                                   f"try again when it has finished")
            if self._run is not None:
                self._run.ended = True
            self._run = Coordinator(transport.new_id(), cfg, self.roster, self._pool,
                                    self.poll, self.worker_wait, self.check)
            self._touched = time.time()
            self.roster.membership.changed = True
            self._trainings += 1  # logs name trainings by number: the id is a capability
            self._run.number = self._trainings
            logger.info("training %d (%s): %d topics, %d terms, %d tokens", self._trainings,
                        cfg.label or "a client", cfg.num_topics, cfg.num_terms, cfg.num_tokens)
            return self._run.session

    def put(self, session: str, sid: str, offset: int, total: int, piece: bytes) -> None:
        """A piece of a big array of the next load (:func:`distlda.cluster.codec.stage_out`)."""
        with self._lock:
            run = self._session(session)
        self._inbox.put(sid, offset, total, piece, run.config.staging_bytes())

    def load(self, session: str, chunks: list) -> int:
        """Receive chunks ``[[idx, words, doc_ptr, topics], ...]``: an inline set's go on to
        the workers at once and stay nowhere here (any order; again after a worker was lost:
        the sweep's answer names them, ``need``)."""
        with self._lock:
            run = self._session(session)
            self._idle(run)
        # the workers take them: outside the lock (pings and polls go on meanwhile)
        return run.load(codec.stage_in(arg_list(chunks, "load.chunks"), self._inbox.take))

    def end_session(self, session: str) -> None:
        """End training ``session`` (only its client knows the id) and free its workers."""
        with self._lock:
            run = self._run
            if run is None or session != run.session:
                return
            run.ended = True
            self._last_stats = (session, run.telemetry.snapshot(self.roster.lost))
            self._run = None
            members = list(self.roster.membership.members.values())
        for m in members:
            self._pool.submit(self._release, m.uri, run.key)
        logger.info("training %d ended", run.number)

    @staticmethod
    def _release(uri, key):
        try:
            transport.call(uri, "release", key, timeout=5.0)
        except Exception:
            pass

    # ------------------------------------------------------------ the committed state
    def loglik(self, session: str) -> float:
        """Joint log-likelihood log p(w, z) of the committed state."""
        with self._lock:
            run = self._session(session)
            keeper = run.shards
            self._idle(run)
        # the documents are on the workers: they add their part
        docs, _ = keeper.doc_stats()
        with self._lock:
            return docs + keeper.ledger.loglik_words()

    def histograms(self, session: str) -> list:
        """Document-topic count histograms of the committed topics, for learning alpha
        (:func:`distlda.gibbs.hyper.count_histograms`, five int64 arrays)."""
        with self._lock:
            run = self._session(session)
            self._idle(run)
        _, h = run.shards.doc_stats()  # counted by the workers, on their documents
        return [codec.enc(np.asarray(a, np.int64)) for a in h]

    def _idle(self, run: Coordinator) -> None:
        if self._sweeping:
            raise RuntimeError("a sweep is running: ask when it has finished")

    # ------------------------------------------------------------ a shard set's model
    def finish(self, session: str) -> str:
        """End a sharded training: every shard's topics written to its checkpoint, so that
        :meth:`kept` is the final model. Returns a job id for :meth:`wait`."""
        with self._lock:
            run = self._session(session)
            if run.shards.inline:
                raise ProtocolError("finish: an in-memory corpus's session keeps no checkpoint")
            self._idle(run)
            self._sweeping = True

        def finish():
            try:
                return run.shards.checkpoints.finish()
            finally:
                self._sweeping = False

        return self._sweeps.start(finish, name="finish")

    def kept(self, session: str) -> dict | None:
        """The last model of a sharded session whose every shard's topics are checkpointed:
        its sweep, topic totals, a digest of its counts and the checkpoint of each shard
        (None before the first). Its counts come from :meth:`rows`."""
        with self._lock:
            run = self._session(session)
            k = run.ledger.kept
            if k is not None:
                run.shards.checkpoints.took(k[0])
        if k is None:
            return None
        sweep, nwk, nk, refs = k
        return {"sweep": sweep, "nk": codec.enc(nk), "refs": refs, "tokens": int(nk.sum()),
                "nwk_sha1": codec.digest(nwk)}

    def rows(self, session: str, start: int, stop: int) -> dict:
        """Rows ``start:stop`` of the counts of :meth:`kept` (int32, words x topics)."""
        with self._lock:
            run = self._session(session)
            k = run.ledger.kept
            if k is None:
                raise ProtocolError("rows: no kept model (not a shard set's session, or none "
                                    "yet)")
            V = run.config.num_terms
            start = arg_int(start, "rows.start", 0, V)
            stop = arg_int(stop, "rows.stop", start, V)
            return codec.enc(k[1][start:stop])

    def topics(self, session: str, start: int, stop: int) -> list | dict:
        """Committed topics of chunks ``start:stop`` of a client's in-memory corpus, fetched
        from the workers that hold them; ``{"need": [...]}`` when some have no holder (the
        client sends those again, then asks again)."""
        with self._lock:
            run = self._session(session)
            keeper = run.shards
            if not keeper.inline:
                raise ProtocolError("topics: a session on a shard set keeps no topics here "
                                    "(they are on the workers and in their checkpoints)")
            n = run.ledger.num_chunks
            start = arg_int(start, "topics.start", 0, n)
            stop = arg_int(stop, "topics.stop", start, n)
            self._idle(run)
        got = keeper.topics(list(range(start, stop)))  # from their holders, relayed
        if got is None:
            return {"need": sorted(keeper.need)}
        return [codec.enc_topics(t, run.config.num_topics) for t in got]

    def summary(self, session: str) -> dict:
        """nk, a digest of nwk and the token count, to check the client's copy."""
        with self._lock:
            return self._session(session).ledger.summary()

    def stats(self, session: str | None = None) -> dict:
        """Traffic, timing and failure counters of the running (or last finished) session.

        Operational counters only, public like :meth:`ping`: no session id, no corpus data.
        """
        with self._lock:
            run = self._run
            if run is not None:
                return run.telemetry.snapshot(self.roster.lost)
            return dict(self._last_stats[1]) if self._last_stats is not None else {}

    # ------------------------------------------------------------ sweeps
    def sweep(self, session: str, seeds: dict, alpha: dict | None = None) -> str:
        """Start one sweep over all chunks in a thread; returns a job id for :meth:`wait`.

        ``alpha``, when given, is the document-topic prior from this sweep on.
        """
        with self._lock:  # every argument checked before anything changes
            run = self._session(session)
            a = (None if alpha is None else
                 arg_alpha(alpha, run.config.num_topics, "sweep.alpha"))
            seeds_a = arg_array(seeds, "sweep.seeds", 1, "iu", copy=True)
            if seeds_a.shape != (run.ledger.num_chunks,):
                raise ProtocolError(f"got {seeds_a.shape[0]} seeds for {run.ledger.num_chunks} "
                                    f"chunks")
            if self._sweeping:
                raise RuntimeError("a sweep is already running")
            if a is not None:
                run.set_alpha(a)
            self._sweeping = True
        return self._sweeps.start(lambda: self._sweep(run, seeds_a), name="sweep")

    def _sweep(self, run: Coordinator, seeds) -> dict:
        try:
            return run.sweep(seeds)
        finally:
            self._sweeping = False

    def wait(self, session: str, job: str, timeout: float = 1.0):
        """The sweep's statistics once it is done, waiting at most ``timeout`` s; else None."""
        with self._lock:
            self._session(session)
        r = self._sweeps.wait(arg_str(job, "wait.job"), arg_float(timeout, "wait.timeout", 0, 30))
        with self._lock:
            self._touched = time.time()
        return r


def _genuine(uri) -> bool:
    """Whether ``uri`` answers as a distlda dispatcher (not a stale or an impostor's entry)."""
    try:
        return is_dispatcher(transport.call(uri, "ping", timeout=2.0))
    except Exception:
        return False


def _already_running(args) -> bool | None:
    """True if a live dispatcher is registered, None if the name server cannot be reached."""
    try:
        old = transport.lookup(args.ns_host, args.ns_port, NAME)
    except transport.PyroError as e:
        logger.error("cannot reach the name server at %s: %s",
                     transport.ns_address(args.ns_host, args.ns_port), e)
        return None
    if old is None:
        return False
    if not _genuine(old):
        logger.warning("the name %s points to %s, which does not answer as a distlda "
                       "dispatcher (stale, or another process's); replacing it", NAME, old)
        return False
    logger.error("a dispatcher is already running at %s", old)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distlda.models.lda_dispatcher",
                                description="Start the distlda dispatcher (one per cluster).")
    process.add_common_args(p)
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds without an answer after which a worker is declared lost: a "
                        "running job is polled every second, so a live worker answers well "
                        "within it (default 5)")
    p.add_argument("--worker-wait", type=float, default=None,
                   help="seconds a sweep waits for a worker when none is left (default: "
                        "--timeout, at least 10)")
    args = p.parse_args(argv)
    process.setup(args)

    def start() -> int:
        process.connect(args, "dispatcher")
        if _already_running(args) is not False:
            return 1
        disp = LdaDispatcher(args.ns_host, args.ns_port, timeout=args.timeout,
                             worker_wait=args.worker_wait, max_memory=args.max_memory)
        logger.info("dispatcher worker timeout %.0f s", args.timeout)
        return process.serve(disp, NAME, args, META, genuine=_genuine)

    return process.run("dispatcher", start)


if __name__ == "__main__":
    sys.exit(main())
