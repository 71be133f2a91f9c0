"""The one place the compiled kernels are configured, and the random numbers they draw.

Every numba function of distlda (the serial sampler's and the cluster's) is compiled with
``cache=True`` (the first run on a machine compiles for ~20 s; later runs load the cache) and
``nogil=True`` (threads and a worker's job thread run kernels while other threads work).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Options of every kernel.
JIT = dict(cache=True, nogil=True)


def kernel(fn=None, **options):
    """``numba.njit`` with :data:`JIT` (plus ``options``, e.g. ``fastmath=True``)."""
    opts = {**JIT, **options}
    if fn is None:
        return lambda f: njit(**opts)(f)
    return njit(**opts)(fn)


@kernel(inline="always")
def rand(state):
    """splitmix64: next state and a uniform float in [0, 1) (53 bits); a few ns, no table."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return state, float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel(inline="always")
def seed_state(seed):
    """A splitmix64 state from a 64-bit seed (scrambled, so nearby seeds give unrelated streams)."""
    return np.uint64(seed) * np.uint64(0x2545F4914F6CDD1D) + np.uint64(0x632BE59BD9B4E019)
