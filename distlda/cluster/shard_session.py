"""The dispatcher's side of a session whose corpus is a shard set (see
:mod:`distlda.cluster.ledger`): where each shard is held, how a lost worker's shards
come back from their checkpoints, the recount that keeps the counts exact, and the
checkpoints themselves.

Placement: shards without a live holder go to the least-loaded members, which read them
from the shard set and their topics from their last checkpoint (or their seed); after a
membership change whole shards move to even the load, their topics relayed once from the
holder. Whenever a shard came back from a checkpoint, every member counts its shards'
committed topics and the sum replaces the ledger's counts: they then equal the committed
assignments, whatever died and when. A worker lost mid-step makes the step end without its
shards (:attr:`distlda.cluster.step.Step.lost`); they are placed and
recounted before the next step, so a failure costs those shards the sweeps since their last
checkpoint, never an exact count.

Checkpoints: :mod:`distlda.cluster.checkpointing`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any

import numpy as np

from distlda.cluster import _kernels as CK
from distlda.cluster import codec, plan, transport
from distlda.cluster.checkpointing import Checkpoints
from distlda.cluster.ledger import Ledger
from distlda.cluster.membership import Member
from distlda.cluster.messages import (
    DenseSlice,
    ProtocolError,
    ShardLoad,
    arg_array,
    arg_list,
)
from distlda.errors import data_error

logger = logging.getLogger("distlda.dispatcher")


class ShardKeeper:
    """The shard placement and checkpoints of one sharded session of coordinator ``co``."""

    def __init__(self, co: Any):
        self.co = co
        assert isinstance(co.ledger, Ledger)
        self.ledger: Ledger = co.ledger
        self._placed = False  # the shards were placed once
        self.where = co.config.shards.checkpoint  # the checkpoints' place, for messages
        self.checkpoints = Checkpoints(self)
        #: An inline set (a client's in-memory chunks): chunks the client sent, waiting for a
        #: holder, and those with neither holder nor data (the client sends them again).
        self.inline = bool(co.config.shards.inline)
        self.given: dict[int, ShardLoad] = {}
        self.need: set[int] = set()

    def restore(self, lost: list[int], rec: dict) -> None:
        """Shards ``lost`` with their worker mid-step go to the survivors from their last
        checkpoints, and the counts are recounted (before the next step)."""
        self.place(rebalance=False)
        rec["redispatched"] += len(lost)

    def receive(self, chunks: list) -> int:
        """An inline set's chunks (:class:`~distlda.cluster.messages.ChunkLoad`, checked)
        arrive from the client: each goes to a member now and stays nowhere here. Returns
        the number of chunks held.

        Raises
        ------
        ProtocolError
            Not an inline set, a chunk of the wrong size, one held already.
        """
        sizes = self.ledger.sizes()
        if not self.inline:
            raise ProtocolError("a session on a shard set loads no chunks: its workers read "
                                "their shards themselves")
        for c in chunks:  # checked whole before any is placed
            if c.idx >= len(sizes) or c.words.shape[0] != sizes[c.idx]:
                raise ProtocolError(f"chunk {c.idx}: not one of the chunks the session "
                                    f"declared (index and size)")
            if c.idx in self.co.owner:
                raise ProtocolError(f"chunk {c.idx} is held already")
            if not CK.sorted_in_docs(c.words, c.doc_ptr):
                raise ProtocolError(f"chunk {c.idx}: tokens must be sorted by word id within "
                                    f"each document (distlda.gibbs.blocks.sort_for_blocks)")
        for c in chunks:
            self.given[c.idx] = ShardLoad(c.idx, 0, None, c.topics, c.words, c.doc_ptr)
        self.place(rebalance=False, recount=False)  # the next sweep recounts once
        t = self.co.telemetry
        t.loaded(sum(c.words.nbytes + c.topics.nbytes for c in chunks))
        if self._placed:  # sent again after their worker was lost
            t.totals["redispatched_chunks"] += len(chunks)
        return len(self.co.owner)

    def topics(self, idxs: list[int]) -> list | None:
        """An inline set's committed topics of chunks ``idxs``, fetched from their holders;
        None when some have no holder (:attr:`need` says which)."""
        self.place(rebalance=False)
        if any(i not in self.co.owner for i in idxs):
            return None
        by: dict[Member, list[int]] = {}
        for i in idxs:
            by.setdefault(self.co.owner[i], []).append(i)
        got: dict[int, np.ndarray] = {}

        def export(m, w, mine):
            raw = codec.stage_in(w.export(self.co.key, mine), self._pull(w))
            got.update(zip(mine, (codec.dec_topics(t[0]) for t in raw)))

        if self.lose(self._each(by, export)):
            self.place(rebalance=False)
            return None
        return [got[i] for i in idxs]

    def place(self, rebalance: bool = True, recount: bool = True) -> None:
        """Give shards without a live holder to the least-loaded members (read by them from
        the shard set, their topics from their last checkpoint) and, after a membership
        change and with ``rebalance``, move whole shards (their topics relayed from the
        holder) to even the load; recount when any came from a checkpoint. Members that fail
        meanwhile are dropped and the plan starts again.

        Raises
        ------
        CorpusFormatError, CheckpointError, LimitError
            A shard or a checkpoint cannot be read, or a worker cannot hold its share: the
            training fails with the worker's message (no worker is to blame).
        """
        ms = self.co.roster.membership
        for _ in range(self.co.MAX_FAILURES_PER_SWEEP):
            self.co.roster.join(self.co.key, self.co.config)
            if not self.co.members:
                self.co._wait_for_workers()
            with self.co.lock:
                self.co._forget_lost()
                members = self.co.members
                move = rebalance and ms.changed
                held = set(self.co.owner)
                # an inline set's chunks without data wait for the client (not placed)
                self.need = ({i for i in range(self.ledger.num_chunks)
                              if i not in held and i not in self.given} if self.inline
                             else set())
                target = plan.assign(self.ledger.sizes(), {m.name: set(m.chunks) for m in members},
                                     held | self.need, move)
            if not self.lose(self._move_shards(members, target, recount)):
                if move:
                    ms.changed = False
                return
        raise RuntimeError(f"more than {self.co.MAX_FAILURES_PER_SWEEP} worker failures while "
                           f"placing the shards")

    def _move_shards(self, members: list[Member], target: dict, recount: bool = True) -> list:
        """Carry out a shard plan: exports, drops, loads, then a recount if any shard came
        back from its checkpoint (or none was counted yet). Returns the members that failed,
        ``[(member, why)]``."""
        led = self.ledger
        loads: dict[Member, list[int]] = {}
        exports: dict[Member, list[int]] = {}
        for m in members:
            for i in sorted(target[m.name] - m.chunks):
                donor = self.co.owner.get(i)
                if donor is not None and donor is not m:
                    exports.setdefault(donor, []).append(i)
                loads.setdefault(m, []).append(i)
        moved: dict[int, ShardLoad] = {}

        def export(m, w, idxs):
            raw = codec.stage_in(w.export(self.co.key, idxs), self._pull(w))
            for i, t in zip(idxs, raw):  # an inline set's come with their tokens
                moved[i] = (ShardLoad(i, 0, None, codec.dec_topics(t[0]), codec.dec(t[1]),
                                      codec.dec(t[2])) if self.inline
                            else ShardLoad(i, int(led.seeds[i]), None, codec.dec_topics(t)))
        failed = self._each(exports, export) or self._drop(members, target)
        if failed:
            return failed
        restored = sorted(i for idxs in loads.values() for i in idxs if i not in moved)

        def load(m, w, idxs):
            items = [(moved.get(i) or self.given.get(i)
                      or ShardLoad(i, int(led.seeds[i]), led.refs[i])).to_wire(
                          led.config.num_topics) for i in idxs]
            items, blobs = codec.stage_out(items)
            codec.send_pieces(lambda *a: w.put(self.co.key, *a), blobs)
            t = max(self.co.roster.timeout, self.co.poll + 1.0)
            transport.set_timeout(w, t)
            out = transport.poll(lambda: w.load_shards(self.co.key, items),
                                 lambda j, t: w.result(self.co.key, j, t), self.co.poll)
            with self.co.lock:
                for o in arg_list(out, "load_shards result"):
                    led.learn(int(o["idx"]), codec.dec(o["words"]), codec.dec(o["freq"]))
                m.chunks |= set(idxs)
                m.rows_changed()
                self.co.owner.update((i, m) for i in idxs)
                for i in idxs:
                    self.given.pop(i, None)
                led.stale.update(i for i in idxs if i not in moved)

        failed = self._each(loads, load)
        if restored and not self.inline:
            log_restore(self.co.number, self.ledger, self.where, restored, loads,
                        first=not self._placed)
        return failed or (self._settle(restored) if recount else [])

    def _settle(self, restored: list[int]) -> list:
        """Recount when the counts are not those of the topics held (shards came from
        elsewhere, or went missing); returns the members that failed."""
        led = self.ledger
        if not (led.stale or led.counted_set != set(self.co.owner)):
            return []
        failed = self._recount()
        if not failed:
            led.restored(restored)
            if self._placed:
                t = self.co.telemetry.totals
                t["restored_shards"] = t.get("restored_shards", 0) + len(restored)
            self._placed = True
        return failed

    def _drop(self, members: list[Member], target: dict) -> list:
        """Members give back the shards they no longer hold (before the recount, so that no
        shard counts twice); returns the members that failed."""
        drops = {m: sorted(m.chunks - target[m.name]) for m in members
                 if m.chunks - target[m.name]}

        def drop(m, w, idxs):
            w.drop(self.co.key, idxs)
            with self.co.lock:
                m.chunks -= set(idxs)
                m.rows_changed()
                for i in idxs:
                    if self.co.owner.get(i) is m:
                        del self.co.owner[i]

        return self._each(drops, drop)

    def _recount(self) -> list:
        """Every member counts the committed topics of its shards; the sum replaces the
        ledger's counts. Returns the members that failed."""
        led = self.ledger
        parts: dict[Member, DenseSlice] = {}

        def count(m, w, _):
            transport.set_timeout(w, max(self.co.roster.timeout, 60.0))  # a pass over its tokens
            raw = codec.stage_in(w.counts(self.co.key), self._pull(w))
            rows = arg_array(raw["rows"], "counts.rows", 1, "i")
            dense = arg_array(raw["dense"], "counts.dense", 2, "i")
            if dense.shape != (rows.shape[0], led.config.num_topics) or (
                    rows.size and (rows.min() < 0 or rows.max() >= led.config.num_terms)):
                raise ProtocolError(f"worker {m.name}: malformed counts")
            parts[m] = DenseSlice(rows, dense)

        failed = self._each({m: None for m in self.co.members if m.chunks}, count)
        if failed:
            return failed
        with self.co.lock:
            led.replace_counts(list(parts.values()), set(self.co.owner))
            self.co.roster.membership.invalidate_views()  # every slice gets dense rows next
        return []

    def lose(self, failed: list) -> bool:
        """Drop the members that failed (``[(member, why)]``); True if any did."""
        for m, why in failed:
            self.co.roster.lose(m, why)
        return bool(failed)

    def _pull(self, w):
        return codec.pull(lambda sid, off, n: w.piece(self.co.key, sid, off, n))

    def _each(self, work: dict, fn) -> list:
        """``fn(member, proxy, arg)`` for every ``member: arg`` of ``work``, in parallel.
        Returns ``[(member, why)]`` for the members that failed; raises the data errors
        (:func:`data_error`) that no worker is to blame for."""
        if not work:
            return []

        def run(m, arg):
            with transport.proxy(m.uri, self.co.roster.timeout) as w:
                fn(m, w, arg)
            m.seen = time.monotonic()

        futures = {self.co.pool.submit(run, m, arg): m for m, arg in work.items()}
        failed, data = [], None
        for f in cf.as_completed(futures):
            try:
                f.result()
            except Exception as e:
                d = data_error(e)
                if d is not None:
                    data = data or d
                elif not isinstance(e, (transport.CommunicationError, ProtocolError)) \
                        and not transport.is_remote(e):
                    raise
                else:
                    failed.append((futures[f], f"{type(e).__name__}: {e}"))
        if data is not None:
            raise data
        return failed

    def doc_stats(self) -> tuple[float, tuple]:
        """The documents' part of log p(w, z) and the count histograms, from every shard's
        holder (the shards of members lost meanwhile come back from their checkpoints)."""
        led = self.ledger
        for _ in range(self.co.MAX_FAILURES_PER_SWEEP):
            self.place(rebalance=False)
            answers: dict[Member, dict] = {}

            def ask(m, w, alpha):
                answers[m] = w.doc_stats(self.co.key, codec.enc(alpha))

            if not self.lose(self._each({m: led.state.alpha for m in self.co.members
                                         if m.chunks}, ask)):
                ll = sum(float(a["loglik"]) for a in answers.values())
                hist = merge_histograms([[codec.dec(h) for h in a["histograms"]]
                                         for a in answers.values()])
                return ll, hist
        raise RuntimeError("workers kept failing while the likelihood was computed")


def log_restore(number: int, led: Ledger, where: str, restored: list[int], loads: dict,
                first: bool) -> None:
    """Say where shards came back from (the first placement of a training is no restore)."""
    if first:
        logger.info("training %d: %d shards placed on %d workers", number, len(restored),
                    len(loads))
        return
    held = {i: m.name for m, idxs in loads.items() for i in idxs}
    for name in sorted(set(held[i] for i in restored)):
        said = ", ".join(f"{i} (sweep {led.refs[i]['sweep']}, "
                         f"{led.refs[i].get('dir') or where}/{led.refs[i]['file']})"
                         if led.refs[i] is not None else f"{i} (from its seed: no checkpoint "
                         f"yet)" for i in restored if held[i] == name)
        logger.warning("training %d: restored shards %s onto worker %s", number, said, name)


def merge_histograms(parts: list) -> tuple:
    """The count histograms (:func:`distlda.gibbs.hyper.count_histograms`) of several
    workers' shards, as one."""
    from distlda.gibbs.hyper import _STRIDE
    if not parts:
        return tuple(np.zeros(0, np.int64) for _ in range(5))
    codes = np.concatenate([p[0] * _STRIDE + p[1] for p in parts])
    freq = np.concatenate([p[2] for p in parts])
    uniq, inv = np.unique(codes, return_inverse=True)
    pf = np.bincount(inv, weights=freq, minlength=uniq.shape[0]).astype(np.int64)
    lv = np.concatenate([p[3] for p in parts])
    lf = np.concatenate([p[4] for p in parts])
    luniq, linv = np.unique(lv, return_inverse=True)
    lfreq = np.bincount(linv, weights=lf, minlength=luniq.shape[0]).astype(np.int64)
    return uniq // _STRIDE, uniq % _STRIDE, pf, luniq, lfreq
