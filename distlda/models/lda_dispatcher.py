"""The distlda dispatcher: runs Gibbs sweeps on the workers and keeps the counts exact.

Run it once per cluster, after the name server (and before or after the workers)::

    python -m distlda.models.lda_dispatcher                     # name server from PYRO_NS_HOST/PORT
    python -m distlda.models.lda_dispatcher --ns-host 10.0.0.1 --host 10.0.0.1 --timeout 30

It registers as ``distlda.dispatcher``. A client (``LdaModel(..., distributed=True)``) opens a
training session, streams its chunks (tokens and committed topics) once, then asks for sweeps.

Consistency model: synchronous steps on vocabulary blocks (the model-slice rotation of
LightLDA and of Yan et al.'s partitioned sampler). With ``P`` workers each sweep is ``P``
steps: the vocabulary is cut into ``P`` blocks of equal token mass (word id ranges; the client
sorts each document's tokens by word id, so a block is one run of tokens per document) and
in step ``s`` the worker of chunk group ``g`` resamples its tokens of block ``(g + s) % P``.
Every word's rows have exactly one writer in a step and are up to date when it starts (the
worker has applied the changes the others committed in the step before), so the chain mixes
per sweep like a serial one; only the K topic totals lag within a step. Plain AD-LDA
(Newman et al. 2009: all tokens on a snapshot, merged per sweep) ran 20% slower per sweep
here early in training and lagged the serial chain by 0.45 nats/token at sweep 8. The MH
sampler needs whole documents for its phases, so it runs one AD-LDA step a sweep. A worker
returns the new topics of the tokens it resampled and how its rows changed (changed rows or
moves). The dispatcher checks that the two agree (the topic totals they imply), then commits:
writes the topics, moves the topic totals and forwards the row changes, unopened, to the other
workers with their next jobs. So the global counts are always exactly the counts of the
committed assignments. The next step starts when every chunk has been committed once.

Failure: a worker that stops answering (socket closed, or no answer within ``--timeout``
seconds to a poll that returns every second while it computes) is dropped, its registration
removed, and its chunks still to be swept are sent, with their committed topics, to a surviving
worker and swept again in the same step, on their own block (until the next sweep re-plans,
those chunks share a block with another worker's: AD-LDA staleness for the rest of the sweep,
never an accounting error). Its partial work is never committed, so nothing is lost or
counted twice. Workers are discovered by listing ``distlda.worker.`` at every sweep;
a new one gets whole chunks moved to it from the busiest workers at the next sweep.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import logging
import signal
import sys
import threading
import time
import uuid

import os

import numpy as np
import Pyro5.api
from numba import njit
import Pyro5.errors

from distlda.gibbs import kernels as K_
from distlda.cluster import codec as _wire
from distlda.gibbs.hyper import count_histograms
from distlda.gibbs.chunks import Chunk
from distlda.models.lda_worker import (PREFIX as WORKER_PREFIX, _sigterm, add_common_args,
                                       serve_forever, setup_logging)
from distlda.gibbs.state import GibbsState

logger = logging.getLogger("distlda.dispatcher")

NAME = "distlda.dispatcher"
META = "distlda.dispatcher"


class _Member:
    """The dispatcher's record of one worker."""

    def __init__(self, name, uri):
        self.name = name
        self.uri = uri
        self.session = None
        self.chunks: set[int] = set()      # chunks the worker holds (after pending load/drop)
        self.load: list[int] = []          # to send with its next job
        self.drop: list[int] = []
        self.rows = None                   # sorted word ids of its chunks
        self.view_job = None               # its rows are the counts after this job's sweep
        self.rowmap = None                 # word id -> 1 if the worker holds its row
        self.proxy = None                  # kept across jobs (one job at a time)

    def changed(self):
        self.rows = self.view_job = self.rowmap = None


@njit(cache=True, nogil=True)
def _topic_change(topics, lo, hi, new, nk, K):
    """Read a result without changing the chunk: the tokens of the ranges ``lo[d] <= i <
    hi[d]`` get the topics ``new`` (one range after the other). Adds the change of the topic
    totals to ``nk`` and returns how many tokens moved, or -1 if a topic is out of range
    (then ``nk`` is unchanged). ``new`` must hold exactly the ranges' tokens."""
    # Branch-free: two histograms rather than nk[old] -= 1, nk[new] += 1 on each move
    # (unpredictable at 30% unmoved, and a chain of read-modify-writes on nk).
    before = np.zeros(K, np.int64)
    after = np.zeros(K + 1, np.int64)
    j = 0
    same = 0
    for d in range(lo.shape[0]):
        for i in range(lo[d], hi[d]):
            a = topics[i]
            b = np.int64(new[j])
            if b < 0 or b > K:  # out of range: counted at K (never taken when well formed)
                b = K
            before[a] += 1
            after[b] += 1
            same += a == b
            j += 1
    if after[K] != 0:
        return -1
    for k in range(K):
        nk[k] += after[k] - before[k]
    return j - same


@njit(cache=True, nogil=True)
def _read_moves(packed, new, words, topics, lo, hi, nk, out_w, out_old, K):
    """Read a result in the moves form without changing the chunk: bit ``j`` of ``packed``
    (numpy ``packbits`` order) says whether the ``j``-th token of the ranges ``lo[d] <= i <
    hi[d]`` moved, and ``new`` holds the moved tokens' topics in order. Adds the change of the
    topic totals to ``nk`` and writes the moves' words and old topics to ``out_*``. Returns
    the number of moves, or -1 if the result is malformed (too few or too many topics, one
    out of range, a bit past the last token); then the outputs are garbage."""
    M = new.shape[0]
    m = 0
    j = 0
    for d in range(lo.shape[0]):
        for i in range(lo[d], hi[d]):
            if (packed[j >> 3] >> (7 - (j & 7))) & 1:
                if m == M:
                    return -1
                b = np.int64(new[m])
                if b < 0 or b >= K:
                    return -1
                a = topics[i]
                out_w[m] = words[i]
                out_old[m] = a
                nk[a] -= 1
                nk[b] += 1
                m += 1
            j += 1
    if m != M:
        return -1
    for jj in range(j, packed.shape[0] * 8):
        if (packed[jj >> 3] >> (7 - (jj & 7))) & 1:
            return -1
    return m


@njit(cache=True, nogil=True)
def _apply_moves(packed, new, topics, lo, hi):
    """Write the new topics of a result read by :func:`_read_moves` into ``topics``."""
    m = 0
    j = 0
    for d in range(lo.shape[0]):
        for i in range(lo[d], hi[d]):
            if (packed[j >> 3] >> (7 - (j & 7))) & 1:
                topics[i] = new[m]
                m += 1
            j += 1


@njit(cache=True, nogil=True)
def _row_totals(delta, dk):
    """Add the column sums of a worker's row changes to ``dk`` (the change of the topic
    totals they imply); False if a row's changes do not sum to zero (a move keeps its word's
    total)."""
    for j in range(delta.shape[0]):
        t = 0
        for k in range(delta.shape[1]):
            v = delta[j, k]
            t += v
            dk[k] += v
        if t != 0:
            return False
    return True


@njit(cache=True, nogil=True)
def _sorted_in_docs(words, doc_ptr):
    """True if every document's tokens are in word id order (vocabulary blocks need it)."""
    for d in range(doc_ptr.shape[0] - 1):
        for i in range(doc_ptr[d] + 1, doc_ptr[d + 1]):
            if words[i] < words[i - 1]:
                return False
    return True


class _Job:
    def __init__(self):
        self.done = threading.Event()
        self.result = None
        self.error = None


def _payload_bytes(*parts) -> int:
    return sum(_wire.nbytes(p) for p in parts)


@Pyro5.api.expose
class LdaDispatcher:
    """Remote API used by :class:`distlda.cluster.client.DistributedExecutor`."""

    #: Bytes of chunks per load message to a worker.
    LOAD_BATCH = 64 << 20
    #: Worker failures tolerated within one sweep before the sweep fails.
    MAX_FAILURES_PER_SWEEP = 20

    def __init__(self, ns_host=None, ns_port=None, timeout: float = 30.0, poll: float = 1.0,
                 worker_wait: float | None = None, session_timeout: float = 120.0):
        self.ns_host, self.ns_port = ns_host, ns_port
        self.timeout = float(timeout)
        self.poll = float(poll)
        self.worker_wait = self.timeout if worker_wait is None else float(worker_wait)
        self.session_timeout = float(session_timeout)
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._members: dict[str, _Member] = {}
        self._membership_changed = True
        self._session = None
        self._config = None
        self._state: GibbsState | None = None
        self._owner: dict[int, _Member] = {}
        self._touched = 0.0
        self._jobs: dict[str, _Job] = {}
        self._sweeping = False
        self._pool = cf.ThreadPoolExecutor(64, thread_name_prefix="worker-rpc")
        # The second halves of reading and writing results (_halves). A pool of its own: its
        # tasks wait for nothing, while a job task of _pool waits for one of them.
        self._helpers = cf.ThreadPoolExecutor(2, thread_name_prefix="result-half")
        self._stats = None
        self._last_stats = None
        self._clean = False
        self._inbox: dict = {}        # member name -> moves of the others, last sweep
        self._committed: set = set()  # members that committed in the last (clean) sweep
        self._nwk_stale = False
        self._bounds, self._bounds_key = {}, None  # chunk -> block token ranges
        self._last_refresh = -1e9
        #: Seconds between two listings of the workers during a training.
        self.discover_every = 0.5
        #: DISTLDA_CHECK=1: send the dense rows along with every sparse update, for the
        #: worker to verify (tests).
        self.check = os.environ.get("DISTLDA_CHECK", "") not in ("", "0")

    # ------------------------------------------------------------ membership
    def _ns(self, timeout=3.0):
        return _wire.locate_ns(self.ns_host, self.ns_port, timeout=timeout)

    def _refresh(self, min_interval: float = 0.0) -> None:
        """List ``distlda.worker.`` on the name server: admit answering newcomers, drop leavers.

        Skipped when the last listing is less than ``min_interval`` seconds old.
        """
        with self._refresh_lock:
            if time.monotonic() - self._last_refresh < min_interval:
                return
            self._last_refresh = time.monotonic()
            try:
                with self._ns() as ns:
                    listed = ns.list(prefix=WORKER_PREFIX)
            except Pyro5.errors.PyroError as e:
                logger.warning("cannot list workers on the name server: %s", e)
                return
            with self._lock:
                known = dict(self._members)
            for name, uri in listed.items():
                if name in known:
                    continue
                try:
                    with _wire.proxy(uri, min(self.timeout, 2.0)) as w:
                        w.ping()
                except Exception as e:
                    logger.info("worker %s is registered but does not answer (%s)", name, e)
                    continue
                with self._lock:
                    self._members[name] = _Member(name, uri)
                    self._membership_changed = True
                logger.info("found worker %s", name)
            for name in set(known) - set(listed):
                self._lose(known[name], "it left the name server", unregister=False)

    def _lose(self, m: _Member, why, unregister=True) -> None:
        with self._lock:
            if self._members.get(m.name) is not m:
                return
            del self._members[m.name]
            self._membership_changed = True
            for i in m.chunks:
                if self._owner.get(i) is m:
                    del self._owner[i]
            if self._stats is not None:
                self._stats["lost_workers"] += 1
        logger.warning("lost worker %s (%s); its %d chunks go to other workers", m.name, why,
                       len(m.chunks))
        if unregister:
            try:
                with self._ns(2.0) as ns:
                    ns.remove(m.name)
            except Exception:
                pass

    def _join(self) -> None:
        """Bring every member into the current session (a newcomer starts with no chunks)."""
        with self._lock:
            fresh = [m for m in self._members.values() if m.session != self._session]
            config = self._config
            session = self._session
        for m in fresh:
            try:
                with _wire.proxy(m.uri, self.timeout) as w:
                    w.reset(session, config)
            except Exception as e:
                self._lose(m, f"reset failed: {e}")
                continue
            with self._lock:
                m.session = session
                m.chunks, m.load, m.drop = set(), [], []
                m.changed()

    def _members_in_session(self) -> list[_Member]:
        return [m for m in self._members.values() if m.session == self._session]

    # ------------------------------------------------------------ client API: sessions
    def ping(self) -> dict:
        """Workers available now (the list is refreshed unless a sweep is running)."""
        if not self._sweeping:
            self._refresh()
        with self._lock:
            busy = self._session is not None and time.time() - self._touched < self.session_timeout
            return {"workers": len(self._members), "names": sorted(self._members), "busy": busy}

    def start_session(self, config: dict) -> str:
        """Open a training session: ``config`` has num_topics, num_terms, alpha, beta, sampler."""
        with self._lock:
            if (self._session is not None
                    and time.time() - self._touched < self.session_timeout):
                raise RuntimeError("the dispatcher is busy with another training; try again "
                                   "when it has finished")
            self._session = uuid.uuid4().hex
            self._config = dict(config)
            alpha = _wire.dec(config["alpha"], copy=True)
            self._state = GibbsState(config["num_topics"], config["num_terms"], alpha,
                                     config["beta"])
            self._owner = {}
            self._jobs = {}
            self._clean, self._inbox, self._committed = False, {}, set()
            self._bounds, self._bounds_key = {}, None
            self._wdt = np.uint16 if config["num_terms"] <= 65536 else np.int32
            self._freq = np.zeros(config["num_terms"], np.int64)  # tokens per word
            self._nwk_stale = False
            self._membership_changed = True
            self._touched = time.time()
            self._stats = dict(session=self._session, sweeps=0, tokens=0, bytes_down=0,
                               bytes_up=0, bytes_load=0, lost_workers=0, redispatched_chunks=0,
                               seconds=0.0, per_sweep=[])
            logger.info("session %s: %d topics, %d terms", self._session[:8],
                        config["num_topics"], config["num_terms"])
            return self._session

    def _check(self, session):
        if session is None or session != self._session:
            raise RuntimeError("no such training session (the dispatcher restarted, or another "
                               "client took over after this one went silent)")
        self._touched = time.time()

    def load(self, session: str, chunks: list) -> int:
        """Receive chunks ``[[idx, words, doc_ptr, topics], ...]`` (idx in order from 0)."""
        with self._lock:
            self._check(session)
            st = self._state
            for idx, words, doc_ptr, topics in chunks:
                if idx != len(st.chunks):
                    raise ValueError(f"chunk {idx} arrived out of order")
                c = Chunk(words=_wire.dec(words, copy=True), doc_ptr=_wire.dec(doc_ptr, copy=True),
                          topics=_wire.dec_topics(topics))
                if c.words.size and (c.words.min() < 0 or c.words.max() >= st.num_terms):
                    raise ValueError(f"chunk {idx}: word ids out of range")
                p = c.doc_ptr
                if (p.ndim != 1 or p.size < 1 or p[0] != 0 or p[-1] != c.words.size
                        or np.any(np.diff(p) < 0) or c.topics.size != c.words.size):
                    raise ValueError(f"chunk {idx}: malformed document offsets")
                if c.topics.size and (c.topics.min() < 0 or c.topics.max() >= st.num_topics):
                    raise ValueError(f"chunk {idx}: topic ids out of range")
                if not _sorted_in_docs(c.words, c.doc_ptr):
                    raise ValueError(f"chunk {idx}: tokens must be sorted by word id within "
                                     f"each document (distlda.gibbs.kernels.sort_doc_tokens)")
                # Stored as narrow as they travel (2-byte words up to 65,536 terms, 1-byte
                # topics up to 256): the dispatcher's passes over them are memory-bound.
                c.words = c.words.astype(self._wdt)
                c.topics = c.topics.astype(_wire.topic_dtype(st.num_topics))
                K_.count_assignments(c.words, c.topics, st.nwk, st.nk, 1)
                self._freq += np.bincount(c.words, minlength=st.num_terms)
                st.chunks.append(c)
                self._stats["bytes_load"] += _payload_bytes(words, doc_ptr, topics)
            return len(st.chunks)

    def end_session(self, session: str) -> None:
        with self._lock:
            if session != self._session:
                return
            self._last_stats = self._stats
            members = list(self._members.values())
            self._session = self._state = self._config = None
            self._owner = {}
            self._jobs = {}
        for m in members:
            self._pool.submit(self._release, m.uri, session)
        logger.info("session %s ended", session[:8])

    def _release(self, uri, session):
        try:
            with _wire.proxy(uri, 5.0) as w:
                w.release(session)
        except Exception:
            pass

    def loglik(self, session: str) -> float:
        """Joint log-likelihood log p(w, z) of the committed state."""
        with self._lock:
            self._check(session)
            self._counts()
            return float(self._state.log_likelihood())

    def histograms(self, session: str) -> list:
        """Document-topic count histograms of the committed topics, for learning alpha
        (:func:`distlda.gibbs.hyper.count_histograms`, five int64 arrays)."""
        with self._lock:
            self._check(session)
            h = count_histograms(self._state.chunks, self._state.num_topics)
        return [_wire.enc(np.asarray(a, np.int64)) for a in h]

    def topics(self, session: str, start: int, stop: int) -> list:
        """Committed topics of chunks ``start:stop``."""
        with self._lock:
            self._check(session)
            K = self._state.num_topics
            return [_wire.enc_topics(c.topics, K) for c in self._state.chunks[start:stop]]

    def summary(self, session: str) -> dict:
        """nk, a digest of nwk and the token count, to check the client's copy."""
        with self._lock:
            self._check(session)
            self._counts()
            st = self._state
            return {"nk": _wire.enc(st.nk), "tokens": st.num_tokens,
                    "nwk_sha1": hashlib.sha1(np.ascontiguousarray(st.nwk).tobytes()).hexdigest()}

    def stats(self, session: str | None = None) -> dict:
        """Traffic and failure counters of the current (or last finished) session."""
        with self._lock:
            s = self._stats if self._stats is not None and (
                session is None or self._stats["session"] == session) else self._last_stats
            if s is None:
                return {}
            s = dict(s, per_sweep=list(s["per_sweep"][-50:]))
        n = max(s["tokens"], 1) * max(s["sweeps"], 1)
        s["bytes_per_token_per_sweep"] = (s["bytes_down"] + s["bytes_up"]) / n
        return s

    # ------------------------------------------------------------ client API: sweeps
    def sweep(self, session: str, seeds: dict, alpha: dict | None = None) -> str:
        """Start one sweep over all chunks in a thread; returns a job id for :meth:`wait`.

        ``alpha``, when given, is the document-topic prior from this sweep on.
        """
        with self._lock:
            self._check(session)
            if alpha is not None:
                a = _wire.dec(alpha, copy=True)
                if a.shape != self._state.alpha.shape or not np.all(a > 0):
                    raise ValueError("alpha must hold num_topics positive numbers")
                self._state.alpha = a
            if self._sweeping:
                raise RuntimeError("a sweep is already running")
            seeds_a = _wire.dec(seeds, copy=True)
            if seeds_a.shape[0] != len(self._state.chunks):
                raise ValueError(f"got {seeds_a.shape[0]} seeds for {len(self._state.chunks)} chunks")
            job = uuid.uuid4().hex
            j = self._jobs[job] = _Job()
            self._sweeping = True
        threading.Thread(target=self._sweep_job, args=(session, j, seeds_a), daemon=True,
                         name="sweep").start()
        return job

    def wait(self, session: str, job: str, timeout: float = 1.0):
        """The sweep's statistics once it is done, waiting at most ``timeout`` s; else None."""
        with self._lock:
            self._check(session)
            j = self._jobs.get(job)
        if j is None:
            raise RuntimeError(f"no sweep job {job}")
        if not j.done.wait(min(float(timeout), 30.0)):
            with self._lock:
                self._touched = time.time()
            return None
        with self._lock:
            self._jobs.pop(job, None)
        if j.error is not None:
            raise RuntimeError(j.error)
        return j.result

    def _sweep_job(self, session, j, seeds):
        try:
            j.result = self._sweep(session, seeds)
        except Exception as e:
            logger.exception("sweep failed")
            j.error = f"{type(e).__name__}: {e}"
        finally:
            self._sweeping = False
            j.done.set()

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + self.worker_wait
        while True:
            self._refresh()
            self._join()
            with self._lock:
                if self._members_in_session():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no workers: none registered with the name server at "
                                   f"{_wire.ns_address(self.ns_host, self.ns_port)} answered "
                                   f"within {self.worker_wait:.0f} s")
            time.sleep(0.5)

    def _plan(self) -> None:
        """Give unowned chunks to the least-loaded workers; rebalance after membership changes."""
        st = self._state
        members = self._members_in_session()
        size = [c.num_tokens for c in st.chunks]
        load = {m.name: sum(size[i] for i in m.chunks) for m in members}
        target = {m.name: set(m.chunks) for m in members}
        byname = {m.name: m for m in members}
        unowned = sorted((i for i in range(len(st.chunks)) if i not in self._owner),
                         key=lambda i: -size[i])
        for i in unowned:
            n = min(load, key=load.get)
            target[n].add(i)
            load[n] += size[i]
        if self._membership_changed and len(members) > 1:
            for _ in range(len(st.chunks)):
                donor = max(load, key=load.get)
                recv = min(load, key=load.get)
                gap = load[donor] - load[recv]
                movable = [i for i in target[donor] if size[i] < gap]
                if not movable:
                    break
                i = max(movable, key=lambda i: size[i])
                target[donor].discard(i)
                target[recv].add(i)
                load[donor] -= size[i]
                load[recv] += size[i]
        self._membership_changed = False
        for name, t in target.items():
            m = byname[name]
            drop = m.chunks - t
            add = t - m.chunks
            if drop or add:
                m.drop = sorted(set(m.drop) | drop)
                m.load = sorted((set(m.load) - drop) | add)
                m.chunks = set(t)
                m.changed()
            for i in t:
                self._owner[i] = m

    def _submit(self, m: _Member, idxs, seeds, session, inflight, stats, blk=None) -> None:
        """Build member ``m``'s job for chunks ``idxs`` from the current counts and start it.

        The model slice is the dense rows of every word of ``m``'s chunks, or, when ``m``
        holds the rows as they were after its job of the previous (complete, first-round)
        step, only what the other workers changed in them since.
        """
        st = self._state
        K = st.num_topics
        if m.rows is None:
            words = [st.chunks[i].words for i in sorted(m.chunks)]
            m.rows = np.unique(np.concatenate(words)).astype(np.int32) if words else np.zeros(0, np.int32)
            m.rowmap = np.zeros(st.num_terms, np.bool_)
            m.rowmap[m.rows] = True
        model = None
        if (m.view_job is not None and not m.load and not m.drop and self._clean
                and m.name in self._committed):
            td = time.perf_counter()
            model = self._delta(m)
            stats["delta_s"] = stats.get("delta_s", 0.0) + time.perf_counter() - td
        if model is None:
            model = {"rows": _wire.enc(m.rows), "dense": _wire.enc(self._counts()[m.rows])}
        elif self.check:
            model["check"] = _wire.enc(self._counts()[m.rows])
        load = [[i, _wire.enc(st.chunks[i].words), _wire.enc(st.chunks[i].doc_ptr),
                 _wire.enc_topics(st.chunks[i].topics, K)] for i in m.load]
        drop = list(m.drop)
        m.load, m.drop = [], []
        nk = _wire.enc(st.nk)
        sd = _wire.enc(seeds[list(idxs)].astype(np.uint32))
        blocks = None
        if blk is not None:  # (cuts, group of each chunk, step): group g does block (g+step)%P
            cuts, group, step = blk
            P = cuts.shape[0] - 1
            blocks = {"cuts": _wire.enc(cuts), "of": [int((group[i] + step) % P) for i in idxs]}
        # Other workers hold rows: the result must say how this job changed them.
        peers = any(w is not m and w.chunks for w in self._members_in_session())
        job = uuid.uuid4().hex
        stats["bytes_down"] += _payload_bytes(model, nk, sd) - _payload_bytes(model.get("check"))
        stats["bytes_load"] += _payload_bytes(load)
        alpha = _wire.enc(st.alpha)
        stats["bytes_down"] += _payload_bytes(alpha)
        f = self._pool.submit(self._task, m, session, job, drop, load, list(idxs), model, nk, sd,
                              alpha, blocks, peers, self._ranges(idxs, blk))
        inflight[f] = (m, list(idxs), job)

    def _ranges(self, idxs, blk) -> list:
        """Per chunk of a job, the token ranges it resamples (``lo``, ``hi``: one pair a
        document): its block's (cached per chunk while the cuts stay), or all its tokens."""
        st = self._state
        if blk is None:
            return [(st.chunks[i].doc_ptr[:-1], st.chunks[i].doc_ptr[1:]) for i in idxs]
        cuts, group, step = blk
        P = cuts.shape[0] - 1
        key = cuts.tobytes()
        if self._bounds_key != key:
            self._bounds, self._bounds_key = {}, key
        out = []
        for i in idxs:
            bp = self._bounds.get(i)
            if bp is None:
                c = st.chunks[i]
                bp = self._bounds[i] = K_.block_bounds(c.words, c.doc_ptr, cuts)
            b = int((group[i] + step) % P)
            out.append((bp[b], bp[b + 1]))
        return out

    def _delta(self, m: _Member) -> dict | None:
        """What the other workers committed last step on ``m``'s rows, as they sent it:
        changed rows or moves (:meth:`LdaWorker.sweep`). Added to the rows ``m`` holds (the
        rows it was sent plus its own moves) they give exactly the current counts. None when
        the dense rows would be smaller. The parts were filtered for ``m`` at commit
        (:meth:`_commit`), so this only lists them.
        """
        st = self._state
        parts = self._inbox.get(m.name, [])
        if _payload_bytes(parts) >= m.rows.shape[0] * st.num_topics * 4:
            return None
        return {"base": m.view_job, "parts": list(parts)}

    def _task(self, m, session, job, drop, load, idxs, model, nk, seeds, alpha, blocks, peers,
              ranges):
        """One worker job: hand over chunks, start the sweep, poll until it is done, then
        read the result (:meth:`_prepare`)."""
        t_sent = time.perf_counter()
        if m.proxy is None:
            m.proxy = _wire.proxy(m.uri, self.timeout)
        w = m.proxy
        w._pyroClaimOwnership()
        w._pyroTimeout = self.timeout
        try:
            if drop:
                w.drop(session, drop)
            batch, size = [], 0
            for item in load:  # stay far below Pyro5's 1 GiB message limit
                batch.append(item)
                size += _wire.nbytes(item)
                if size >= self.LOAD_BATCH:
                    w.load(session, batch)
                    batch, size = [], 0
            if batch:
                w.load(session, batch)
            w.sweep(session, job, idxs, model, nk, seeds, alpha, blocks, peers)
            w._pyroTimeout = self.poll + self.timeout
            while True:
                r = w.result(session, job, self.poll)
                if r is not None:
                    break
        except BaseException:
            m.proxy = None
            w._pyroRelease()
            raise
        t0 = time.perf_counter()
        r["prep"] = self._prepare(m, idxs, r, ranges, peers)
        r["received_s"] = t0 - t_sent
        r["read_s"] = time.perf_counter() - t0
        return r

    def _prepare(self, m: _Member, idxs, r, ranges, peers) -> dict:
        """Validate a job's result and read the change of the topic totals, changing nothing.

        A result (:meth:`LdaWorker._report`) comes in one of two forms, read by
        :meth:`_prepare_rows` and :meth:`_prepare_moves`. Runs in the job's own thread as soon
        as the result arrives (the kernels release the GIL), so the results of workers that
        finish together are read in parallel. It only reads the job's chunks, which nothing else
        writes while the job is out: the commit (:meth:`_commit`, under the lock, where the
        counts are also read) writes the topics. Returns what the commit needs: ``parts``
        (per chunk: index, token ranges and what to write), ``nk`` (the change of the topic
        totals), ``fwd`` (for the other workers; None without them), ``moved`` and ``bytes``.
        Raises ValueError if the result is malformed.
        """
        bad = f"malformed result from worker {m.name}"
        prepare = self._prepare_moves if "mask" in r else self._prepare_rows
        return prepare(r, idxs, ranges, peers, bad)

    def _prepare_rows(self, r, idxs, ranges, peers, bad) -> dict:
        """The changed-rows form: per chunk the new topics of its resampled tokens (one range
        after the other) and, with other workers, the rows the job changed; the topic totals
        those imply must equal what the topics imply."""
        st = self._state
        K, V = st.num_topics, st.num_terms
        tops = r["topics"]
        if len(tops) != len(idxs):
            raise ValueError(f"{bad}: {len(tops)} topic arrays for {len(idxs)} chunks")
        parts = []
        for i, t, (lo, hi) in zip(idxs, tops, ranges):
            new = _wire.dec(t)
            if new.ndim != 1 or new.shape[0] != int((hi - lo).sum()):
                raise ValueError(f"chunk {i}: {bad} (wrong number of topics)")
            parts.append((i, lo, hi, new))

        def change(part):
            i, lo, hi, new = part
            dnk = np.zeros_like(st.nk)
            return i, _topic_change(st.chunks[i].topics, lo, hi, new, dnk, K), dnk

        nk = np.zeros_like(st.nk)
        moved = 0
        for i, k, dnk in self._halves(change, parts):
            if k < 0:
                raise ValueError(f"chunk {i}: {bad} (topic out of range)")
            moved += k
            nk += dnk
        fwd = r.get("delta") if peers else None
        if peers:
            if fwd is None:
                raise ValueError(f"{bad}: it does not say how its rows changed")
            dk = np.zeros(K, np.int64)
            for p in fwd:
                words, d = _wire.dec(p["words"]), _wire.dec(p["delta"])
                if words.ndim != 1 or (words.size and (words.min() < 0 or words.max() >= V)):
                    raise ValueError(f"{bad}: word ids out of range")
                if d.shape != (words.shape[0], K) or d.dtype.kind != "i":
                    raise ValueError(f"{bad}: row changes of shape {d.shape}")
                if not _row_totals(d, dk):
                    raise ValueError(f"{bad}: row changes alter row totals")
            if not np.array_equal(dk, nk):
                raise ValueError(f"{bad}: its row changes disagree with its topics")
        return {"parts": parts, "nk": nk, "fwd": fwd, "moved": moved,
                "bytes": _payload_bytes(tops, fwd)}

    def _prepare_moves(self, r, idxs, ranges, peers, bad) -> dict:
        """The moves form: per chunk a bit a resampled token and the moved tokens' topics;
        the moves' words and old topics come from this copy, for the other workers."""
        st = self._state
        K = st.num_topics
        masks, news = r["mask"], [_wire.dec(t) for t in r["new"]]
        if len(masks) != len(idxs) or len(news) != len(idxs):
            raise ValueError(f"{bad}: {len(masks)} masks for {len(idxs)} chunks")
        total = sum(t.shape[0] for t in news)
        tdt = _wire.topic_dtype(K)
        words, old, new_all = np.empty(total, self._wdt), np.empty(total, tdt), np.empty(total, tdt)
        parts = []
        nk = np.zeros_like(st.nk)
        moved = 0
        for i, p, new, (lo, hi) in zip(idxs, masks, news, ranges):
            packed = _wire.dec(p)
            if (packed.dtype != np.uint8 or new.ndim != 1
                    or packed.shape[0] != (int((hi - lo).sum()) + 7) // 8):
                raise ValueError(f"chunk {i}: {bad}")
            c = st.chunks[i]
            k = _read_moves(packed, new, c.words, c.topics, lo, hi, nk, words[moved:],
                            old[moved:], K)
            if k < 0:
                raise ValueError(f"chunk {i}: {bad}")
            new_all[moved:moved + k] = new
            moved += k
            parts.append((i, lo, hi, packed, new))
        fwd = ([{"words": _wire.enc(words), "old": _wire.enc(old), "new": _wire.enc(new_all)}]
               if peers else None)
        return {"parts": parts, "nk": nk, "fwd": fwd, "moved": moved,
                "bytes": _payload_bytes(r["mask"], r["new"])}

    def _halves(self, fn, items: list) -> list:
        """``[fn(x) for x in items]``, the second half in another thread: the kernels release
        the GIL, and a result is read and committed while both workers wait for it."""
        half = len(items) // 2
        if half == 0:
            return [fn(x) for x in items]
        other = self._helpers.submit(lambda: [fn(x) for x in items[half:]])
        return [fn(x) for x in items[:half]] + other.result()

    def _commit(self, m: _Member, idxs, prep, job, remaining, inbox) -> int:
        """Commit a job's result read by :meth:`_prepare`: write the resampled tokens' topics,
        move the topic totals with them and forward the row changes. The word-topic counts, a
        function of the topics, are recounted when read (:meth:`_counts`). Returns the bytes
        the result took on the wire.
        """
        st = self._state

        def write(part):
            i, lo, hi, *result = part
            if len(result) == 2:  # the moves form: (bits, moved topics)
                _apply_moves(*result, st.chunks[i].topics, lo, hi)
            else:
                K_.scatter_ranges(st.chunks[i].topics, lo, hi, result[0])

        self._halves(write, prep["parts"])
        remaining.difference_update(p[0] for p in prep["parts"])
        st.nk += prep["nk"]
        if prep["moved"]:
            self._nwk_stale = True
        # Forward: each other worker gets the changes on its own words, with its next job.
        for w in self._members_in_session():
            if w is m or w.rowmap is None:
                continue
            if prep["fwd"] is None:  # it did not say (no peers when sent): dense rows next
                w.view_job = None
                continue
            box = inbox.setdefault(w.name, [])
            if w.rows.shape[0] >= 0.9 * st.num_terms:  # holds (nearly) every row: as sent
                box.extend(prep["fwd"])
                continue
            for p in prep["fwd"]:
                keep = w.rowmap[_wire.dec(p["words"])]
                box.append({k: _wire.enc(_wire.dec(v)[keep]) for k, v in p.items()})
        m.view_job = job
        return prep["bytes"]

    def _counts(self) -> np.ndarray:
        """The exact word-topic counts of the committed topics (recounted if stale).

        During a training the dispatcher does not update them move by move (that random
        access would cost as much CPU as a good part of a worker's sweep).
        """
        st = self._state
        if self._nwk_stale:
            st.nwk[:] = 0
            nk = np.zeros_like(st.nk)
            for c in st.chunks:
                K_.count_assignments(c.words, c.topics, st.nwk, nk, 1)
            if not np.array_equal(nk, st.nk):  # nk moved move by move: they must agree
                raise RuntimeError("internal error: topic totals differ from the assignments")
            self._nwk_stale = False
        return st.nwk

    def _cuts(self, P: int) -> np.ndarray:
        """Word ids splitting the vocabulary into ``P`` blocks of about equal token mass."""
        cum = np.cumsum(self._freq)
        inner = np.searchsorted(cum, cum[-1] * np.arange(1, P) / P, side="right")
        return np.concatenate([[0], inner, [self._state.num_terms]]).astype(np.int32)

    def _sweep(self, session, seeds) -> dict:
        """One sweep: every token resampled once, in ``P`` steps on ``P`` workers.

        With the sparse sampler the vocabulary is cut into ``P`` blocks of equal token mass
        and each worker's chunks form a group; in step ``s`` group ``g`` resamples its tokens
        of block ``(g + s) % P``. Each word's rows then have one writer per step (and are up
        to date at its start), so the chain mixes like a serial one; only the topic totals
        lag within a step. The MH sampler's phases need whole documents: one step, AD-LDA.
        """
        t0 = time.perf_counter()
        c0 = time.process_time()
        self._refresh(self.discover_every)
        self._join()
        with self._lock:
            self._check(session)
            none = not self._members_in_session()
        if none:
            self._wait_for_workers()
        st = self._state
        ps = dict(bytes_down=0, bytes_up=0, bytes_load=0, lost=0, redispatched=0,
                  prepare_s=0.0, commit_s=0.0, worker_s=0.0, worker_cpu_s=0.0, steps=0)
        with self._lock:
            self._plan()
            groups = sorted((m for m in self._members_in_session() if m.chunks),
                            key=lambda m: m.name)
            used = len(groups)
            blocks = None
            if self._config["sampler"] == "sparse" and used > 1:
                group = np.empty(len(st.chunks), np.int64)
                for g, m in enumerate(groups):
                    group[list(m.chunks)] = g
                blocks = (self._cuts(used), group)
        for step in range(used if blocks is not None else 1):
            self._step(session, seeds, step, blocks, ps)
            ps["steps"] += 1
        dt = time.perf_counter() - t0
        with self._lock:
            s = self._stats
            s["sweeps"] += 1
            s["tokens"] = st.num_tokens
            s["seconds"] += dt
            for k in ("bytes_down", "bytes_up"):
                s[k] += ps[k]
            s["bytes_load"] += ps["bytes_load"]
            rec = dict(ps, sweep=s["sweeps"], seconds=dt, workers=used,
                       dispatcher_cpu_s=time.process_time() - c0,
                       tokens_per_s=st.num_tokens / max(dt, 1e-9))
            s["per_sweep"].append(rec)
            del s["per_sweep"][:-200]
        logger.info("sweep %d: %d tokens on %d workers in %d steps, %.3f s, %.2f bytes/token "
                    "(%d lost, %d chunks re-dispatched)", rec["sweep"], st.num_tokens, used,
                    ps["steps"], dt, (ps["bytes_down"] + ps["bytes_up"]) / max(st.num_tokens, 1),
                    ps["lost"], ps["redispatched"])
        return rec

    def _step(self, session, seeds, step, blocks, ps) -> None:
        """Resample each chunk's tokens of its block for this step (all tokens when ``blocks``
        is None), re-dispatching the chunks of lost workers, until every chunk is committed."""
        st = self._state
        inflight: dict = {}
        seeds = ((seeds.astype(np.uint64) + np.uint64(step) * np.uint64(0x9E3779B9))
                 % np.uint64(2 ** 32)).astype(np.uint32)
        blk = None if blocks is None else (blocks[0], blocks[1], step)
        t1 = time.perf_counter()
        with self._lock:
            remaining = set(range(len(st.chunks)))
            for m in self._members_in_session():
                if m.chunks:
                    self._submit(m, sorted(m.chunks), seeds, session, inflight, ps, blk)
                else:
                    m.view_job = None
            clean = True   # every chunk swept once, by first-round jobs from one snapshot
            inbox: dict = {}
        ps["prepare_s"] += time.perf_counter() - t1
        step_max = 0.0  # the slowest job of the step
        while remaining:
            with self._lock:
                if session != self._session:
                    raise RuntimeError("session ended during a sweep")
                orphans = sorted(i for i in remaining if i not in self._owner)
                busy = {v[0].name for v in inflight.values()}
                idle = [m for m in self._members_in_session() if m.name not in busy]
                if orphans and idle:
                    # Re-dispatch: whole orphaned chunks to idle survivors, swept this step
                    # (each still on its own group's block).
                    size = {m.name: 0 for m in idle}
                    parts = {m.name: [] for m in idle}
                    for i in sorted(orphans, key=lambda i: -st.chunks[i].num_tokens):
                        n = min(size, key=size.get)
                        parts[n].append(i)
                        size[n] += st.chunks[i].num_tokens
                    clean = False
                    for m in idle:
                        if parts[m.name]:
                            m.chunks |= set(parts[m.name])
                            m.load = sorted(set(m.load) | set(parts[m.name]))
                            m.changed()
                            for i in parts[m.name]:
                                self._owner[i] = m
                            self._submit(m, sorted(parts[m.name]), seeds, session, inflight,
                                         ps, blk)
                    ps["redispatched"] += len(orphans)
                    self._stats["redispatched_chunks"] += len(orphans)
                    logger.info("re-dispatched %d chunks to %d workers", len(orphans),
                                sum(1 for m in idle if parts[m.name]))
                    continue
            if not inflight:
                if orphans:
                    self._wait_for_workers()
                    self._join()
                    continue
                raise RuntimeError(f"internal error: chunks {sorted(remaining)[:5]} not swept")
            done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
            for f in done:
                m, idxs, job = inflight.pop(f)
                try:
                    r = f.result()
                except (ValueError, KeyError, TypeError) as e:  # a malformed result
                    ps["lost"] += 1
                    self._lose(m, f"bad result: {e}", unregister=False)
                    continue
                except Exception as e:
                    ps["lost"] += 1
                    why = f"{type(e).__name__}: {e}"
                    # a closed socket or no answer: gone; a remote error: reset it and go on
                    self._lose(m, why, unregister=isinstance(e, Pyro5.errors.CommunicationError))
                    if ps["lost"] > self.MAX_FAILURES_PER_SWEEP:
                        raise RuntimeError(f"{ps['lost']} worker failures in one sweep; "
                                           f"the last: {why}") from None
                    continue
                t1 = time.perf_counter()
                with self._lock:
                    if self._members.get(m.name) is not m or session != self._session:
                        continue
                    ps["bytes_up"] += self._commit(m, idxs, r["prep"], job, remaining, inbox)
                ps["commit_s"] += time.perf_counter() - t1
                step_max = max(step_max, r["seconds"])
                ps["worker_cpu_s"] += r.get("cpu_seconds", 0.0)
                # Where a job's time went (seconds): sampling, the worker's whole job, its
                # update of the rows and packing of the result, the result back here since the
                # job was sent, reading and writing it here.
                ps.setdefault("jobs", []).append(dict(
                    worker=m.name, step=step, tokens=r["tokens"], sample=r["seconds"],
                    job=r.get("job_seconds"), update=r.get("update_seconds"),
                    pack=r.get("pack_seconds"), received=r["received_s"], read=r["read_s"],
                    moved=r["prep"]["moved"], form="moves" if "mask" in r else "rows"))
        ps["worker_s"] += step_max
        with self._lock:
            self._clean, self._inbox = clean, inbox
            self._committed = {m.name for m in self._members.values() if m.view_job}
            if not clean:
                for m in self._members.values():
                    m.view_job = None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distlda.models.lda_dispatcher",
                                description="Start the distlda dispatcher (one per cluster).")
    add_common_args(p)
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds without an answer after which a worker is declared dead "
                        "(default 30)")
    p.add_argument("--worker-wait", type=float, default=None,
                   help="seconds a sweep waits for a worker when none is left (default: --timeout)")
    args = p.parse_args(argv)
    setup_logging(args)
    _wire.configure()
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        with _wire.locate_ns(args.ns_host, args.ns_port, timeout=2.0) as ns:
            try:
                old = ns.lookup(NAME)
            except Pyro5.errors.NamingError:
                old = None
        if old is not None:
            try:
                with _wire.proxy(old, 2.0) as d:
                    d.ping()
                logger.error("a dispatcher is already running at %s", old)
                return 1
            except Pyro5.errors.CommunicationError:
                pass  # a stale registration: replace it
    except Pyro5.errors.PyroError as e:
        logger.error("cannot reach the name server at %s: %s",
                     _wire.ns_address(args.ns_host, args.ns_port), e)
        return 1
    disp = LdaDispatcher(args.ns_host, args.ns_port, timeout=args.timeout,
                         worker_wait=args.worker_wait)
    logger.info("dispatcher worker timeout %.0f s", args.timeout)
    return serve_forever(disp, NAME, args, META)

if __name__ == "__main__":
    sys.exit(main())
