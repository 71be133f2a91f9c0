"""A distlda Gibbs worker: holds chunks of the corpus and sweeps them on request.

Run one per machine of the cluster, after the Pyro5 name server: it sweeps its jobs on
``--threads`` threads (default: every core this process may use). Or one per core, each with
``--threads 1``::

    python -m distlda.models.lda_worker                          # name server from PYRO_NS_HOST/PORT
    python -m distlda.models.lda_worker --ns-host 10.0.0.1 --host 10.0.0.7
    python -m distlda.models.lda_worker --threads 1              # one of several on a machine

The worker registers with the name server as ``distlda.worker.<host>.<pid>`` and waits; the
dispatcher (``python -m distlda.models.lda_dispatcher``) finds it by listing that prefix, even
in the middle of a training. This module is the remote shell: it decodes messages
(:mod:`distlda.cluster.messages`) and hands them to the worker's session state
(:class:`distlda.cluster.worker_session.WorkerSession`, which holds the chunks and the model
slice and runs a job). ``sweep`` returns at once with a job id and the work runs in a thread;
the dispatcher polls ``result``, so a long sweep is never mistaken for a dead worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

from distlda import config
from distlda.cluster import codec, names, process, transport
from distlda.cluster.messages import (
    Job,
    ProtocolError,
    SessionConfig,
    ShardLoad,
    arg_alpha,
    arg_float,
    arg_int,
    arg_ints,
    arg_list,
    arg_str,
)
from distlda.cluster.worker_session import StaleView, WorkerSession
from distlda.errors import OwnedElsewhere
from distlda.gibbs.local import available_cores

logger = logging.getLogger("distlda.worker")

PREFIX = names.WORKER_PREFIX
META = "distlda.worker"

__all__ = ["LdaWorker", "PREFIX", "StaleView", "main"]


@transport.expose
class LdaWorker:
    """The remote API of one worker (called by the dispatcher only).

    Parameters
    ----------
    name : str
        Its name server name.
    max_memory : int, optional
        Bytes a training session may need here (default 80% of the machine's memory).
    threads : int, optional
        Threads a job sweeps on (default :func:`~distlda.gibbs.local.available_cores`).

    Raises
    ------
    ValueError
        ``threads`` is not an integer >= 1.
    """

    #: Seconds without a word from the dispatcher that owns this worker after which another
    #: dispatcher may take it over (a restarted one): 4 of the owner's heartbeats.
    TAKEOVER_S = 8.0

    def __init__(self, name: str, max_memory: int | None = None, threads: int | None = None):
        threads = available_cores() if threads is None else threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.name = name
        self.threads = threads
        self.max_memory = process.default_max_memory() if max_memory is None else max_memory
        self._owner: str | None = None  # the secret of the dispatcher that joined us last
        self._owner_seen = 0.0          # monotonic time of its last call
        self._lock = threading.RLock()
        self._state: WorkerSession | None = None
        self._jobs = transport.PolledJobs("job")
        self._inbox = codec.Staging()  # big arrays of the next call, sent in pieces
        self._outbox: dict = {}        # big arrays of the last result, fetched in pieces
        self.sweeps = 0

    def ping(self, owner: str | None = None) -> dict:
        """Who this worker is and what it holds (never its session's key). ``owner``: the
        owning dispatcher's heartbeat, which keeps its claim on this worker fresh."""
        with self._lock:
            if owner is not None and owner == self._owner:
                self._owner_seen = time.monotonic()
            st = self._state
            return {"name": self.name, "pid": os.getpid(), "host": socket.gethostname(),
                    "in_session": st is not None, "chunks": len(st.chunks) if st else 0,
                    "tokens": st.num_tokens if st else 0, "sweeps": self.sweeps,
                    "busy": bool(st and st.busy), "threads": self.threads}

    def reset(self, key: str, config: dict, owner: str) -> None:
        """Forget everything and join the training whose worker key is ``key``, for the
        dispatcher whose secret is ``owner``.

        Raises
        ------
        OwnedElsewhere
            The worker belongs to another dispatcher that was heard from less than
            :data:`TAKEOVER_S` seconds ago.
        ProtocolError
            A malformed configuration, key or secret (nothing changes).
        """
        cfg = SessionConfig.from_wire(config)
        cfg.check_limits(self.max_memory, f"worker {self.name}")
        for v, what in ((key, "key"), (owner, "owner")):
            if not isinstance(v, str) or not 16 <= len(v) <= 128:
                raise ProtocolError(f"reset: {what} must be a string of 16-128 characters")
        with self._lock:
            quiet = time.monotonic() - self._owner_seen
            if self._owner not in (None, owner) and quiet < self.TAKEOVER_S:
                raise OwnedElsewhere(f"worker {self.name} works for another dispatcher, "
                                   f"heard from {quiet:.1f} s ago; it may be taken over after "
                                   f"{self.TAKEOVER_S:.0f} s of silence")
            if self._owner not in (None, owner):
                logger.info("taken over by another dispatcher (the last one was silent for "
                            "%.0f s)", quiet)
            self._owner, self._owner_seen = owner, time.monotonic()
            self._state = WorkerSession(key, cfg, self.name, threads=self.threads)
            self._state.hold = _test_hold()
            self._jobs.clear()
            self._inbox.clear()
            self._outbox = {}
        logger.info("joined a session (%d topics, %d terms)", cfg.num_topics, cfg.num_terms)

    def _session(self, key) -> WorkerSession:
        st = self._state
        if st is None or key != st.session:
            raise RuntimeError(f"worker {self.name} is not in that session")
        self._owner_seen = time.monotonic()  # only the owner knows the key
        return st

    def put(self, session: str, sid: str, offset: int, total: int, piece: bytes) -> None:
        """A piece of a big array of the next call (:func:`distlda.cluster.codec.stage_out`)."""
        with self._lock:
            st = self._session(session)
        self._inbox.put(sid, offset, total, piece, st.config.staging_bytes())

    def piece(self, session: str, sid: str, offset: int, n: int) -> bytes:
        """``n`` bytes from ``offset`` of a big array of the last result."""
        arg_int(offset, "piece.offset")
        arg_int(n, "piece.n", 0, 2 * codec.PIECE_BYTES)
        with self._lock:
            self._session(session)
            data = self._outbox.get(sid) if isinstance(sid, str) else None
        if data is None or not 0 <= offset <= offset + n <= len(data):
            raise ValueError(f"worker {self.name}: no such piece of a result")
        return bytes(data[offset:offset + n])

    # ------------------------------------------------------------ a sharded session
    def load_shards(self, session: str, items: list) -> str:
        """Start holding shards (:class:`distlda.cluster.messages.ShardLoad`), read from the
        session's shard set, in a thread; returns a job id for :meth:`result`, whose answer
        is, per shard, its distinct words and their token counts."""
        with self._lock:
            st = self._session(session)
            if st.busy:
                raise RuntimeError(f"worker {self.name} is busy")
            items = codec.stage_in(arg_list(items, "load_shards.items"), self._inbox.take)
            loads = [ShardLoad.from_wire(it, st.config) for it in items]
            st.busy = True  # no job may start while shards arrive

        def run():
            try:
                out = st.load_shards(loads, self.max_memory)
            finally:
                with self._lock:
                    st.busy = False
            return [{"idx": o["idx"], "words": codec.enc(o["words"]),
                     "freq": codec.enc(o["freq"])} for o in out]

        return self._jobs.start(run, name="load-shards")

    def counts(self, session: str):
        """The word-topic counts of the committed topics of the shards held (a recount's
        part): ``{"rows", "dense"}``, big arrays fetched with :meth:`piece`."""
        with self._lock:
            st = self._session(session)
            if st.busy:
                raise RuntimeError(f"worker {self.name} is sweeping")
            out, self._outbox = codec.stage_out(st.counts().to_wire())
            return out

    def export(self, session: str, idxs: list):
        """The committed topics of shards ``idxs`` (moved to another worker, or an inline
        set's fetched by its client), with their tokens for an inline set; big arrays fetched
        with :meth:`piece`."""
        with self._lock:
            st = self._session(session)
            idxs = arg_ints(idxs, "export.idxs", 2**31)
            if st.busy or any(i not in st.chunks for i in idxs):
                raise RuntimeError(f"worker {self.name} cannot export shards {idxs[:5]} now")
            K = st.config.num_topics
            topics: list = [codec.enc_topics(t, K) for t in st.export(idxs)]
            sh = st.config.shards
            if sh is not None and sh.inline:  # its tokens travel with them: no set to read
                topics = [[t, codec.enc(st.chunks[i].words), codec.enc(st.chunks[i].doc_ptr)]
                          for i, t in zip(idxs, topics)]
            out, self._outbox = codec.stage_out(topics)
            return out

    def doc_stats(self, session: str, alpha: dict) -> dict:
        """The documents' part of log p(w, z) and the count histograms of the shards held."""
        with self._lock:
            st = self._session(session)
            a = arg_alpha(alpha, st.config.num_topics, "doc_stats.alpha")
        ll, hist = st.doc_stats(a)
        return {"loglik": ll, "histograms": [codec.enc(np.asarray(h, np.int64)) for h in hist]}

    def checkpoint(self, session: str, sweep: int, protect: list | None = None) -> None:
        """Write the topics of the shards held (at model sweep ``sweep``) in the background,
        keeping the older checkpoints of the sweeps ``protect``."""
        with self._lock:
            st = self._session(session)
            if st.busy:
                raise RuntimeError(f"worker {self.name} is sweeping")
            keep = tuple(arg_ints(protect or [], "checkpoint.protect", 2**62))
            st.checkpoint(arg_int(sweep, "checkpoint.sweep"), keep)

    def checkpoints(self, session: str, wait: float = 0.0) -> dict:
        """Checkpoints written since the last call (``written``: [shard, ref, error]) and
        whether writing goes on (``busy``), waiting at most ``wait`` s for it to end."""
        with self._lock:
            st = self._session(session)
        done, busy = st.checkpoints(arg_float(wait, "checkpoints.wait", 0, 30))
        return {"written": [list(d) for d in done], "busy": busy}

    def drop(self, session: str, idxs: list) -> None:
        """Give chunks back (the dispatcher moved them to another worker)."""
        with self._lock:
            self._session(session).drop(arg_ints(idxs, "drop.idxs", 2**31))

    def release(self, session: str) -> None:
        """Free the chunks of a finished training."""
        with self._lock:
            if self._state is not None and session == self._state.session and not self._state.busy:
                self._state = None
                self._inbox.clear()
                self._outbox = {}

    def sweep(self, session: str, job: dict) -> str:
        """Start job ``job`` (:class:`distlda.cluster.messages.Job`) in a thread; returns its id
        for :meth:`result`."""
        with self._lock:
            st = self._session(session)
            msg = Job.from_wire(codec.stage_in(job, self._inbox.take), st.config)
            if st.busy:
                raise RuntimeError(f"worker {self.name} is already sweeping")
            st.accept(msg)
            st.busy = True  # per session: a job left from an old session never blocks a new one
        return self._jobs.start(lambda: self._run(st, msg), msg.job, name="sweep")

    def _run(self, st: WorkerSession, job: Job) -> dict:
        try:
            out = st.run(job, self._lock).to_wire()  # encoded now: the buffers are reused
            out, blobs = codec.stage_out(out)
            with self._lock:
                self.sweeps += 1
                self._outbox = blobs
            return out
        finally:
            with self._lock:
                st.busy = False

    def result(self, session: str, job: str, wait: float = 1.0):
        """The job's result once it is done, waiting at most ``wait`` s; None while it runs."""
        with self._lock:
            self._session(session)
        return self._jobs.wait(arg_str(job, "result.job"), arg_float(wait, "result.wait", 0, 30),
                               prefix=f"worker {self.name}: ")


def _test_hold():
    """Tests only: with ``DISTLDA_TEST_HOLD=PHASE:DIR``, a job waits at the start of PHASE
    while ``DIR/hold`` exists (at most 120 s), with ``DIR/<pid>.held`` saying so, so that a
    test can kill a worker at an exact phase instead of polling for it."""
    spec = config.test_hold()
    if not spec:
        return None
    phase, folder = spec.split(":", 1)
    gate, mark = Path(folder) / "hold", Path(folder) / f"{os.getpid()}.held"

    def hold(name: str) -> None:
        if name != phase or not gate.exists():
            return
        mark.touch()
        deadline = time.monotonic() + 120
        while gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        mark.unlink(missing_ok=True)

    return hold


def _threads(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads >= 1, got {text!r}")
    return v


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m distlda.models.lda_worker",
        description="Start a distlda Gibbs worker: one per machine (sweeping on --threads "
                    "threads), or one per core with --threads 1.")
    process.add_common_args(p)
    p.add_argument("--threads", type=_threads, default=None, metavar="T",
                   help="threads a job sweeps on (default: every core this process may use, "
                        f"{available_cores()} here); 1 for one worker per core")
    p.add_argument("--name", default=None,
                   help=f"name server name (default {PREFIX}<hostname>.<pid>)")
    args = p.parse_args(argv)
    name = args.name or names.worker_name(socket.gethostname(), os.getpid())
    if not name.startswith(PREFIX):
        p.error(f"--name must start with {PREFIX!r}")
    process.setup(args)

    def start() -> int:
        process.connect(args, name)
        worker = LdaWorker(name, args.max_memory, args.threads)
        logger.info("sweeping on %d thread%s", worker.threads, "s" if worker.threads > 1 else "")
        return process.serve(worker, name, args, META)

    return process.run(name, start)


if __name__ == "__main__":
    sys.exit(main())
