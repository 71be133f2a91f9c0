"""One step of a sweep as pure state: events in, actions out (no sockets, threads or Pyro5).

A step ends when every chunk of a live member has been committed once. :class:`Step` holds
what the step knows (the chunks still to commit, the jobs in flight and their workers, who
owns each chunk, the chunks lost, whether the step stayed clean) and changes only through
:meth:`Step.handle`, which takes events (:class:`Begin`, :class:`JobDone`, :class:`JobFailed`,
:class:`WorkerLost`, :class:`WorkersJoined`) and returns the actions to carry out
(:class:`Submit`, :class:`Commit`, :class:`Abandon`, :class:`Drop`, :class:`FailSweep`,
:class:`StepDone`), in the manner of dask's ``WorkerState.handle_stimulus``. The
:class:`~distlda.cluster.coordinator.Coordinator` is the shell: it waits on the jobs, turns
what happens into events and does what the actions say. So every failure case is a test
without a network (``tests/test_step.py``).

Failures (:class:`JobFailed` ``kind``): a malformed result (``"bad"``), a lost connection
(``"lost"``: its registration is removed too) or an error the worker raised (``"failed"``)
drop the worker, and its chunks still to commit leave the step: they are :attr:`Step.lost`
(their topics died with the worker; the shell brings them back from their checkpoints or the
client, and recounts, before the next step), and the step is not clean (its workers then get
dense rows with their next job). More than ``max_failures`` in a sweep fail it; so does
anything else (``"internal"``: a bug here must never look like a bad worker and drop healthy
ones one after another).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

FAILURE_KINDS = ("bad", "lost", "failed", "internal")


# ---------------------------------------------------------------- events
@dataclass(frozen=True)
class Begin:
    """Start the step: every member's job for the chunks it owns."""


@dataclass(frozen=True)
class JobDone:
    """Job ``job``'s result arrived and was read (checked) without an error."""

    job: int


@dataclass(frozen=True)
class JobFailed:
    """Job ``job`` failed: ``kind`` one of :data:`FAILURE_KINDS`, ``why`` for the logs."""

    job: int
    kind: str
    why: str


@dataclass(frozen=True)
class WorkerLost:
    """The membership dropped ``member`` (a failed heartbeat: a frozen process, a cut link)."""

    member: str


@dataclass(frozen=True)
class WorkersJoined:
    """``members`` joined the session (they hold nothing in this step)."""

    members: tuple


Event = Union[Begin, JobDone, JobFailed, WorkerLost, WorkersJoined]


# ---------------------------------------------------------------- actions
@dataclass(frozen=True)
class Submit:
    """Send ``member`` job ``job`` for ``chunks``."""

    job: int
    member: str
    chunks: tuple


@dataclass(frozen=True)
class Commit:
    """Commit job ``job``'s result (and forward its changes to the other workers)."""

    job: int


@dataclass(frozen=True)
class Abandon:
    """Stop waiting for job ``job`` of ``member`` (for ``chunks``), which was lost: what it
    returns is ignored."""

    job: int
    member: str
    chunks: tuple


@dataclass(frozen=True)
class Drop:
    """Drop ``member`` from the membership (and its registration, with ``unregister``)."""

    member: str
    why: str
    unregister: bool


@dataclass(frozen=True)
class FailSweep:
    """The sweep fails (nothing of this step that is not committed counts)."""

    why: str


@dataclass(frozen=True)
class StepDone:
    """Every chunk is committed; ``clean``: each was swept once by its planned worker."""

    clean: bool


Action = Union[Submit, Commit, Abandon, Drop, FailSweep, StepDone]


class Step:
    """The state of one step (see the module docstring).

    Parameters
    ----------
    owner : dict of int to str
        The member that holds each chunk (a chunk of a member not in ``members`` is orphaned).
    members : list of str
        The members in the session, in the order their jobs are sent.
    sizes : list of int
        Tokens per chunk.
    failures : int
        Failures earlier in this sweep.
    max_failures : int
        Failures a sweep tolerates.
    """

    def __init__(self, owner: dict[int, str], members: list[str], sizes: list[int],
                 failures: int = 0, max_failures: int = 20):
        self.remaining = set(range(len(sizes)))
        self.owner = dict(owner)
        self.members = list(members)
        self.sizes = sizes
        self.inflight: dict[int, tuple[str, tuple]] = {}  # job -> (member, chunks)
        self.clean = True
        self.failures = failures
        self.max_failures = max_failures
        self.lost: set[int] = set()  # chunks that left the step with their worker
        self.done = False
        self._jobs = 0

    def handle(self, *events: Event) -> list[Action]:
        """Apply ``events`` in order; returns the actions to carry out, in order."""
        out: list[Action] = []
        for ev in events:
            if self.done:
                break
            out += self._apply(ev)
            if any(isinstance(a, FailSweep) for a in out):
                self.done = True
                break
            out += self._settle()
        if not events:  # nothing happened: what the step waits for (or that it is stuck)
            out += self._settle()
        return out

    def _apply(self, ev: Event) -> list[Action]:
        if isinstance(ev, Begin):
            held = {m: sorted(i for i in self.remaining if self.owner.get(i) == m)
                    for m in self.members}
            return [self._submit(m, held[m]) for m in self.members if held[m]]
        if isinstance(ev, JobDone):
            entry = self.inflight.pop(ev.job, None)
            if entry is None:  # abandoned (its worker was lost): never committed
                return []
            self.remaining.difference_update(entry[1])
            return [Commit(ev.job)]
        if isinstance(ev, JobFailed):
            if ev.kind not in FAILURE_KINDS:
                raise ValueError(f"unknown failure kind {ev.kind!r}")
            if ev.kind == "internal":
                return [FailSweep(f"internal error: {ev.why}")]
            entry = self.inflight.pop(ev.job, None)
            if entry is None:  # its worker is gone already
                return []
            self._forget(entry[0])
            return [Drop(entry[0], ev.why, ev.kind == "lost")] + self._failed(ev.why)
        if isinstance(ev, WorkerLost):
            if ev.member not in self.members:
                return []
            self._forget(ev.member)
            out: list[Action] = []
            for job in [j for j, (m, _) in self.inflight.items() if m == ev.member]:
                out.append(Abandon(job, ev.member, self.inflight.pop(job)[1]))
                out += self._failed(f"worker {ev.member} lost during its job")
            return out
        if isinstance(ev, WorkersJoined):
            self.members += [m for m in ev.members if m not in self.members]
            return []
        raise TypeError(f"not a step event: {ev!r}")

    def _forget(self, member: str) -> None:
        if member in self.members:
            self.members.remove(member)

    def _failed(self, why: str) -> list[Action]:
        self.failures += 1
        if self.failures > self.max_failures:
            return [FailSweep(f"{self.failures} worker failures in one sweep; the last: {why}")]
        return []

    def _submit(self, member: str, chunks) -> Submit:
        self._jobs += 1
        self.inflight[self._jobs] = (member, tuple(chunks))
        return Submit(self._jobs, member, tuple(chunks))

    def orphans(self) -> list[int]:
        """Chunks still to commit whose owner is no longer a member."""
        return sorted(i for i in self.remaining if self.owner.get(i) not in self.members)

    def _settle(self) -> list[Action]:
        """Chunks of members gone leave the step; say when it is done."""
        if self.done:
            return []
        orphans = self.orphans()
        if orphans:
            self.remaining.difference_update(orphans)
            self.lost.update(orphans)
            self.clean = False
        if not self.remaining:
            self.done = True
            return [StepDone(self.clean)]
        if self.inflight:
            return []
        self.done = True
        return [FailSweep(f"internal error: chunks {sorted(self.remaining)[:5]} not swept")]


__all__ = ["Step", "Begin", "JobDone", "JobFailed", "WorkerLost", "WorkersJoined", "Submit",
           "Commit", "Abandon", "Drop", "FailSweep", "StepDone",
           "FAILURE_KINDS"]
