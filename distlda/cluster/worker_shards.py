"""A worker's shards in a session whose corpus is a shard set: read from the set by the
worker itself, their topics from a checkpoint or a seed, counted for a recount, written to
checkpoints in the background, and reported as row changes only (the dispatcher holds no
topics). Mixed into :class:`distlda.cluster.worker_session.WorkerSession`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from distlda.cluster import codec
from distlda.cluster.messages import (
    ChunkLoad,
    DenseSlice,
    Job,
    JobResult,
    Moves,
    SessionConfig,
    ShardLoad,
)
from distlda.errors import CorpusFormatError, LimitError, ProtocolError
from distlda.gibbs import kernels as K_


class HeldShards:
    """The shard methods of a worker session (its ``config``, ``chunks``, ``load``)."""

    config: SessionConfig
    chunks: dict
    name: str
    wdt: np.dtype
    tdt: np.dtype
    _corpus: Any
    _writer: threading.Thread | None
    _written: list

    if TYPE_CHECKING:  # the session's own, which these methods use
        @property
        def num_tokens(self) -> int: ...

        def load(self, chunks: list[ChunkLoad]) -> int: ...

        def _row_changes(self, snaps) -> tuple[list, int]: ...

    def load_shards(self, items: list[ShardLoad], max_memory: int) -> list[dict]:
        """Hold the shards ``items``: their tokens read from the session's shard set (checksums
        verified), their topics as each item says. Returns, per shard, its index, its sorted
        distinct word ids and their token counts (int32, int64): what the dispatcher needs
        to cut the vocabulary and to know each worker's rows.

        Raises
        ------
        CorpusFormatError
            A shard file is missing or damaged (the message names it).
        CheckpointError
            A checkpoint to start from is missing or damaged.
        LimitError
            Holding these shards would take more than ``max_memory`` bytes.
        """
        from distlda.corpora.checkpoints import CheckpointStore
        from distlda.corpora.sharded import ShardedCorpus
        sh = self.config.shards
        assert sh is not None  # checked by ShardLoad.from_wire
        tokens = self.num_tokens + sum(sh.sizes[it.idx] for it in items)
        need = 4 * self.config.num_topics * self.config.num_terms + 20 * tokens
        if need > max_memory:
            raise LimitError(f"worker {self.name} refuses to hold {tokens} tokens: it needs "
                             f"{need / 2**30:.2f} GiB, more than the {max_memory / 2**30:.2f} "
                             f"GiB it may use (--max-memory); add workers")
        if self._corpus is None and not sh.inline:
            try:
                self._corpus = ShardedCorpus(sh.url)
            except (OSError, ImportError) as e:  # a folder this machine does not see
                raise CorpusFormatError(
                    f"worker {self.name} cannot read the shard set at {sh.url} ({e}): every "
                    f"machine must reach it (a shared folder at the same path, or an object "
                    f"store with its credentials in each worker's environment)") from None
        out, loaded = [], {}
        for it in items:
            if it.words is not None and it.doc_ptr is not None:  # an inline set's
                words, ptr = it.words, it.doc_ptr
            else:
                words, ptr = self._corpus.read_shard(it.idx)
            if words.shape[0] != sh.sizes[it.idx]:
                raise ProtocolError(f"shard {it.idx} of {sh.url} has {words.shape[0]} tokens, "
                                    f"the session says {sh.sizes[it.idx]}")
            if it.topics is not None:
                topics = np.array(it.topics, np.int32)
            elif it.ref is not None:
                topics = np.asarray(CheckpointStore(it.ref.get("dir") or sh.checkpoint).read(
                    it.ref, words.shape[0], self.config.num_topics), np.int32)
            else:
                topics = np.empty(words.shape[0], np.int32)
                K_.init_topics(topics, self.config.num_topics, it.seed)
            loaded[it.idx] = ChunkLoad(it.idx, np.array(words) if sh.inline else words,
                                       np.array(ptr, np.int64), topics)
            uniq, freq = np.unique(words, return_counts=True)
            out.append({"idx": it.idx, "words": uniq.astype(np.int32),
                        "freq": freq.astype(np.int64)})
        self.load(list(loaded.values()))  # all read before any is kept
        return out

    def counts(self) -> DenseSlice:
        """The word-topic counts of the committed topics of every shard held, over the
        sorted distinct words of those shards (a recount's part)."""
        K = self.config.num_topics
        words = [np.unique(c.words) for c in self.chunks.values()]
        rows = (np.unique(np.concatenate(words)).astype(np.int32) if words
                else np.zeros(0, np.int32))
        nwk = np.zeros((rows.shape[0], K), np.int32)
        nk = np.zeros(K, np.int32)
        for c in self.chunks.values():
            K_.count_assignments(np.searchsorted(rows, c.words).astype(np.int32), c.topics,
                                 nwk, nk, 1)
        return DenseSlice(rows, nwk)

    def export(self, idxs) -> list[np.ndarray]:
        """The committed topics of shards ``idxs`` (moved to another worker)."""
        return [self.chunks[i].topics for i in idxs]

    def doc_stats(self, alpha: np.ndarray) -> tuple[float, tuple]:
        """The documents' part of log p(w, z) and the document-topic count histograms
        (:func:`distlda.gibbs.hyper.count_histograms`) of the shards held."""
        from distlda.gibbs.hyper import count_histograms
        chunks = list(self.chunks.values())
        ll = sum(float(K_.loglik_docs(c.topics, c.doc_ptr, alpha)) for c in chunks)
        return ll, count_histograms(chunks, self.config.num_topics)

    def checkpoint(self, sweep: int, protect: tuple = ()) -> None:
        """Write the topics of every shard held, as they are now (committed: called between
        sweeps), to the session's checkpoint place, in the background; :meth:`checkpoints`
        returns what was written. A checkpoint waits for the one before it. Each shard keeps
        its two newest checkpoints and those of the sweeps in ``protect`` (which models kept
        by the client refer to)."""
        from distlda.corpora.checkpoints import CheckpointStore
        sh = self.config.shards
        if sh is None or sh.inline:
            raise ProtocolError("checkpoint: an in-memory corpus's session has no checkpoint "
                                "place (its client keeps the topics)")
        K = self.config.num_topics
        dt = codec.topic_dtype(K)
        snap = [(i, c.topics.astype(dt)) for i, c in self.chunks.items()]  # 1-2 bytes a token
        before = self._writer
        store = CheckpointStore(sh.checkpoint)  # (a malformed place raises here, not later)

        def write():
            if before is not None:
                before.join()
            for i, z in snap:
                try:
                    ref = dict(store.write(i, sweep, z, K), dir=sh.checkpoint)
                    store.prune(i, keep=2, protect=protect)
                except Exception as e:  # reported, not raised: the training goes on
                    self._written.append((i, None, f"{type(e).__name__}: {e}"))
                    continue
                self._written.append((i, ref, None))

        self._writer = threading.Thread(target=write, name=f"checkpoint-{sweep}", daemon=True)
        self._writer.start()

    def checkpoints(self, wait: float = 0.0) -> tuple[list, bool]:
        """The checkpoints written since the last call, ``(shard, ref or None, error or None)``,
        and whether writing is still going on (waiting at most ``wait`` s for it to end)."""
        w = self._writer
        if w is not None:
            w.join(wait)
        out = []
        while self._written:
            out.append(self._written.pop(0))
        return out, bool(w is not None and w.is_alive())

    def _report_changes(self, job: Job, ranges, snaps, old, new, ntok: int, moved: int):
        """A job's result: only how the rows changed (changed rows, or the moves with their
        words), never the topics, which stay here (the dispatcher holds none)."""
        if snaps:
            parts, _ = self._row_changes(snaps)
            return JobResult(job.job, ntok, moved, parts)
        words = []
        for i, o, (lo, hi) in zip(job.idxs, old, ranges):
            w = np.empty(o.shape[0], self.wdt)
            K_.gather_ranges(self.chunks[i].words, lo, hi, w)
            words.append(w)
        w, o, n = (np.concatenate(a) if a else np.zeros(0, self.tdt)
                   for a in (words, old, new))
        keep = o != n
        return JobResult(job.job, ntok, moved,
                         [Moves(w[keep], o[keep].astype(self.tdt), n[keep].astype(self.tdt))])
