"""Where a model's topic assignments are when its corpus is a shard set trained on a cluster.

Such a model holds the counts (topic-word counts and topic totals) but not the tokens nor their
topics: the tokens stay in the shard set, and each shard's topics in a checkpoint file
(:mod:`distlda.corpora.checkpoints`) that the workers wrote. :class:`ShardAssignments` is the
model's reference to both: the set's URL and manifest checksum, the checkpoint place and, per
shard, its size, its seed (its first topics) and its checkpoint (None: its first topics). The
model's counts are exactly the counts of those topics; a set or a checkpoint that changed or
went away is refused (:meth:`ShardAssignments.open`).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from distlda.errors import CheckpointError, CorpusFormatError
from distlda.gibbs import kernels as K_

#: Checkpoints: every this many sweeps, or seconds, whichever comes first; the first after
#: the third number of seconds (:class:`distlda.cluster.coordinator.CheckpointClock`).
DEFAULT_EVERY = (10, 60.0, 20.0)


def absolute(url: str) -> str:
    """A local path made absolute (every machine must find the same folder); a URL as is."""
    return url if "://" in url else os.path.abspath(url)


def new_run(place: str) -> str:
    """A fresh folder for one training's checkpoints: ``PLACE/<time>-<random>``."""
    run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    return f"{place.rstrip('/')}/{run}"


@dataclass
class ShardAssignments:
    """A model's topic assignments, kept with its shard set (see the module docstring).

    Attributes
    ----------
    url : str
        The shard set (folder or fsspec URL).
    manifest_sha256 : str
        Its manifest's checksum when the model was trained.
    place : str
        Where the trainings' checkpoint folders go (folder or fsspec URL): each training
        writes a folder of its own there (:func:`new_run`), so that a model saved before
        keeps its files whatever trainings come after.
    checkpoint : str
        The folder of the current (or last) training's checkpoints; each reference names
        its own folder (``dir``).
    sizes, docs : list of int
        Tokens and documents per shard.
    seeds : ndarray of shape (shards,), uint32
        Per shard, the seed of its first topics.
    refs : list of dict or None
        Per shard, the checkpoint of its topics (None: its first topics, from its seed).
    every : tuple
        (sweeps, seconds, first seconds) between checkpoints.
    """

    url: str
    manifest_sha256: str
    place: str
    checkpoint: str
    sizes: list
    docs: list
    seeds: np.ndarray
    refs: list
    every: tuple = DEFAULT_EVERY
    _corpus: Any = field(default=None, repr=False, compare=False)
    fresh: bool = field(default=False, repr=False, compare=False)

    @property
    def num_tokens(self) -> int:
        return int(sum(self.sizes))

    @property
    def num_docs(self) -> int:
        return int(sum(self.docs))

    @property
    def num_shards(self) -> int:
        return len(self.sizes)

    @classmethod
    def start(cls, corpus, place: str | None, rng: np.random.Generator,
              every: tuple = DEFAULT_EVERY) -> ShardAssignments:
        """The assignments of a first training on ``corpus`` (a ShardedCorpus): every shard
        from a fresh seed; checkpoint folders at ``place`` (default: ``URL/checkpoints``
        beside the set), the first made by :meth:`begin_run`."""
        infos = [corpus.shard(i) for i in range(corpus.num_shards)]
        url = absolute(corpus.url)
        place = absolute(place) if place else f"{url.rstrip('/')}/checkpoints"
        a = cls(url, corpus.manifest_sha256, place, "",
                [s.num_tokens for s in infos], [s.num_docs for s in infos],
                rng.integers(2 ** 32, size=len(infos)).astype(np.uint32), [None] * len(infos),
                tuple(every))
        a._corpus = corpus
        return a

    def begin_run(self, place: str | None = None) -> None:
        """A training starts: its checkpoints go to a folder of their own (under ``place``
        if given, else the model's), checked to be writable before any sweep.

        Raises
        ------
        CheckpointError
            The folder cannot be written.
        ValueError
            ``memory://``: this process's own memory, which the workers cannot reach.
        """
        from distlda.corpora.checkpoints import CheckpointStore
        if place:
            self.place = absolute(place)
        for what, url in (("shard set", self.url), ("checkpoint place", self.place)):
            if url.startswith("memory://"):
                raise ValueError(f"the {what} {url} is in this process's memory, which the "
                                 f"cluster's workers cannot reach: use a folder every machine "
                                 f"reads or an object store (s3://...)")
        self.checkpoint = new_run(self.place)
        CheckpointStore(self.checkpoint).probe()
        self.fresh = True  # its folder holds nothing yet: the next training uses it

    # ------------------------------------------------------------ checks
    def open(self, check_refs: bool = True):
        """The shard set, checked to be the one the model was trained on, and (with
        ``check_refs``) every checkpoint present.

        Raises
        ------
        CorpusFormatError
            The set is gone or was rewritten (its manifest changed).
        CheckpointError
            A checkpoint file is gone.
        """
        from distlda.corpora.sharded import ShardedCorpus
        c = self._corpus
        if c is None:
            try:
                c = ShardedCorpus(self.url)
            except FileNotFoundError as e:
                raise CorpusFormatError(f"the model's shard set is gone: {e}") from None
        if c.manifest_sha256 != self.manifest_sha256 or c.num_shards != self.num_shards:
            raise CorpusFormatError(f"the shard set at {self.url} changed since the model was "
                                    f"trained on it (its manifest.json differs): the model's "
                                    f"topic assignments no longer match its tokens; train a new "
                                    f"model on it")
        self._corpus = c
        if check_refs:
            from distlda.corpora.checkpoints import CheckpointStore
            for i, r in enumerate(self.refs):
                where = self.folder(r)
                if r is not None and not CheckpointStore(where).exists(r):
                    raise CheckpointError(f"the checkpoint of shard {i} is gone: "
                                          f"{where}/{r['file']} (the model's topic "
                                          f"assignments were kept there; restore the folder, "
                                          f"or train a new model)")
        return c

    # ------------------------------------------------------------ reading the topics
    def topics(self, i: int, num_topics: int) -> np.ndarray:
        """Shard ``i``'s topics (int32): its checkpoint's, or drawn from its seed."""
        r = self.refs[i]
        if r is None:
            z = np.empty(self.sizes[i], np.int32)
            K_.init_topics(z, num_topics, int(self.seeds[i]))
            return z
        from distlda.corpora.checkpoints import CheckpointStore
        return np.asarray(CheckpointStore(self.folder(r)).read(r, self.sizes[i], num_topics),
                          np.int32)

    def folder(self, ref: dict | None) -> str:
        """The folder of checkpoint ``ref``."""
        return (ref or {}).get("dir") or self.checkpoint

    def iter_shards(self, num_topics: int) -> Iterator[tuple[int, np.ndarray, np.ndarray,
                                                             np.ndarray]]:
        """``(shard, words, doc_ptr, topics)`` of each shard in order, one in memory at a
        time (checked: :meth:`open`)."""
        c = self.open()
        for i in range(self.num_shards):
            words, ptr = c.read_shard(i)
            yield i, words, np.asarray(ptr, np.int64), self.topics(i, num_topics)

    # ------------------------------------------------------------ the model file
    def to_dict(self) -> dict:
        return {"url": self.url, "manifest_sha256": self.manifest_sha256,
                "place": self.place, "checkpoint": self.checkpoint, "sizes": [int(n) for n in self.sizes],
                "docs": [int(n) for n in self.docs],
                "seeds": [int(s) for s in self.seeds], "refs": list(self.refs),
                "every": list(self.every)}

    @classmethod
    def from_dict(cls, d: dict) -> ShardAssignments:
        """Raises KeyError, TypeError or ValueError when ``d`` lacks a field or has one of
        the wrong form (the model file's reader names the file)."""
        n = len(d["sizes"])
        if not (len(d["docs"]) == len(d["seeds"]) == len(d["refs"]) == n):
            raise ValueError("one size, document count, seed and checkpoint per shard")
        return cls(str(d["url"]), str(d["manifest_sha256"]),
                   str(d.get("place") or d["checkpoint"]), str(d["checkpoint"]),
                   [int(x) for x in d["sizes"]], [int(x) for x in d["docs"]],
                   np.array(d["seeds"], np.uint32), [None if r is None else dict(r)
                                                     for r in d["refs"]],
                   tuple(d.get("every", DEFAULT_EVERY)))
