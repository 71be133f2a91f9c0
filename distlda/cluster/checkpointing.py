"""The checkpoints of a shard set's training, as the dispatcher schedules and records them.

After a sweep when due (:class:`CheckpointClock`: the first at the 10th sweep or after about
20 s, then every 10 sweeps or 60 s), every member writes its shards' topics in the
background, straight to the checkpoint place (:meth:`Checkpoints.checkpoint`); the ledger
keeps the counts of that moment until every shard's write is in: the model a client keeps.
The members prune what no model may still need (:meth:`Checkpoints.protect`). The end of a
training (:meth:`Checkpoints.finish`) writes every shard whose topics changed since its last
checkpoint, so that the final counts are exactly those of the references the client gets.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from distlda.cluster.membership import Member
from distlda.cluster.messages import arg_list, checkpoint_ref
from distlda.errors import CheckpointError

logger = logging.getLogger("distlda.dispatcher")


class Checkpoints:
    """The checkpoints of the sharded session of ``keeper``
    (:class:`~distlda.cluster.shard_session.ShardKeeper`)."""

    #: Seconds the end of a sharded training waits for its last checkpoint's writes.
    FINISH_WRITE_S = 600.0

    def __init__(self, keeper: Any):
        self.keeper = keeper
        sh = keeper.co.config.shards
        self.clock = CheckpointClock(*sh.every)
        #: sweeps whose checkpoints a model the client may keep refers to: its starting
        #: references, and the last two kept models it took
        self.started = {r["sweep"] for r in sh.refs if r is not None}
        self.taken: list[int] = []

    def took(self, sweep: int) -> None:
        """The client took the kept model of ``sweep`` (:meth:`LdaDispatcher.kept`)."""
        if not self.taken or self.taken[-1] != sweep:
            self.taken = (self.taken + [sweep])[-2:]

    def protect(self) -> list[int]:
        """The sweeps whose checkpoints stay when the workers prune theirs."""
        led = self.keeper.ledger
        keep = self.started | set(self.taken)
        # the last checkpoint of every shard known here: a worker frozen after writing newer
        # ones (not yet reported) must not prune the one its shards would be restored from
        keep |= {r["sweep"] for r in led.refs if r is not None}
        keep |= {k[0] for k in (led.kept, led.pending) if k is not None}
        return sorted(keep)

    def after_sweep(self) -> None:
        """A sweep ended: count it, and checkpoint when due."""
        self.keeper.ledger.sweep += 1
        if not self.keeper.inline and self.clock.due(self.keeper.ledger.sweep):
            self.checkpoint()

    def checkpoint(self) -> None:
        """Ask every member to write its shards' topics as they are after this sweep (in the
        background); the counts now are kept until every shard's write is in."""
        led = self.keeper.ledger
        led.want_checkpoint(led.sweep)
        self._write([m for m in self.keeper.co.members if m.chunks])
        self.clock.done()

    def _write(self, members: list[Member]) -> None:
        """Ask ``members`` to write their shards' topics as they are now (in the background);
        those that fail are dropped (their shards come back from older checkpoints)."""
        sweep, protect, key = self.keeper.ledger.sweep, self.protect(), self.keeper.co.key
        self.keeper.lose(self.keeper._each({m: None for m in members},
                                           lambda m, w, _: w.checkpoint(key, sweep, protect)))

    def collect(self, wait: float = 0.0) -> tuple[bool, list]:
        """Record the checkpoints the members wrote since they were last asked. Returns
        whether some are still writing and the write errors ``[(shard, why)]``."""
        led = self.keeper.ledger
        answers: dict[Member, dict] = {}

        def ask(m, w, _):
            answers[m] = w.checkpoints(self.keeper.co.key, wait)

        failed = self.keeper._each({m: None for m in self.keeper.co.members if m.chunks}, ask)
        self.keeper.lose(failed)
        errors = []
        with self.keeper.co.lock:
            for m, a in answers.items():
                for idx, ref, err in arg_list(a.get("written"), "checkpoints.written"):
                    if err is not None:
                        logger.warning("worker %s could not write the checkpoint of shard %s: "
                                       "%s", m.name, idx, err)
                        errors.append((idx, str(err)))
                    elif self.keeper.co.owner.get(idx) is m:
                        led.written(idx, checkpoint_ref(ref, f"checkpoint of shard {idx}",
                                                        led.config.num_topics))
        return any(bool(a.get("busy")) for a in answers.values()), errors

    def finish(self) -> dict:
        """End a sharded training with every shard's topics in a checkpoint, so that the counts
        are exactly those of the references the client keeps (:attr:`Ledger.kept`).

        Raises
        ------
        CheckpointError
            A worker could not write its shards' topics.
        """
        led = self.keeper.ledger
        for _ in range(self.keeper.co.MAX_FAILURES_PER_SWEEP):
            self.collect()
            self.keeper.place(rebalance=False)  # anything lost comes back (and is recounted)
            todo = set(led.unwritten())
            if not todo:
                led.settle(led.sweep)
                return {"sweep": led.sweep}
            self._write([m for m in self.keeper.co.members if m.chunks & todo])
            deadline = time.monotonic() + self.FINISH_WRITE_S
            busy = True
            while busy and time.monotonic() < deadline:
                busy, errors = self.collect(wait=2.0)
                if errors:
                    raise CheckpointError(f"the topics of shard {errors[0][0]} could not be "
                                          f"written to {self.keeper.where}: "
                                          f"{errors[0][1]}")
        raise RuntimeError("the shards' topics could not all be checkpointed (workers kept "
                           "failing)")


class CheckpointClock:
    """When a sharded training checkpoints its topics: the first after ``sweeps`` sweeps or
    ``first`` seconds, then every ``sweeps`` sweeps or ``seconds`` seconds, whichever comes
    first (checked at the end of each sweep)."""

    def __init__(self, sweeps: int = 10, seconds: float = 60.0, first: float = 20.0):
        self.sweeps, self.seconds, self.first = sweeps, seconds, first
        self._since = 0
        self._last = time.monotonic()
        self._started = False

    def due(self, sweep: int) -> bool:
        self._since += 1
        wait = self.seconds if self._started else self.first
        return self._since >= self.sweeps or time.monotonic() - self._last >= wait

    def done(self) -> None:
        self._since, self._last, self._started = 0, time.monotonic(), True


