"""A worker's state in one training session: its chunks, its model slice, and a job in phases.

Data placement: the worker keeps the tokens and topic assignments of its chunks across jobs;
with each job it receives only the word-topic rows its chunks use (dense the first time, then
only what the other workers changed in them), resamples the tokens of the job's vocabulary
block (or all of them) with the serial sampler's entry point (:func:`distlda.gibbs.sampling.
sweep`, keeping its word lists across jobs) and reports the new topics of the tokens it
resampled (a byte each, one run per document) with the rows that changed (a byte a cell when
the change fits), for the other workers; or, when that costs more, the moves: a bit a
resampled token and the new topics of those that moved (the dispatcher adds their words and
old topics). At K=100 the rows win: applying them is a vectorized pass over a block's rows
instead of a random access per move; at K=1000 the moves do. A worker never touches the
global counts: the dispatcher commits what it gets, so a worker killed at any moment loses
nothing.

A job (:meth:`WorkerSession.run`) goes through named phases: ``update`` (bring the slice to
the job's counts), ``verify`` (``DISTLDA_CHECK``), ``plan`` (the token ranges to resample),
``snapshot`` (the rows, when reporting changed rows is expected to be cheaper), ``sample``,
``report``. :attr:`WorkerSession.hold` lets a test stop a job at an exact phase.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from distlda.cluster import _kernels as CK
from distlda.cluster import codec
from distlda.cluster.messages import (
    ChunkLoad,
    DenseSlice,
    Job,
    Moves,
    RowChanges,
    SessionConfig,
)
from distlda.cluster.worker_shards import HeldShards
from distlda.errors import StaleView
from distlda.gibbs import blocks, sampling
from distlda.gibbs import kernels as K_
from distlda.gibbs import mh as _mh
from distlda.gibbs.local import sweep_threads

logger = logging.getLogger("distlda.worker")

_NO_LISTS = (np.zeros(1, np.int64), np.zeros(1, np.int32), np.zeros(1, np.int32))
#: Phases of a job, in order; :attr:`WorkerSession.hold` is called before those marked here
#: (the ones that run outside the session lock, so a held job blocks no other call).
PHASES = ("update", "verify", "plan", "snapshot", "sample", "report")
HOLD_POINTS = ("update", "snapshot", "sample", "report")


def rows_cheaper(swept: int, rows_bytes: float, moved: float, tbytes: int, per_move: int) -> bool:
    """Report a job as changed rows (with every swept token's topic) rather than as moves
    (a bit a swept token, the moved tokens' topics; the dispatcher adds words and old topics
    for the other workers)? Counts the bytes up plus the bytes on to one other worker, a move
    twice: it costs a random access at both ends where a row costs a vectorized pass."""
    rows = swept * tbytes + 2 * rows_bytes
    moves = swept / 8 + moved * (tbytes + 2 * per_move)
    return rows <= moves


class ModelSlice:
    """The rows of the word-topic counts a worker holds, and what it knows about them.

    Attributes
    ----------
    rows : ndarray of shape (R,), int32
        Sorted word ids of every word of the worker's chunks.
    rowmap : ndarray of shape (V,), int32
        Word id -> row, or -1.
    nwk : ndarray of shape (R, K), int32
    lists : tuple or None
        The sparse sampler's per-word topic lists over ``nwk`` (kept across jobs).
    view : str or None
        The job whose end state ``nwk`` is (a :class:`SliceDelta` must start from it).
    """

    def __init__(self, config: SessionConfig):
        self.config = config
        self.rows: np.ndarray | None = None
        self.rowmap: np.ndarray | None = None
        self.nwk: np.ndarray | None = None
        self.lists: tuple | None = None
        self.view: str | None = None

    def set_dense(self, model: DenseSlice) -> bool:
        """Take the dense rows; True if the set of rows changed (local word ids then too)."""
        K = self.config.num_topics
        changed = self.rows is None or not np.array_equal(model.rows, self.rows)
        self.nwk = np.array(model.dense, np.int32).reshape(model.rows.shape[0], K)
        if changed:
            self.rowmap = np.full(self.config.num_terms, -1, np.int32)
            self.rowmap[model.rows] = np.arange(model.rows.shape[0], dtype=np.int32)
        self.rows = model.rows
        # Capacity min(K, row total): a row never has more non-zero topics than tokens, and
        # moves keep the row total, so the lists never overflow.
        self.lists = (K_.build_word_lists(self.nwk, self.nwk.sum(axis=1))
                      if self.config.sampler == "sparse" else None)
        return changed

    def apply(self, parts: list, who: str) -> None:
        """Add the other workers' changes (:class:`RowChanges` or :class:`Moves`)."""
        lists = self.lists if self.lists is not None else _NO_LISTS
        keep = self.lists is not None
        for part in parts:
            if isinstance(part, RowChanges):
                ok = CK.apply_rows(self.rowmap, part.words, part.delta, self.nwk, *lists, keep)
            else:
                ok = CK.apply_foreign_moves(self.rowmap, part.words, part.old, part.new,
                                            self.nwk, *lists, keep)
            if not ok:
                raise StaleView(f"worker {who}: negative counts after an update")

    def verify(self, expect: np.ndarray, who: str) -> None:
        """Raise :class:`StaleView` unless the slice equals ``expect`` and its lists match."""
        assert self.nwk is not None and self.rows is not None  # a job's slice: set first
        bad = np.flatnonzero(self.nwk.reshape(-1) != expect.reshape(-1))
        if bad.size:
            raise StaleView(f"worker {who}: model slice differs from the dispatcher's counts "
                            f"in {bad.size} cells")
        if self.lists is not None:
            r = CK.lists_match(self.nwk, *self.lists)
            if r >= 0:
                raise StaleView(f"worker {who}: the topic list of word {self.rows[r]} is not "
                                f"its non-zero topics")

    def row_range(self, lo_word: int, hi_word: int) -> tuple[int, int]:
        """The rows of the words ``lo_word <= w < hi_word``."""
        assert self.rows is not None
        return (int(np.searchsorted(self.rows, lo_word)), int(np.searchsorted(self.rows, hi_word)))


class _Buffers:
    """Scratch arrays kept across jobs (fresh pages cost more than the passes that fill them)."""

    def __init__(self):
        self.snaps: dict[int, np.ndarray] = {}        # per changed row range: rows before
        self.delta_words: dict[int, np.ndarray] = {}  # per range: changed rows' word ids
        self.delta_cells: dict[int, np.ndarray] = {}  # per range: their int8 changes
        self.old: dict[int, np.ndarray] = {}          # per chunk: swept tokens' old topics
        self.new: dict[int, np.ndarray] = {}          # per chunk: swept tokens' new topics

    @staticmethod
    def get(store: dict, key: int, shape, dtype) -> np.ndarray:
        """``store[key]``, reallocated when its shape or dtype differ."""
        b = store.get(key)
        if b is None or b.shape != tuple(shape) or b.dtype != dtype:
            b = store[key] = np.empty(shape, dtype)
        return b

    def drop_rows(self) -> None:
        self.snaps, self.delta_words, self.delta_cells = {}, {}, {}


class WorkerSession(HeldShards):
    """A worker's chunks and model slice in one training session, and its jobs.

    Parameters
    ----------
    session : str
    config : SessionConfig
    name : str
        The worker's name (in messages).
    threads : int
        Threads a job sweeps on (>= 1). With more than one, an exact sampler's job runs the
        partitioned schedule inside the job's token ranges
        (:func:`distlda.gibbs.local.sweep_threads`), the MH sampler splits its phases; 1 runs
        the serial sweep (the chain of a one-thread worker, bit for bit).

    Raises
    ------
    ValueError
        ``threads`` is not an integer >= 1.
    """

    def __init__(self, session: str, config: SessionConfig, name: str, threads: int = 1):
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) \
                or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.threads = int(threads)
        self._pool: ThreadPoolExecutor | None = None  # the job's threads (threads > 1)
        self.session = session
        self.config = config
        self.name = name
        self.alpha = np.asarray(config.alpha, np.float64)
        self.chunks: dict[int, ChunkLoad] = {}
        self.slice = ModelSlice(config)
        self._local: dict[int, np.ndarray] = {}        # chunk -> words renumbered to rows
        self._bounds: dict[tuple, np.ndarray] = {}     # (chunk, cuts) -> block token ranges
        self._buf = _Buffers()
        self._workspaces: dict[tuple, _mh.Workspace] = {}  # chunk set -> MH sampler memory
        self._moved = 1.0                              # share of swept tokens moved, last job
        self.busy = False  # a job is running
        self._fallbacks = np.zeros(1, np.int64) if sampling.check_mode() else None
        #: Test hook: called with the phase name before each phase of a job.
        self.hold: Callable[[str], None] | None = None
        self.tdt = codec.topic_dtype(config.num_topics)
        self.wdt = np.dtype(np.uint16 if config.num_terms <= 65536 else np.int32)
        self._corpus = None                            # the shard set (a sharded session)
        self._writer: threading.Thread | None = None   # the last checkpoint's writer
        self._written: list = []                       # (shard, ref, error) not yet reported

    # ------------------------------------------------------------ chunks
    @property
    def num_tokens(self) -> int:
        return int(sum(c.words.shape[0] for c in self.chunks.values()))

    def load(self, chunks: list[ChunkLoad]) -> int:
        for c in chunks:
            self.chunks[c.idx] = c
        self.invalidate()
        return self.num_tokens

    def drop(self, idxs) -> None:
        for i in idxs:
            self.chunks.pop(int(i), None)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the model slice and everything derived from the chunk set."""
        self._local.clear()
        self._bounds.clear()
        self._buf = _Buffers()
        self._workspaces = {}
        self.slice = ModelSlice(self.config)

    # ------------------------------------------------------------ a job
    def accept(self, job: Job) -> None:
        """Check that this worker can run ``job`` (before it starts, in the caller's thread)."""
        missing = [i for i in job.idxs if i not in self.chunks]
        if missing:
            raise RuntimeError(f"worker {self.name} does not hold chunks {missing[:5]}")
        if not isinstance(job.model, DenseSlice) and (
                self.slice.view is None or job.model.base != self.slice.view):
            raise StaleView(f"worker {self.name} holds rows of job {self.slice.view}, "
                            f"not {job.model.base}")
        if job.blocks is not None and self.config.sampler not in sampling.EXACT:
            raise ValueError(f"the {self.config.sampler} sampler sweeps whole documents")

    def _phase(self, name: str) -> None:
        if self.hold is not None and name in HOLD_POINTS:
            self.hold(name)

    def run(self, job: Job, lock: threading.RLock):
        """Run ``job``: returns a :class:`JobResult`.

        ``lock`` guards the session against the remote calls that change it meanwhile; it is
        released while sampling.
        """
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            self._phase("update")
            with lock:
                tu = time.perf_counter()
                self._update(job)
                update_s = time.perf_counter() - tu
                if job.check is not None:  # the "verify" phase
                    self.slice.verify(job.check, self.name)
                self.slice.view = None
                ranges, row_ranges = self._plan(job)
            self._phase("snapshot")
            swept = int(sum((hi - lo).sum() for lo, hi in ranges))
            snaps = self._snapshot(job, swept, row_ranges)
            self._phase("sample")
            t0 = time.perf_counter()
            old, moved = self._sample(job, ranges, snaps)
            dt = time.perf_counter() - t0
            with lock:
                self.slice.view = job.job
            self._phase("report")
            tp = time.perf_counter()
            result = self._report(job, ranges, snaps, old, moved, swept)
            result.timings.update(seconds=dt, cpu_seconds=time.thread_time() - c0,
                                  update_seconds=update_s, pack_seconds=time.perf_counter() - tp,
                                  job_seconds=time.perf_counter() - w0)
            return result
        except BaseException:
            with lock:
                self.invalidate()
            raise

    def _update(self, job: Job) -> None:
        """Bring the model slice (and the sparse sampler's word lists) to the job's counts."""
        if isinstance(job.model, DenseSlice):
            if self.slice.set_dense(job.model):
                self._local.clear()
        else:
            self.slice.apply(job.model.parts, self.name)

    def _plan(self, job: Job):
        """Per chunk the token ranges to resample, and the rows the job can change."""
        rows = self.slice.rows
        assert rows is not None  # set by the job's update
        for i in job.idxs:
            if i not in self._local:
                words = self.chunks[i].words
                local = np.searchsorted(rows, words).astype(np.int32)
                if local.size and (local.max() >= rows.shape[0]
                                   or not np.array_equal(rows[local], words)):
                    raise RuntimeError(f"chunk {i}: words missing from the model slice")
                self._local[i] = local
        if job.blocks is None:
            return ([blocks.whole_documents(self.chunks[i]) for i in job.idxs],
                    [(0, rows.shape[0])])
        cuts, of = job.blocks
        key = cuts.tobytes()
        ranges = []
        for i, b in zip(job.idxs, of):
            bp = self._bounds.get((i, key))
            if bp is None:
                bp = self._bounds[(i, key)] = blocks.block_ranges(self.chunks[i], cuts)
            ranges.append((bp[b], bp[b + 1]))
        row_ranges = [self.slice.row_range(cuts[b], cuts[b + 1]) for b in sorted(set(of))]
        return ranges, row_ranges

    def _snapshot(self, job: Job, swept: int, row_ranges) -> list:
        """Copies of the rows the job can change, when reporting their changes is expected to
        cost less than the moves (guessed from the last job's share of moved tokens)."""
        K, nwk = self.config.num_topics, self.slice.nwk
        assert nwk is not None
        per_move = self.wdt.itemsize + 2 * self.tdt.itemsize
        n_rows = sum(hi - lo for lo, hi in row_ranges)
        per_token = 0 if self.config.shards is not None else swept  # topics travel, or not
        if not (job.peers and rows_cheaper(per_token, 0.8 * n_rows * (K + self.wdt.itemsize),
                                           self._moved * swept, self.tdt.itemsize, per_move)):
            self._buf.drop_rows()  # moves: the rows' buffers (4 bytes a cell) need not stay
            return []
        snaps = []
        for q, (lo, hi) in enumerate(row_ranges):
            s = _Buffers.get(self._buf.snaps, q, (hi - lo, K), nwk.dtype)
            np.copyto(s, nwk[lo:hi])
            snaps.append((lo, s))
        return snaps

    def _sample(self, job: Job, ranges, snaps):
        """Resample; returns the swept tokens' old topics (when needed) and the move count."""
        cfg = self.config
        exact = cfg.sampler in sampling.EXACT  # counts its moves, sweeps blocks
        topics = [self.chunks[i].topics for i in job.idxs]
        # The swept tokens' old topics: for the moves form, and to count the MH sampler's moves.
        old = []
        if not exact or (job.peers and not snaps):
            for i, t, (lo, hi) in zip(job.idxs, topics, ranges):
                o = _Buffers.get(self._buf.old, i, t.shape, self.tdt)
                old.append(o[:K_.gather_ranges(t, lo, hi, o)])
        tokens = sampling.Tokens([self._local[i] for i in job.idxs], topics,
                                 [self.chunks[i].doc_ptr for i in job.idxs],
                                 ranges if exact else None)
        prior = sampling.Prior(job.alpha, cfg.beta, cfg.beta * cfg.num_terms)
        nwk = self.slice.nwk
        assert nwk is not None  # set by the job's "update" phase
        options = self._options(job.idxs)
        moved: int | None
        if exact and self.threads > 1:  # the job's documents and rows cut in T parts each
            moved = sweep_threads(tokens, nwk, job.nk, prior, options, job.seeds,
                                  self._executor(), self.threads)
        else:
            moved = sampling.sweep(tokens, nwk, job.nk, prior, options, job.seeds)
        sampling.report_fallbacks(self._fallbacks, f"worker {self.name}, job {job.job[:8]}")
        return old, moved

    def _executor(self) -> ThreadPoolExecutor:
        """The session's pool of :attr:`threads` threads (made on the first threaded job)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="sweep")
        return self._pool

    def _options(self, idxs) -> sampling.Options:
        """The sampler's options; for MH the memory of this chunk set, kept across jobs (one
        job runs at a time; a set sharing a chunk with it is superseded and freed)."""
        cfg = self.config
        if cfg.sampler == "sparse":
            return sampling.SparseOptions(self.slice.lists, self._fallbacks)
        if cfg.sampler == "dense":
            return sampling.DenseOptions(self._fallbacks)
        key = tuple(idxs)
        space = self._workspaces.get(key)
        if space is None:
            for old in [k for k in self._workspaces if set(k) & set(key)]:
                del self._workspaces[old]
            space = self._workspaces[key] = _mh.Workspace()
        if self.threads > 1:  # each phase split over the session's threads
            return sampling.MhOptions(cfg.mh_steps, space, self._executor(), self.threads)
        return sampling.MhOptions(cfg.mh_steps, space)

    def _report(self, job: Job, ranges, snaps, old, moved, swept):
        """What the job tells the dispatcher: how the rows changed, either the changed rows
        (``snaps`` being the rows as they were) or the moves with their words, whichever was
        guessed cheaper (:func:`rows_cheaper`); never the topics, which stay here."""
        new = []
        for i, (lo, hi) in zip(job.idxs, ranges):
            t = self.chunks[i].topics
            nw = _Buffers.get(self._buf.new, i, t.shape, self.tdt)
            new.append(nw[:K_.gather_ranges(t, lo, hi, nw)])
        if moved is None:
            moved = sum(int(np.count_nonzero(o != nw)) for o, nw in zip(old, new))
        self._moved = moved / max(swept, 1)
        ntok = sum(self.chunks[i].topics.shape[0] for i in job.idxs)
        return self._report_changes(job, ranges, snaps, old, new, ntok, moved)

    def _row_changes(self, snaps) -> tuple[list, int]:
        """The changed rows against ``snaps``: a byte a cell, 4 for the rare larger rows."""
        nwk, rows = self.slice.nwk, self.slice.rows
        parts: list[RowChanges] = []
        size = 0
        for q, (lo, s) in enumerate(snaps):
            ow = _Buffers.get(self._buf.delta_words, q, (s.shape[0],), self.wdt)
            od = _Buffers.get(self._buf.delta_cells, q, s.shape, np.int8)
            cap = min(64, s.shape[0])
            while True:
                bw, bd = np.empty(cap, self.wdt), np.empty((cap, s.shape[1]), np.int32)
                n, nb = CK.row_delta(nwk, s, lo, rows, 127, ow, od, bw, bd)
                if nb <= cap:
                    break
                cap = nb
            for w_, d_ in ((ow[:n], od[:n]), (bw[:nb], bd[:nb])):
                if w_.shape[0] or not parts:
                    parts.append(RowChanges(w_, d_))
                    size += d_.nbytes + w_.nbytes
        return parts, size


__all__ = ["WorkerSession", "ModelSlice", "StaleView", "rows_cheaper", "PHASES", "HOLD_POINTS",
           "Moves"]
