"""Which worker sweeps which chunk, and which vocabulary block, at each step. Pure functions.

The dispatcher keeps chunks (shards) where they are (a worker keeps its tokens across jobs),
gives chunks nobody holds to the least-loaded workers, and moves whole chunks from the busiest
to the least busy workers only after the membership changed.
"""

from __future__ import annotations

import numpy as np

from distlda.gibbs import blocks


def assign(sizes: list[int], holdings: dict[str, set], owned: set, rebalance: bool) -> dict:
    """Target chunk sets per worker.

    Parameters
    ----------
    sizes : list of int
        Tokens per chunk.
    holdings : dict of str to set of int
        The chunks each worker holds now.
    owned : set of int
        Chunks that have an owner (the others are given out).
    rebalance : bool
        Also move whole chunks from the most to the least loaded worker while that narrows
        the gap (after a membership change).

    Returns
    -------
    dict of str to set of int
    """
    load = {n: sum(sizes[i] for i in held) for n, held in holdings.items()}
    target = {n: set(held) for n, held in holdings.items()}
    if not target:
        return target
    for i in sorted((i for i in range(len(sizes)) if i not in owned), key=lambda i: -sizes[i]):
        n = min(load, key=load.__getitem__)
        target[n].add(i)
        load[n] += sizes[i]
    if rebalance and len(target) > 1:
        for _ in range(len(sizes)):
            donor, recv = max(load, key=load.__getitem__), min(load, key=load.__getitem__)
            gap = load[donor] - load[recv]
            movable = [i for i in target[donor] if sizes[i] < gap]
            if not movable:
                break
            i = max(movable, key=lambda i: sizes[i])
            target[donor].discard(i)
            target[recv].add(i)
            load[donor] -= sizes[i]
            load[recv] += sizes[i]
    return target


class BlockSchedule:
    """The vocabulary blocks of one sweep: group ``g`` resamples block ``(g + step) % P``.

    Parameters
    ----------
    freq : ndarray of int64
        Tokens per word.
    group : ndarray of int64
        The group (worker) of each chunk.
    parts : int
        P, the number of groups and blocks.
    """

    def __init__(self, freq: np.ndarray, group: np.ndarray, parts: int):
        self.cuts = blocks.vocabulary_cuts(freq, parts)
        self.group = group
        self.parts = parts

    def block(self, chunk: int, step: int) -> int:
        return blocks.block_of(self.group[chunk], step, self.parts)
