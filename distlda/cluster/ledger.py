"""The dispatcher's committed state: the one copy of the Gibbs state that counts.

Invariant (:mod:`distlda.gibbs.state`): the topic totals and the word-topic counts are, between
commits, exactly the counts of the committed topics of every chunk. A worker's result is first
*read* (:meth:`Ledger.read`: checked against the chunks, changing nothing), then *committed*
(:meth:`Ledger.commit`: the topics written, the topic totals moved by the change the result
was checked to imply). A result that never comes back, or fails its checks, changes nothing;
a re-sent chunk starts from its committed topics. The word-topic counts are recounted from
the topics when read (:meth:`Ledger.counts`): updating them move by move would cost as much
CPU as a good part of a worker's sweep.

The ledger also keeps what each worker needs for its next job: the row changes the others
committed on its words this step (*boxes*, forwarded as the workers sent them), from which
:meth:`Ledger.delta_for` builds a :class:`~distlda.cluster.messages.SliceDelta`. Pure state:
no network.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from distlda.cluster import _kernels as CK
from distlda.cluster import codec
from distlda.cluster.membership import Member
from distlda.cluster.messages import (
    ChunkLoad,
    Moves,
    MovesResult,
    ProtocolError,
    RowsResult,
    SessionConfig,
)
from distlda.gibbs import blocks
from distlda.gibbs import kernels as K_
from distlda.gibbs.chunks import Chunk
from distlda.gibbs.hyper import count_histograms
from distlda.gibbs.state import GibbsState


@dataclass
class Reading:
    """A result read and checked, ready to commit: ``parts`` per chunk (index, token ranges,
    then the new topics, or the move bits and moved topics), ``nk`` the change of the topic
    totals, ``fwd`` what the other workers get (None: they were not told), ``moved``, ``bytes``."""

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
    """The committed state of one training session.

    Parameters
    ----------
    config : SessionConfig
    helpers : concurrent.futures.Executor, optional
        Reads and writes a result in two halves, the second on ``helpers`` (the kernels release
        the GIL). Its tasks must wait for nothing.
    """

    def __init__(self, config: SessionConfig, helpers: Executor | None = None):
        super().__init__(config.num_terms)
        self.config = config
        self.state = GibbsState(config.num_topics, config.num_terms, config.alpha, config.beta)
        self.freq = np.zeros(config.num_terms, np.int64)  # tokens per word
        #: Stored as narrow as they travel (2-byte words up to 65,536 terms, 1-byte topics up
        #: to 256): the dispatcher's passes over them are memory-bound.
        self.wdt = np.dtype(np.uint16 if config.num_terms <= 65536 else np.int32)
        self.tdt = codec.topic_dtype(config.num_topics)
        self.helpers = helpers
        self._stale = False
        self._bounds: dict[int, np.ndarray] = {}
        self._bounds_key: bytes | None = None

    @property
    def num_chunks(self) -> int:
        return len(self.state.chunks)

    def sizes(self) -> list[int]:
        return [c.num_tokens for c in self.state.chunks]

    @property
    def num_tokens(self) -> int:
        return self.state.num_tokens

    def chunk_words(self, i: int) -> np.ndarray:
        """The words of chunk ``i`` (a worker's rows are the distinct ones of its chunks)."""
        return self.state.chunks[i].words

    # ------------------------------------------------------------ loading
    def load(self, chunks: list[ChunkLoad]) -> int:
        """Add chunks, in index order from the last one; returns the number held."""
        st = self.state
        cfg = self.config
        n, tokens = len(st.chunks), st.num_tokens
        for c in chunks:  # checked whole before any is kept: a refused load changes nothing
            if c.idx != n:
                raise ProtocolError(f"chunk {c.idx} arrived out of order (expected {n})")
            n, tokens = n + 1, tokens + c.words.size
            if n > cfg.num_chunks or tokens > cfg.num_tokens:
                raise ProtocolError(f"the load exceeds the corpus the session declared "
                                    f"({cfg.num_chunks} chunks, {cfg.num_tokens} tokens)")
            if not CK.sorted_in_docs(c.words, c.doc_ptr):
                raise ProtocolError(f"chunk {c.idx}: tokens must be sorted by word id within "
                                    f"each document (distlda.gibbs.blocks.sort_for_blocks)")
        for c in chunks:
            chunk = Chunk(words=np.array(c.words, self.wdt), doc_ptr=np.array(c.doc_ptr, np.int64),
                          topics=np.array(c.topics, self.tdt))
            K_.count_assignments(chunk.words, chunk.topics, st.nwk, st.nk, 1)
            self.freq += np.bincount(chunk.words, minlength=st.num_terms)
            st.chunks.append(chunk)
        return len(st.chunks)

    # ------------------------------------------------------------ the token ranges of a step
    def ranges(self, idxs, schedule, step: int) -> list:
        """Per chunk, the token ranges ``(lo, hi)`` a job resamples: its block of this step
        (cached per chunk while the cuts stay), or all its tokens (``schedule`` None)."""
        st = self.state
        if schedule is None:
            return [blocks.whole_documents(st.chunks[i]) for i in idxs]
        key = schedule.cuts.tobytes()
        if self._bounds_key != key:
            self._bounds, self._bounds_key = {}, key
        out = []
        for i in idxs:
            bp = self._bounds.get(i)
            if bp is None:
                bp = self._bounds[i] = blocks.block_ranges(st.chunks[i], schedule.cuts)
            b = schedule.block(i, step)
            out.append((bp[b], bp[b + 1]))
        return out

    # ------------------------------------------------------------ reading results
    def _halves(self, fn, items: list) -> list:
        """``[fn(x) for x in items]``, the second half on ``helpers``: a result is read and
        written while both workers wait for it."""
        half = len(items) // 2
        if half == 0 or self.helpers is None:
            return [fn(x) for x in items]
        other = self.helpers.submit(lambda: [fn(x) for x in items[half:]])
        return [fn(x) for x in items[:half]] + other.result()

    def read(self, result, idxs, ranges, peers: bool, who: str) -> Reading:
        """Check a job's result against the chunks and read the change of the topic totals,
        changing nothing. Runs in the job's thread as soon as the result arrives; it only
        reads the job's chunks, which nothing else writes while the job is out.

        Raises
        ------
        ProtocolError
            The result is malformed (its topics disagree with its row changes, a topic is out
            of range, lengths differ...): the worker is dropped. Malformed input raises
            nothing else, so that any other error is a bug here and fails the sweep
            (:func:`distlda.cluster.coordinator.failure_kind`).
        """
        bad = f"malformed result from worker {who}"
        if isinstance(result, MovesResult):
            return self._read_moves(result, idxs, ranges, peers, bad)
        return self._read_rows(result, idxs, ranges, peers, bad)

    def _read_rows(self, r: RowsResult, idxs, ranges, peers, bad) -> Reading:
        st = self.state
        K = st.num_topics
        parts = []
        for i, new, (lo, hi) in zip(idxs, r.topics, ranges):
            if new.shape[0] != int((hi - lo).sum()):
                raise ProtocolError(f"chunk {i}: {bad} (wrong number of topics)")
            parts.append((i, lo, hi, new))

        def change(part):
            i, lo, hi, new = part
            dnk = np.zeros_like(st.nk)
            return i, CK.topic_change(st.chunks[i].topics, lo, hi, new, dnk, K), dnk

        nk = np.zeros_like(st.nk)
        moved = 0
        for i, k, dnk in self._halves(change, parts):
            if k < 0:
                raise ProtocolError(f"chunk {i}: {bad} (topic out of range)")
            moved += k
            nk += dnk
        fwd = r.delta if peers else None
        if peers:
            if fwd is None:
                raise ProtocolError(f"{bad}: it does not say how its rows changed")
            dk = np.zeros(K, np.int64)
            for p in fwd:
                if not CK.row_totals(p.delta, dk):
                    raise ProtocolError(f"{bad}: row changes alter row totals")
            if not np.array_equal(dk, nk):
                raise ProtocolError(f"{bad}: its row changes disagree with its topics")
        size = sum(t.nbytes for t in r.topics) + sum(p.words.nbytes + p.delta.nbytes
                                                     for p in (fwd or []))
        return Reading(parts, nk, fwd, moved, size, "rows")

    def _read_moves(self, r: MovesResult, idxs, ranges, peers, bad) -> Reading:
        """The moves' words and old topics come from this copy, for the other workers."""
        st = self.state
        K = st.num_topics
        total = sum(t.shape[0] for t in r.new)
        words, old = np.empty(total, self.wdt), np.empty(total, self.tdt)
        new_all = np.empty(total, self.tdt)
        parts = []
        nk = np.zeros_like(st.nk)
        moved = 0
        for i, packed, new, (lo, hi) in zip(idxs, r.mask, r.new, ranges):
            if packed.dtype != np.uint8 or packed.shape[0] != (int((hi - lo).sum()) + 7) // 8:
                raise ProtocolError(f"chunk {i}: {bad}")
            c = st.chunks[i]
            k = CK.read_moves(packed, new, c.words, c.topics, lo, hi, nk, words[moved:],
                              old[moved:], K)
            if k < 0:
                raise ProtocolError(f"chunk {i}: {bad}")
            new_all[moved:moved + k] = new
            moved += k
            parts.append((i, lo, hi, packed, new))
        fwd = [Moves(words, old, new_all)] if peers else None
        size = sum(m.nbytes for m in r.mask) + sum(t.nbytes for t in r.new)
        return Reading(parts, nk, fwd, moved, size, "moves")

    # ------------------------------------------------------------ committing
    def commit(self, reading: Reading) -> None:
        """Write a read result's topics and move the topic totals with them."""
        st = self.state

        def write(part):
            i, lo, hi, *result = part
            if len(result) == 2:  # the moves form: (bits, moved topics)
                CK.apply_moves(*result, st.chunks[i].topics, lo, hi)
            else:
                K_.scatter_ranges(st.chunks[i].topics, lo, hi, result[0])

        self._halves(write, reading.parts)
        st.nk += reading.nk
        if reading.moved:
            self._stale = True

    # ------------------------------------------------------------ reading the state
    def counts(self) -> np.ndarray:
        """The exact word-topic counts of the committed topics (recounted if stale)."""
        st = self.state
        if self._stale:
            st.nwk, nk = st.recount()
            if not np.array_equal(nk, st.nk):  # nk moved move by move: they must agree
                raise RuntimeError("internal error: topic totals differ from the assignments")
            self._stale = False
        return st.nwk

    def loglik(self) -> float:
        self.counts()
        return float(self.state.log_likelihood())

    def histograms(self) -> tuple:
        return count_histograms(self.state.chunks, self.state.num_topics)

    def topics(self, start: int, stop: int) -> list[np.ndarray]:
        return [c.topics for c in self.state.chunks[start:stop]]

    def summary(self) -> dict:
        """nk, a digest of nwk and the token count, to check the client's copy."""
        nwk = self.counts()
        st = self.state
        return {"nk": codec.enc(st.nk), "tokens": st.num_tokens,
                "nwk_sha1": hashlib.sha1(np.ascontiguousarray(nwk).tobytes()).hexdigest()}
