"""The dispatcher's committed state: counts, and no token.

The workers hold the tokens and their topic assignments (a shard set's read by the workers
themselves, a client's in-memory chunks handed on once by the dispatcher:
:mod:`distlda.cluster.shard_session`); the dispatcher holds the word-topic counts and topic
totals, per shard (chunk) its size, its distinct words and its last checkpoint, and the
schedule's ledger. Invariant (:mod:`distlda.gibbs.state`): between commits ``nwk`` and ``nk``
are exactly the counts of the committed topics of every shard held.

A result is *read* (:meth:`Ledger.read`: every row change must keep its word's total and touch
only the job's words, and the change of the topic totals is what the changes imply) and then
*committed* (:meth:`Ledger.commit`: the changes added to the counts). A result that never comes
back, or fails its checks, changes nothing. Whenever shards change hands from elsewhere (a
checkpoint, the client) or go missing with a worker, the counts are *replaced* by a recount the
workers make from the topics they hold (:meth:`Ledger.replace_counts`), so they equal the
committed assignments whatever was lost.

The ledger also keeps what each worker needs for its next job: the row changes the others
committed on its words this step (*boxes*, forwarded as the workers sent them, :class:`Relay`),
from which :meth:`Relay.delta_for` builds a :class:`~distlda.cluster.messages.SliceDelta`.
Pure state: no network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distlda.cluster import _kernels as CK
from distlda.cluster import codec
from distlda.cluster.membership import Member
from distlda.cluster.messages import JobResult, Moves, ProtocolError, RowChanges, SessionConfig
from distlda.gibbs import kernels as K_
from distlda.gibbs.state import GibbsState

_NO_LISTS = (np.zeros(1, np.int64), np.zeros(1, np.int32), np.zeros(1, np.int32))


@dataclass
class Reading:
    """A result read and checked, ready to commit: ``parts`` the job's chunks, ``nk`` the
    change of the topic totals, ``fwd`` its row changes (committed here, and what the other
    workers get), ``moved`` tokens, ``bytes`` on the wire."""

    parts: list
    nk: np.ndarray
    fwd: list | None
    moved: int
    bytes: int
    form: str


class Relay:
    """The row changes a step's workers committed, queued for the other workers' next jobs
    (the dispatcher relays them: issue 24 moves this to the workers)."""

    def __init__(self, num_terms: int):
        self.num_terms = num_terms
        self.boxes: dict[str, list] = {}   # filled during a step, for the next one
        self._next: dict[str, list] = {}

    def forward(self, reading: Reading, sender: Member, others: list[Member]) -> None:
        """Queue the sender's row changes for each other worker, on that worker's own words."""
        V = self.num_terms
        for w in others:
            if w is sender or w.rowmap is None or w.rows is None:
                continue
            if reading.fwd is None:  # it did not say (no peers when sent): dense rows next
                w.view = None
                continue
            box = self._next.setdefault(w.name, [])
            if w.rows.shape[0] >= 0.9 * V:  # holds (nearly) every row: as sent
                box.extend(reading.fwd)
                continue
            for p in reading.fwd:
                if isinstance(p, Moves):
                    box.append(p.only(w.rowmap))
                else:
                    keep = w.rowmap[p.words]
                    box.append(type(p)(p.words[keep], p.delta[keep]))

    def end_step(self) -> None:
        """The changes forwarded this step become what the next step's jobs carry."""
        self.boxes, self._next = self._next, {}

    def delta_for(self, m: Member, dense_bytes: int):
        """The parts to bring ``m``'s slice up to date, or None when dense rows
        (``dense_bytes``) would be smaller."""
        parts = self.boxes.get(m.name, [])
        if sum(p.nbytes for p in parts) >= dense_bytes:
            return None
        return list(parts)


class Ledger(Relay):
    """The committed counts of one training session.

    Parameters
    ----------
    config : SessionConfig
        With its :class:`~distlda.cluster.messages.ShardSet` (a shard set, or a client's
        in-memory chunks).

    Attributes
    ----------
    state : GibbsState
        ``nwk`` (V x K int32), ``nk`` (K int32), the priors; it holds no chunk.
    refs : list of dict or None
        Per shard, the checkpoint its topics can be restored from (None: its seed).
    kept : tuple or None
        ``(sweep, nwk, nk, refs)``: the counts and references of the last checkpoint that
        holds every shard at one sweep (what a client keeps if the dispatcher is lost).
    """

    def __init__(self, config: SessionConfig):
        super().__init__(config.num_terms)
        sh = config.shards
        if sh is None:
            raise ValueError("a Ledger needs a session with its shard set")
        self.config = config
        self.state = GibbsState(config.num_topics, config.num_terms, config.alpha, config.beta)
        self.freq = np.zeros(config.num_terms, np.int64)
        self._sizes = list(sh.sizes)
        self.words: dict[int, np.ndarray] = {}  # per shard: its distinct words, once read
        self.refs: list = list(sh.refs)
        self.seeds = np.asarray(sh.seeds, np.uint32)
        #: the model's sweeps done (the one running is ``sweep + 1``)
        self.sweep = sh.sweep
        #: per shard: the sweep its topics last changed in, or -1 while they are its ref's
        #: (or its seed's, ref None)
        self.changed = [-1] * len(sh.sizes)
        self.kept: tuple | None = None
        self.pending: tuple | None = None
        self._rowmap = np.arange(config.num_terms, dtype=np.int32)
        #: the shards the last recount counted (the commits since are theirs; none before the
        #: first)
        self.counted_set: set[int] = set()
        #: shards whose topics changed hands from elsewhere (a checkpoint, the client) since
        #: the last recount: the counts do not hold their topics
        self.stale: set[int] = set()

    @property
    def num_chunks(self) -> int:
        return len(self._sizes)

    def sizes(self) -> list[int]:
        return list(self._sizes)

    @property
    def num_tokens(self) -> int:
        return int(sum(self._sizes))

    def chunk_words(self, i: int) -> np.ndarray:
        return self.words[i]

    def learn(self, idx: int, words: np.ndarray, freq: np.ndarray) -> None:
        """A worker read shard ``idx``: its distinct words and their token counts."""
        if words.shape != freq.shape or freq.sum() != self._sizes[idx]:
            raise ProtocolError(f"shard {idx}: the word counts a worker read do not sum to "
                                f"its {self._sizes[idx]} tokens")
        if idx not in self.words:
            np.add.at(self.freq, words, freq)
            self.words[idx] = np.ascontiguousarray(words, np.int32)

    # ------------------------------------------------------------ reading and committing
    def read(self, result: JobResult, idxs, who: str) -> Reading:
        """Check a result's row changes; changing nothing.

        Raises
        ------
        ProtocolError
            A row change that alters its word's total, a word outside the job's shards. Any
            other error is a bug here (:func:`distlda.cluster.coordinator.failure_kind`).
        """
        bad = f"malformed result from worker {who}"
        K = self.config.num_topics
        nk = np.zeros(K, np.int64)
        held = np.zeros(self.config.num_terms, np.bool_)
        for i in idxs:
            held[self.words[i]] = True
        size = 0
        for p in result.delta:
            if p.words.size and not held[p.words].all():
                raise ProtocolError(f"{bad}: changes of words outside its shards")
            if isinstance(p, RowChanges):
                if not CK.row_totals(p.delta, nk):
                    raise ProtocolError(f"{bad}: row changes alter row totals")
            else:
                nk += (np.bincount(p.new, minlength=K) - np.bincount(p.old, minlength=K))
            size += p.nbytes
        return Reading(list(idxs), nk, list(result.delta), int(result.moved), size, "changes")

    def commit(self, reading: Reading) -> None:
        """Add a read result's changes to the counts.

        Raises
        ------
        RuntimeError
            A count would drop below zero: the result was not made from these counts (a bug;
            the sweep fails and nothing more is committed).
        """
        nwk = self.state.nwk
        for p in reading.fwd or []:
            if isinstance(p, RowChanges):
                ok = CK.apply_rows(self._rowmap, p.words, p.delta, nwk, *_NO_LISTS, False)
            else:
                ok = CK.apply_foreign_moves(self._rowmap, p.words, p.old, p.new, nwk,
                                            *_NO_LISTS, False)
            if not ok:
                raise RuntimeError("internal error: a committed change made a count negative")
        self.state.nk += reading.nk.astype(self.state.nk.dtype)
        for i in reading.parts:  # the job's shards
            self.changed[i] = self.sweep + 1

    def replace_counts(self, parts: list, held: set) -> None:
        """The counts become the sum of the workers' recounts (``DenseSlice`` parts over
        their rows), which must hold every token of the shards ``held`` once.

        Raises
        ------
        RuntimeError
            The parts do not hold those tokens exactly once.
        """
        st = self.state
        nwk = np.zeros_like(st.nwk)
        for p in parts:
            nwk[p.rows] += p.dense
        nk = nwk.sum(axis=0, dtype=np.int64)
        want = sum(self._sizes[i] for i in held)
        if int(nk.sum()) != want:
            raise RuntimeError(f"internal error: a recount holds {int(nk.sum())} tokens, the "
                               f"shards held {want}")
        st.nwk = nwk
        st.nk = nk.astype(st.nk.dtype)
        st.touch()
        self.counted_set, self.stale = set(held), set()
        self.boxes, self._next = {}, {}  # changes made on the counts replaced: none to relay

    # ------------------------------------------------------------ checkpoints
    def want_checkpoint(self, sweep: int) -> None:
        """A checkpoint of every shard at ``sweep`` was asked for: remember its counts."""
        st = self.state
        self.pending = (sweep, st.nwk.copy(), st.nk.copy())

    def written(self, idx: int, ref: dict) -> None:
        """Shard ``idx``'s topics were written (``ref``); the checkpoint that now holds every
        shard at one sweep becomes :attr:`kept`."""
        old = self.refs[idx]
        if old is None or ref["sweep"] >= old["sweep"]:
            self.refs[idx] = ref
        p = self.pending
        if p is not None and all(r is not None and r["sweep"] == p[0] for r in self.refs):
            self.kept = (p[0], p[1], p[2], list(self.refs))
            self.pending = None

    def unwritten(self) -> list[int]:
        """Shards whose topics changed since their last checkpoint."""
        return [i for i, (r, c) in enumerate(zip(self.refs, self.changed))
                if c >= 0 and (r is None or r["sweep"] < c)]

    def settle(self, sweep: int) -> None:
        """Every shard's topics are in its checkpoint (or its seed): the current counts,
        at ``sweep``, are what a client keeps."""
        st = self.state
        self.kept = (sweep, st.nwk.copy(), st.nk.copy(), list(self.refs))

    def restored(self, idxs) -> None:
        """Shards ``idxs`` went back to their checkpoints: their topics are their refs'."""
        for i in idxs:
            self.changed[i] = -1

    # ------------------------------------------------------------ reading the state
    def counts(self) -> np.ndarray:
        return self.state.nwk

    def loglik_words(self) -> float:
        st = self.state
        return float(K_.loglik_words(st.nwk, st.nk, st.beta, st.num_terms))

    def summary(self) -> dict:
        st = self.state
        return {"nk": codec.enc(st.nk), "tokens": self.num_tokens,
                "nwk_sha1": codec.digest(st.nwk)}
