"""The one place the compiled kernels are configured, and the random numbers they draw.

Every numba function of distlda (the serial sampler's and the cluster's) is compiled with
``cache=True`` (the first run on a machine compiles for ~20 s; later runs load the cache) and
``nogil=True`` (threads and a worker's job thread run kernels while other threads work).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

#: Options of every kernel (``dict[str, Any]``: spread into ``njit``'s typed keywords).
JIT: dict[str, Any] = dict(cache=True, nogil=True)


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


@intrinsic
def prefetch(typingctx, arr, row, col):
    """Hint the CPU to fetch the cache line of ``arr[row, col]`` (a 2-d C array) for reading.

    Not a memory access: no fault and no effect on results, whatever the indices (callers still
    pass valid ones). The samplers prefetch the count rows of the next tokens' words, which
    hides the cache misses of a random row per token (measured at K=100: about 2x per sweep).
    """
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, a, t, types.intp) for a, t in zip(args[1:], signature.args[1:])]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx)
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read (0), high temporal locality (3), data cache (1)
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@kernel(inline="always")
def prefetch_row(nwk, w):
    """Prefetch all of row ``w`` of an int32 count table (one hint per 64-byte line)."""
    for c in range(0, nwk.shape[1], 16):
        prefetch(nwk, w, c)
