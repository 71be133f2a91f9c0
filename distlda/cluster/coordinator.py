"""One training session on the cluster: a sweep as P synchronous steps on vocabulary blocks.

Consistency model: the model-slice rotation of LightLDA and of Yan et al.'s partitioned
sampler. With ``P`` workers each sweep is ``P`` steps: the vocabulary is cut into ``P``
blocks of equal token mass (word id ranges; the client sorts each document's tokens by word
id, so a block is one run of tokens per document) and in step ``s`` the worker of chunk group
``g`` resamples its tokens of block ``(g + s) % P`` (:class:`distlda.cluster.plan.
BlockSchedule`). Every word's rows have exactly one writer in a step and are up to date when
it starts (the worker has applied the changes the others committed in the step before), so
the chain mixes per sweep like a serial one; only the K topic totals lag within a step. Plain
AD-LDA (Newman et al. 2009: all tokens on a snapshot, merged per sweep) ran 20% slower per
sweep here early in training and lagged the serial chain by 0.45 nats/token at sweep 8. The
MH sampler needs whole documents for its phases, so it runs one AD-LDA step a sweep. Each
result is read, checked and committed by the :class:`~distlda.cluster.ledger.Ledger`, which
forwards the row changes to the other workers with their next jobs. The next step starts when
every chunk has been committed once.

Failure: a worker that stops answering (socket closed, or no answer within ``timeout``
seconds to a poll that returns every second while it computes) is dropped, its registration
removed, and its chunks still to be swept are sent, with their committed topics, to a surviving
worker and swept again in the same step, on their own block (until the next sweep re-plans,
those chunks share a block with another worker's: AD-LDA staleness for the rest of the sweep,
never an accounting error). Its partial work is never committed, so nothing is lost or
counted twice. Workers are discovered in the background (:mod:`distlda.cluster.roster`); a
new one gets whole chunks moved to it at the next sweep.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time

import numpy as np

from distlda.cluster import codec, plan, transport
from distlda.cluster.ledger import Ledger
from distlda.cluster.membership import Member
from distlda.cluster.messages import (
    ChunkLoad,
    DenseSlice,
    Job,
    ProtocolError,
    SessionConfig,
    SliceDelta,
    result_from_wire,
)
from distlda.cluster.roster import Roster
from distlda.cluster.telemetry import Telemetry
from distlda.gibbs import sampling

logger = logging.getLogger("distlda.dispatcher")

class Coordinator:
    """The sweeps of one session (see the module docstring), on the members of ``roster``."""

    #: Bytes of chunks per load message to a worker.
    LOAD_BATCH = 64 << 20
    #: Worker failures tolerated within one sweep before the sweep fails.
    MAX_FAILURES_PER_SWEEP = 20

    def __init__(self, session: str, config: SessionConfig, roster: Roster, pool: cf.Executor,
                 helpers: cf.Executor, poll: float, worker_wait: float, check: bool):
        self.session = session  # the client's capability: never sent to a worker
        #: The workers' capability for this session: only this dispatcher and the workers it
        #: joins know it (a client's session id lets it steer nothing on a worker).
        self.key = transport.new_id()
        self.config = config
        self.roster = roster
        self.lock = roster.lock
        self.ledger = Ledger(config, helpers)
        self.owner: dict[int, Member] = {}
        self.pool = pool
        self.poll = poll
        self.worker_wait = worker_wait
        self.check = check
        self.telemetry = Telemetry(roster.lost)
        self.ended = False
        self.started = time.time()
        self.number = 0  # the dispatcher's count of trainings, for logs

    @property
    def members(self) -> list[Member]:
        return self.roster.membership.in_session(self.key)

    def load(self, chunks: list) -> int:
        # views of the message: the ledger copies them into its narrow dtypes
        msgs = [ChunkLoad.from_wire(c, self.config) for c in chunks]
        n = self.ledger.load(msgs)
        self.telemetry.loaded(sum(codec.nbytes(c) for c in chunks))
        return n

    def set_alpha(self, alpha: np.ndarray) -> None:
        self.ledger.state.alpha = alpha

    # ------------------------------------------------------------ a sweep
    def sweep(self, seeds: np.ndarray) -> dict:
        """One sweep: every token resampled once, in ``P`` steps on ``P`` workers."""
        t0, c0 = time.perf_counter(), time.process_time()
        self.roster.join(self.key, self.config)
        if not self.members:
            self._wait_for_workers()
        rec = self.telemetry.new_sweep()
        with self.lock:
            self._plan()
            groups = sorted((m for m in self.members if m.chunks), key=lambda m: m.name)
            schedule = None
            if self.config.sampler in sampling.EXACT and len(groups) > 1:
                group = np.empty(self.ledger.num_chunks, np.int64)
                for g, m in enumerate(groups):
                    group[list(m.chunks)] = g
                schedule = plan.BlockSchedule(self.ledger.freq, group, len(groups))
        for step in range(len(groups) if schedule is not None else 1):
            self._step(seeds, step, schedule, rec)
        with self.lock:
            return self.telemetry.end_sweep(rec, time.perf_counter() - t0,
                                            time.process_time() - c0, len(groups),
                                            self.ledger.state.num_tokens)

    def _forget_lost(self) -> None:
        """Chunks whose owner was lost have no owner (they are orphans until re-planned)."""
        ms = self.roster.membership
        for i in [i for i, m in self.owner.items() if ms.get(m.name) is not m]:
            del self.owner[i]

    def _plan(self) -> None:
        """Give unowned chunks to the least-loaded workers; rebalance after membership changes."""
        self._forget_lost()
        members = self.members
        ms = self.roster.membership
        target = plan.assign(self.ledger.sizes(), {m.name: m.chunks for m in members},
                             set(self.owner), ms.changed)
        ms.changed = False
        for m in members:
            m.take(target[m.name])
            for i in target[m.name]:
                self.owner[i] = m

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + self.worker_wait
        while True:
            self.roster.join(self.key, self.config)
            if self.members:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no workers: none registered with the name server at "
                                   f"{transport.ns_address(self.roster.ns_host, self.roster.ns_port)}"
                                   f" answered within {self.worker_wait:.0f} s")
            time.sleep(0.1)

    def _step(self, seeds, step, schedule, rec) -> None:
        """Resample each chunk's tokens of its block for this step (all tokens without a
        schedule), re-dispatching the chunks of lost workers, until every chunk is committed."""
        inflight: dict = {}
        seeds = sampling.step_seeds(seeds, step)
        t1 = time.perf_counter()
        with self.lock:
            remaining = set(range(self.ledger.num_chunks))
            for m in self.members:
                if m.chunks:
                    self._submit(m, sorted(m.chunks), seeds, step, schedule, inflight, rec)
                else:
                    m.view = None
        rec["prepare_s"] += time.perf_counter() - t1
        clean = True   # every chunk swept once, by first-round jobs from one snapshot
        step_max = 0.0  # the slowest job of the step
        while remaining:
            if self._redispatch(remaining, inflight, seeds, step, schedule, rec):
                clean = False
                continue
            if not inflight:
                with self.lock:
                    self._forget_lost()
                    orphans = any(i not in self.owner for i in remaining)
                if orphans:
                    self._wait_for_workers()
                    continue
                raise RuntimeError(f"internal error: chunks {sorted(remaining)[:5]} not swept")
            done, _ = cf.wait(list(inflight), timeout=0.25, return_when=cf.FIRST_COMPLETED)
            if not done:
                self._abandon_lost(inflight, rec)
                continue
            for f in done:
                m, idxs, job = inflight.pop(f)
                r = self._outcome(f, m, rec)
                if r is None:
                    continue
                t1 = time.perf_counter()
                with self.lock:
                    if self.roster.membership.get(m.name) is not m or self.ended:
                        continue
                    reading = r["reading"]
                    self.ledger.commit(reading)
                    remaining.difference_update(p[0] for p in reading.parts)
                    self.ledger.forward(reading, m, self.members)
                    m.view = job
                rec["bytes_up"] += reading.bytes
                rec["commit_s"] += time.perf_counter() - t1
                step_max = max(step_max, r["result"].timings.get("seconds", 0.0))
                self.telemetry.job(rec, m.name, step, r)
        rec["worker_s"] += step_max
        rec["steps"] += 1
        with self.lock:
            self.ledger.end_step()
            if not clean:
                self.roster.membership.invalidate_views()

    def _redispatch(self, remaining, inflight, seeds, step, schedule, rec) -> bool:
        """Send orphaned chunks (their worker was lost), whole, to idle survivors; True if any."""
        with self.lock:
            if self.ended:
                raise RuntimeError("session ended during a sweep")
            self._forget_lost()
            orphans = sorted(i for i in remaining if i not in self.owner)
            busy = {v[0].name for v in inflight.values()}
            idle = [m for m in self.members if m.name not in busy]
            if not (orphans and idle):
                return False
            parts = plan.split_orphans(orphans, [m.name for m in idle], self.ledger.sizes())
            for m in idle:
                if m.name in parts:
                    m.take(m.chunks | set(parts[m.name]))
                    for i in parts[m.name]:
                        self.owner[i] = m
                    self._submit(m, parts[m.name], seeds, step, schedule, inflight, rec)
            rec["redispatched"] += len(orphans)
            self.telemetry.totals["redispatched_chunks"] += len(orphans)
        logger.info("re-dispatched %d chunks to %d workers", len(orphans), len(parts))
        return True

    def _abandon_lost(self, inflight: dict, rec: dict) -> None:
        """Jobs of members the roster dropped meanwhile (a failed heartbeat: a frozen process,
        a cut link) are given up at once, so their chunks are re-swept now instead of after
        the job's own reply deadline; what such a job returns later is ignored."""
        with self.lock:
            gone = [f for f, (m, _, _) in inflight.items()
                    if self.roster.membership.get(m.name) is not m]
        for f in gone:
            m, idxs, _ = inflight.pop(f)
            rec["lost"] += 1
            logger.info("gave up the job of lost worker %s (%d chunks)", m.name, len(idxs))

    def _outcome(self, f, m: Member, rec):
        """A finished job's result, or None when the worker failed (then it is dropped)."""
        try:
            return f.result()
        except (ValueError, KeyError, TypeError) as e:  # a malformed result
            rec["lost"] += 1
            self.roster.lose(m, f"bad result: {e}", unregister=False)
        except Exception as e:
            rec["lost"] += 1
            why = f"{type(e).__name__}: {e}"
            # a closed socket or no answer: gone; a remote error: reset it and go on
            self.roster.lose(m, why, unregister=isinstance(e, transport.CommunicationError))
            if rec["lost"] > self.MAX_FAILURES_PER_SWEEP:
                raise RuntimeError(f"{rec['lost']} worker failures in one sweep; "
                                   f"the last: {why}") from None
        return None

    def _submit(self, m: Member, idxs, seeds, step, schedule, inflight, rec) -> None:
        """Build member ``m``'s job for chunks ``idxs`` from the current counts and start it.

        The model slice is the dense rows of every word of ``m``'s chunks, or, when ``m``
        holds the rows as they were after its committed job of the previous clean step
        (``m.view``), only what the other workers changed in them since.
        """
        st = self.ledger.state
        m.ensure_rows(lambda i: st.chunks[i].words, st.num_terms)
        parts = None
        if m.view is not None and not m.load and not m.drop:
            td = time.perf_counter()
            parts = self.ledger.delta_for(m, m.rows.shape[0] * st.num_topics * 4)
            rec["delta_s"] = rec.get("delta_s", 0.0) + time.perf_counter() - td
        check = None
        if parts is None:
            model = DenseSlice(m.rows, self.ledger.counts()[m.rows])
        else:
            model = SliceDelta(m.view, parts)
            if self.check:
                check = self.ledger.counts()[m.rows]
        load, drop = m.handover()
        load = [ChunkLoad(i, st.chunks[i].words, st.chunks[i].doc_ptr,
                          st.chunks[i].topics).to_wire(st.num_topics) for i in load]
        blocks = None
        if schedule is not None:
            blocks = (schedule.cuts, [schedule.block(i, step) for i in idxs])
        # Other workers hold rows: the result must say how this job changed them.
        peers = any(w is not m and w.chunks for w in self.members)
        job = Job(transport.new_id(), list(idxs), model, st.nk.copy(),
                  seeds[list(idxs)].astype(np.uint32), st.alpha, blocks, peers, check).to_wire()
        rec["bytes_down"] += codec.nbytes(job) - codec.nbytes(job["model"].get("check"))
        rec["bytes_load"] += codec.nbytes(load)
        ranges = self.ledger.ranges(idxs, schedule, step)
        f = self.pool.submit(self._task, m, job, drop, load, list(idxs), ranges, peers)
        inflight[f] = (m, list(idxs), job["job"])

    def _task(self, m: Member, job: dict, drop, load, idxs, ranges, peers) -> dict:
        """One worker job: hand over chunks, start the sweep, poll until it is done, then
        read the result (:meth:`Ledger.read`)."""
        t_sent = time.perf_counter()
        timeout = self.roster.timeout
        if m.proxy is None:
            m.proxy = transport.proxy(m.uri, timeout)
        w = m.proxy
        transport.claim(w, timeout)

        def put(sid, off, total, piece):
            w.put(self.key, sid, off, total, piece)

        try:
            if drop:
                w.drop(self.key, drop)
            for batch in _batches(load, self.LOAD_BATCH):  # far below Pyro5's message limit
                batch, blobs = codec.stage_out(batch)
                codec.send_pieces(put, blobs)
                w.load(self.key, batch)
            job, blobs = codec.stage_out(job)  # a big model slice goes in pieces
            codec.send_pieces(put, blobs)
            w.sweep(self.key, job)
            # A poll returns within ``poll`` s while the job runs: no answer within ``timeout``
            # (a frozen process, a cut link) declares the worker lost.
            transport.set_timeout(w, max(timeout, self.poll + 1.0))
            raw = transport.poll(lambda: job["job"],
                                 lambda j, t: w.result(self.key, j, t), self.poll)
            raw = codec.stage_in(raw, codec.pull(lambda sid, off, n: w.piece(self.key, sid,
                                                                                off, n)))
            m.seen = time.monotonic()
        except BaseException:
            m.proxy = None
            transport.release(w)
            raise
        t0 = time.perf_counter()
        result = result_from_wire(raw, self.config, len(idxs))
        reading = self.ledger.read(result, idxs, ranges, peers, m.name)
        return {"result": result, "reading": reading, "received_s": t0 - t_sent,
                "read_s": time.perf_counter() - t0}


def _batches(items: list, limit: int):
    """``items`` in consecutive lists of about ``limit`` payload bytes each."""
    batch, size = [], 0
    for item in items:
        batch.append(item)
        size += codec.nbytes(item)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


__all__ = ["Coordinator", "ProtocolError"]
