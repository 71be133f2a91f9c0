"""The dispatcher's record of its workers: who they are, what they hold, what they know.

Pure state (no network): :class:`distlda.cluster.coordinator.Coordinator` lists the name
server and pings newcomers, then records the outcome here.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


class Member:
    """One worker as the dispatcher sees it.

    Attributes
    ----------
    name, uri : str
    session : str or None
        The session the worker was reset into.
    chunks : set of int
        Chunks (shards) it holds.
    rows : ndarray or None
        Sorted word ids of its chunks (its model slice's rows); ``rowmap`` marks them.
    view : str or None
        The job whose end state its slice is, when that job was committed in the last step
        and the step was clean (every chunk swept once by its planned worker): only then can
        its next job bring the slice up to date with the other workers' changes instead of
        dense rows. Set at commit, cleared by anything that breaks that chain.
    """

    def __init__(self, name: str, uri):
        self.name = name
        self.uri = uri
        self.session: str | None = None
        self.chunks: set[int] = set()
        self.rows: np.ndarray | None = None
        self.rowmap: np.ndarray | None = None
        self.view: str | None = None
        self.proxy: Any = None  # the transport's connection, kept across jobs (one job at a time)
        self.seen = 0.0    # time.monotonic() of its last answer

    def joined(self, session: str) -> None:
        """Reset into ``session``: it holds nothing yet."""
        self.session = session
        self.chunks = set()
        self.rows_changed()

    def rows_changed(self) -> None:
        """Its chunk set changed: the model slice is rebuilt (dense rows) at its next job."""
        self.rows = self.rowmap = self.view = None

    def ensure_rows(self, chunk_words: Callable[[int], np.ndarray], num_terms: int) -> np.ndarray:
        """Compute ``rows``/``rowmap`` from its chunks' words (``chunk_words(i)``) if unknown;
        returns ``rows``."""
        if self.rows is not None:
            return self.rows
        words = [chunk_words(i) for i in sorted(self.chunks)]
        rows = (np.unique(np.concatenate(words)).astype(np.int32) if words
                else np.zeros(0, np.int32))
        self.rows, self.rowmap = rows, np.zeros(num_terms, np.bool_)
        self.rowmap[rows] = True
        return rows


class Membership:
    """All known workers by name, and whether the set changed since the last plan."""

    def __init__(self):
        self.members: dict[str, Member] = {}
        self.changed = True

    def __len__(self) -> int:
        return len(self.members)

    def get(self, name: str) -> Member | None:
        return self.members.get(name)

    def admit(self, name: str, uri) -> Member:
        m = self.members[name] = Member(name, uri)
        self.changed = True
        return m

    def remove(self, m: Member) -> bool:
        """Forget ``m``; False if it was already gone (or replaced)."""
        if self.members.get(m.name) is not m:
            return False
        del self.members[m.name]
        self.changed = True
        return True

    def in_session(self, session) -> list[Member]:
        return [m for m in self.members.values() if m.session == session]

    def names(self) -> list[str]:
        return sorted(self.members)

    def invalidate_views(self) -> None:
        """Every member gets dense rows with its next job (the last step was not clean)."""
        for m in self.members.values():
            m.view = None
