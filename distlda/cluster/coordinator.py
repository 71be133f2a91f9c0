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
every chunk has been committed once. The data stays on the workers: where each chunk (shard)
is held, and how a lost worker's come back, is :mod:`distlda.cluster.shard_session`'s.

Failure: a worker that stops answering (socket closed, or no answer within ``timeout``
seconds to a poll that returns every second while it computes) is dropped and its
registration removed; the step ends without its chunks (their topics died with it: they come
back from their checkpoints, or from the client, and the counts are recounted). Its partial
work is never committed, so nothing is lost or counted twice. Workers are discovered in the
background (:mod:`distlda.cluster.roster`); a new one gets whole chunks moved to it at the
next sweep. A malformed result
(:class:`ProtocolError`) or an error the worker raised drops the worker the same way; any
other error is this process's own and fails the sweep (:func:`failure_kind`), rather than
drop healthy workers one after another. What a step decides is pure state
(:class:`~distlda.cluster.step.Step`); this module waits on the jobs and carries it out.
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
from distlda.cluster.shard_session import ShardKeeper
from distlda.cluster.step import (
    Abandon,
    Begin,
    Commit,
    Drop,
    FailSweep,
    JobDone,
    JobFailed,
    Step,
    Submit,
    WorkerLost,
    WorkersJoined,
)
from distlda.cluster.telemetry import Telemetry
from distlda.gibbs import sampling

logger = logging.getLogger("distlda.dispatcher")

class Coordinator:
    """The sweeps of one session (see the module docstring), on the members of ``roster``."""

    #: Worker failures tolerated within one sweep before the sweep fails.
    MAX_FAILURES_PER_SWEEP = 20

    def __init__(self, session: str, config: SessionConfig, roster: Roster, pool: cf.Executor,
                 poll: float, worker_wait: float, check: bool):
        self.session = session  # the client's capability: never sent to a worker
        #: The workers' capability for this session: only this dispatcher and the workers it
        #: joins know it (a client's session id lets it steer nothing on a worker).
        self.key = transport.new_id()
        self.config = config
        self.roster = roster
        self.lock = roster.lock
        #: A shard set: the workers read their shards, the ledger keeps counts, no tokens.
        self.ledger = Ledger(config)
        self.shards = ShardKeeper(self)  # where the data is: the workers
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
        """A client's in-memory chunks, handed on to the workers (they stay nowhere here)."""
        return self.shards.receive([ChunkLoad.from_wire(c, self.config) for c in chunks])

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
        if not self.shards.inline:
            self.shards.checkpoints.collect()
        self.shards.place()
        with self.lock:
            groups = sorted((m for m in self.members if m.chunks), key=lambda m: m.name)
            schedule = None
            if self.config.sampler in sampling.EXACT and len(groups) > 1:
                group = np.empty(self.ledger.num_chunks, np.int64)
                for g, m in enumerate(groups):
                    group[list(m.chunks)] = g
                schedule = plan.BlockSchedule(self.ledger.freq, group, len(groups))
        for step in range(len(groups) if schedule is not None else 1):
            self._step(seeds, step, schedule, rec)
        self.shards.checkpoints.after_sweep()
        with self.lock:
            out = self.telemetry.end_sweep(rec, time.perf_counter() - t0,
                                           time.process_time() - c0, len(groups),
                                           self.ledger.num_tokens)
        if self.shards.inline:
            self.shards.place(rebalance=False)
            out["need"] = sorted(self.shards.need)  # chunks lost with a worker: the client's
        return out

    def _forget_lost(self) -> None:
        """Chunks whose owner was lost have no owner (they are orphans until re-planned)."""
        ms = self.roster.membership
        for i in [i for i, m in self.owner.items() if ms.get(m.name) is not m]:
            del self.owner[i]

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
        schedule), re-dispatching the chunks of lost workers, until every chunk is committed
        (:class:`~distlda.cluster.step.Step` decides, :class:`_StepShell` carries it out)."""
        _StepShell(self, sampling.step_seeds(seeds, step), step, schedule, rec).run()

    def _submit(self, m: Member, idxs, seeds, step, schedule, rec) -> tuple[cf.Future, str]:
        """Build member ``m``'s job for chunks ``idxs`` from the current counts and start it;
        returns its future and the job's id.

        The model slice is the dense rows of every word of ``m``'s chunks, or, when ``m``
        holds the rows as they were after its committed job of the previous clean step
        (``m.view``), only what the other workers changed in them since.
        """
        st = self.ledger.state
        rows = m.ensure_rows(self.ledger.chunk_words, st.num_terms)
        view, parts = m.view, None
        if view is not None:
            td = time.perf_counter()
            parts = self.ledger.delta_for(m, rows.shape[0] * st.num_topics * 4)
            rec["delta_s"] = rec.get("delta_s", 0.0) + time.perf_counter() - td
        check = None
        model: DenseSlice | SliceDelta
        if view is None or parts is None:
            model = DenseSlice(rows, self.ledger.counts()[rows])
        else:
            model = SliceDelta(view, parts)
            if self.check:
                check = self.ledger.counts()[rows]
        blocks = None
        if schedule is not None:
            blocks = (schedule.cuts, [schedule.block(i, step) for i in idxs])
        # the result says how the job changed the rows (the ledger keeps counts, not topics)
        job = Job(transport.new_id(), list(idxs), model, st.nk.copy(),
                  seeds[list(idxs)].astype(np.uint32), st.alpha, blocks, True, check).to_wire()
        rec["bytes_down"] += codec.nbytes(job) - codec.nbytes(job["model"].get("check"))
        f = self.pool.submit(self._task, m, job, list(idxs))
        return f, job["job"]

    def _task(self, m: Member, job: dict, idxs) -> dict:
        """One worker job: start the sweep, poll until it is done, then read the result
        (:meth:`Ledger.read`)."""
        t_sent = time.perf_counter()
        timeout = self.roster.timeout
        if m.proxy is None:
            m.proxy = transport.proxy(m.uri, timeout)
        w = m.proxy
        transport.claim(w, timeout)

        def put(sid, off, total, piece):
            w.put(self.key, sid, off, total, piece)

        try:
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
        result = result_from_wire(raw, self.config)
        reading = self.ledger.read(result, idxs, m.name)
        return {"result": result, "reading": reading, "received_s": t0 - t_sent,
                "read_s": time.perf_counter() - t0}


def failure_kind(e: BaseException) -> str:
    """How a job's failure counts (:data:`distlda.cluster.step.FAILURE_KINDS`): a lost
    connection (a closed socket, no answer in time), an error the worker raised, a malformed
    result (read here: :class:`ProtocolError`), or else an internal error of this process."""
    if isinstance(e, transport.CommunicationError):
        return "lost"
    if transport.is_remote(e):
        return "failed"
    return "bad" if isinstance(e, ProtocolError) else "internal"


class _StepShell:
    """Carries out one :class:`~distlda.cluster.step.Step` for a :class:`Coordinator`: it
    starts the jobs, waits for them, tells the step what happened, and does what the step
    says: commits under the lock, drops and waits after it."""

    def __init__(self, co: Coordinator, seeds, step: int, schedule, rec: dict):
        self.co, self.seeds, self.step, self.schedule, self.rec = co, seeds, step, schedule, rec
        self.futures: dict[cf.Future, int] = {}        # -> the step's job number
        self.jobs: dict[int, tuple[Member, str]] = {}   # job number -> member, job id
        self.results: dict[int, dict] = {}
        self.handles: dict[str, Member] = {}            # the members the step knows, by name
        self.internal: BaseException | None = None
        self.step_max = 0.0  # the slowest job of the step

    def run(self) -> None:
        co, rec = self.co, self.rec
        t1 = time.perf_counter()
        with co.lock:
            co._forget_lost()
            members = co.members
            for m in members:
                if not m.chunks:
                    m.view = None
            self.handles = {m.name: m for m in members}
            self.st = Step({i: m.name for i, m in co.owner.items()}, list(self.handles),
                           co.ledger.sizes(), rec["lost"], co.MAX_FAILURES_PER_SWEEP)
            after = self._do(self.st.handle(Begin()))
        rec["prepare_s"] += time.perf_counter() - t1
        while True:
            self._after(after)
            if self.st.done:
                break
            events: list = []
            if self.futures:
                done, _ = cf.wait(list(self.futures), timeout=0.25,
                                  return_when=cf.FIRST_COMPLETED)
                events = [self._event(f) for f in done]
            with co.lock:
                if co.ended:
                    raise RuntimeError("session ended during a sweep")
                after = self._do(self.st.handle(*self._sync(), *events))
        rec["worker_s"] += self.step_max
        rec["steps"] += 1
        with co.lock:
            co.ledger.end_step()
            if not self.st.clean:
                co.roster.membership.invalidate_views()
        if self.st.lost:  # back from their checkpoints (or the client), recounted
            co.shards.restore(sorted(self.st.lost), rec)

    def _sync(self) -> list:
        """The membership's changes since the step last heard, as events (by identity: a
        worker that came back under its name is a new member)."""
        ms = self.co.roster.membership
        lost = [WorkerLost(n) for n in self.st.members if ms.get(n) is not self.handles[n]]
        joined = [m for m in self.co.members if self.handles.get(m.name) is not m]
        self.handles.update((m.name, m) for m in joined)
        return lost + ([WorkersJoined(tuple(m.name for m in joined))] if joined else [])

    def _event(self, f: cf.Future) -> JobDone | JobFailed:
        job = self.futures.pop(f)
        try:
            self.results[job] = f.result()
            return JobDone(job)
        except Exception as e:
            kind = failure_kind(e)
            if kind == "internal":
                self.internal = e
                logger.error("internal error reading a result", exc_info=e)
            why = f"bad result: {e}" if kind == "bad" else f"{type(e).__name__}: {e}"
            return JobFailed(job, kind, why)

    def _do(self, actions: list) -> list:
        """Carry out the actions that need the lock (held); returns the others."""
        self.rec["lost"] = self.st.failures
        after: list[tuple[Member, Drop]] = []
        for a in actions:
            if isinstance(a, Submit):
                m = self.handles[a.member]
                f, job_id = self.co._submit(m, list(a.chunks), self.seeds, self.step,
                                            self.schedule, self.rec)
                self.futures[f] = a.job
                self.jobs[a.job] = (m, job_id)
            elif isinstance(a, Commit):
                self._commit(a.job)
            elif isinstance(a, Abandon):
                self.futures = {f: j for f, j in self.futures.items() if j != a.job}
                logger.info("gave up the job of lost worker %s (%d chunks)", a.member,
                            len(a.chunks))
            elif isinstance(a, FailSweep):
                raise RuntimeError(a.why) from self.internal
            elif isinstance(a, Drop):  # the member as the step knew it (not a newcomer's name)
                after.append((self.handles[a.member], a))
        return after

    def _after(self, actions: list[tuple[Member, Drop]]) -> None:
        """Drops, outside the lock (they call the name server)."""
        for m, a in actions:
            self.co.roster.lose(m, a.why, unregister=a.unregister)

    def _commit(self, job: int) -> None:
        co, rec = self.co, self.rec
        m, job_id = self.jobs[job]
        r = self.results.pop(job)
        t1 = time.perf_counter()
        reading = r["reading"]
        co.ledger.commit(reading)
        co.ledger.forward(reading, m, co.members)
        m.view = job_id
        rec["bytes_up"] += reading.bytes
        rec["commit_s"] += time.perf_counter() - t1
        self.step_max = max(self.step_max, r["result"].timings.get("seconds", 0.0))
        co.telemetry.job(rec, m.name, self.step, r)


__all__ = ["Coordinator", "ProtocolError"]
