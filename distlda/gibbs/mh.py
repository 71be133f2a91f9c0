"""O(1)-per-token Metropolis-Hastings sampler in WarpLDA's cache-friendly order.

LightLDA (Yuan et al. 2015) draws each token's new topic by Metropolis-Hastings, alternating a
*word proposal* q_w(k) ~ n_wk + beta and a *doc proposal* q_d(k) ~ n_dk + alpha_k, each drawn
in O(1). Visiting tokens in document order, every MH step reads an alias entry, a word row and
the document counts at random places (about 400 ns a step here). WarpLDA (Chen et al., VLDB
2016) reorders the work so that each phase streams one table:

- **doc phase** (tokens grouped by document, the chunk's own order): the acceptance of a word
  proposal needs only n_dk (one small vector per document, updated immediately) and n_k, since
  the proposal's weight cancels the target's word factor; the new doc proposals are the topics
  of random *other* tokens of the same document (their topics are an alias table of n_dk^{-i})
  or a draw from alpha.
- **word phase** (tokens grouped by word, through the index kept in the :class:`Workspace`):
  the acceptance of a doc proposal needs only the word's row of ``nwk`` (rebuilt from the
  word's tokens in a scratch that stays in L1) and n_k; the new word proposals are the topics
  of random other tokens of the same word, or uniform.

Proposals leave the token itself out (n^{-i}), so they do not depend on its current topic and
every step is a valid independence-proposal MH step: with nothing delayed the chain has
exactly the collapsed posterior as its stationary law (tested by enumeration). Counts are
*delayed* the WarpLDA way: in the word phase a token sees its document's counts as they were
at the end of the doc phase, in the doc phase its word's row as it was at the end of the word
phase; n_k and the streamed table are exact and immediate. That delay is the one approximation
(a small bias, largest for tiny documents; see tests/test_mh.py). ``nwk`` is moved at the end
of the word phase, so after every sweep ``topics``, ``nwk`` and ``nk`` are exactly consistent,
the same in-place contract as :func:`distlda.gibbs.kernels.sweep_sparse`.

Working memory per token, kept between sweeps in a :class:`Workspace` that whoever sweeps a set
of chunks owns (no module-level cache: the memory lives and dies with its owner): the
word-grouped token index (int32) and a record of ``mh_steps + 2`` topics (the one ``nwk``
counts, the one chosen by the doc phase, the proposals; int16 when K < 32768, else int32):
12 bytes a token at ``mh_steps=2`` (20 with K >= 32768). Between
sweeps the record carries the word proposals drawn at the end of the last word phase, so a
sweep is one doc phase plus one word phase; they are redrawn when the topics were changed from
outside.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Iterator

import numpy as np
from numba import njit

from distlda.gibbs import blocks as _blocks
from distlda.gibbs.jit import JIT as _JIT
from distlda.gibbs.jit import rand as _rand
from distlda.gibbs.jit import seed_state as _seed_state

if TYPE_CHECKING:  # the records of the sweep entry point (sampling imports this module)
    from distlda.gibbs.sampling import MhOptions, Prior, Tokens

#: Record fields, per token (``S = mh_steps + 2`` topics, int16 or int32).
F_Z = 0      # topic the word-topic counts ``nwk`` hold the token at
F_N = 1      # topic chosen by the doc phase, not yet moved in ``nwk``
F_P = 2      # first of ``mh_steps`` proposals

#: Default MH steps per phase. From benchmarks/bench_mh.py at equal sampling time: 2 beats 1
#: on debdesc (K=100 and 1000) and on synth-small at K=300, ties elsewhere; 4 costs ~1.7x a
#: sweep of 2 and never paid for it.
DEFAULT_MH_STEPS = 2


@njit(**_JIT)
def build_alias(weights):
    """Walker alias table of ``weights`` (float64[K], >= 0, positive sum).

    Returns
    -------
    prob : float64[K]  keep-probability of each bin
    alias : int32[K]   the other outcome of each bin
    """
    K = weights.shape[0]
    total = 0.0
    for k in range(K):
        total += weights[k]
    prob = np.empty(K)
    alias = np.arange(K).astype(np.int32)
    small = np.empty(K, np.int64)
    large = np.empty(K, np.int64)
    ns = 0
    nl = 0
    for k in range(K):
        prob[k] = weights[k] * K / total
        if prob[k] < 1.0:
            small[ns] = k
            ns += 1
        else:
            large[nl] = k
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        l = large[nl - 1]
        alias[s] = l
        prob[l] = prob[l] + prob[s] - 1.0
        if prob[l] < 1.0:
            nl -= 1
            small[ns] = l
            ns += 1
    for j in range(nl):
        prob[large[j]] = 1.0
    for j in range(ns):
        prob[small[j]] = 1.0
    return prob, alias


# ----------------------------------------------------------------------------- index and records
@njit(**_JIT)
def _count_words(words, wptr):
    """Add the token count of each word to ``wptr[word + 1]``."""
    for i in range(words.shape[0]):
        wptr[words[i] + 1] += 1


@njit(**_JIT)
def _place_words(words, offset, fill, widx):
    """Write the positions ``offset + i`` of ``words`` to their word's next slot in ``widx``."""
    for i in range(words.shape[0]):
        v = words[i]
        widx[fill[v]] = offset + i
        fill[v] += 1


def word_index(words_list, num_rows):
    """Tokens grouped by word (counting sort, stable), over chunks taken as one array.

    Returns ``(wptr int64[V+1], widx int32[N])``: word ``v``'s tokens are
    ``widx[wptr[v]:wptr[v+1]]`` (positions in the concatenated chunks), in increasing order.
    The chunks are read in place, never concatenated (that copy would set the peak memory).
    """
    wptr = np.zeros(num_rows + 1, np.int64)
    for w in words_list:
        _count_words(w, wptr)
    np.cumsum(wptr, out=wptr)
    fill = wptr[:-1].copy()
    widx = np.empty(int(wptr[-1]), np.int32)
    offset = 0
    for w in words_list:
        _place_words(w, offset, fill, widx)
        offset += w.shape[0]
    return wptr, widx


@njit(**_JIT)
def load_topics(rec, S, offset, topics):
    """Copy ``topics`` into the records' F_Z field from token ``offset`` on.

    Returns True when they were already there (the records' proposals are still valid).
    """
    same = True
    for i in range(topics.shape[0]):
        b = (offset + i) * S
        if rec[b] != topics[i]:
            same = False
            rec[b] = topics[i]
    return same


@njit(**_JIT)
def store_topics(rec, S, offset, topics):
    """Copy the records' F_Z field back into ``topics``."""
    for i in range(topics.shape[0]):
        topics[i] = rec[(offset + i) * S]


# ----------------------------------------------------------------------------- the sweep
@njit(inline="always", **_JIT)
def _search(cdf, u):
    """Smallest k with cdf[k] > u (K - 1 if none, against rounding)."""
    lo = 0
    hi = cdf.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if cdf[mid] <= u:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always", **_JIT)
def _index_below(x, n):
    """``int(x)`` clamped to ``[0, n)`` (0 when ``n < 1``), NaN and inf included: proposals
    and the picked tokens stay in range even when float64 masses overflow (two selects)."""
    x = x if x < n - 1.0 else n - 1.0   # NaN and +inf -> n - 1
    x = x if x > 0.0 else 0.0           # -inf -> 0
    return int(x)


@njit(**_JIT)
def sweep_mh(rec, mh_steps, wptr, widx, doc_ptr, nwk, nk, alpha, beta, vbeta, seed,
             fresh, all_local):
    """One WarpLDA sweep (doc phase, then word phase) over tokens held in ``rec`` (in place).

    Parameters
    ----------
    rec : int16 or int32[N * (mh_steps + 2)]
        Token records (fields F_Z, F_N, proposals), tokens in document order. On entry F_Z
        holds the topics ``nwk``/``nk`` count; on exit F_Z holds the new topics, ``nwk``/``nk``
        count them, and the proposal fields hold the word proposals of the next sweep.
    mh_steps : int
        MH steps per token in each phase.
    wptr, widx : tokens grouped by word (:func:`word_index`), rows of ``nwk``.
    doc_ptr : int64[D+1]
        Document offsets into the tokens.
    nwk : int32[V, K], nk : int32[K]
        Counts, updated in place; ``nwk`` may be a slice of the vocabulary.
    alpha : float64[K]
    beta, vbeta : float
        Topic-word prior and beta times the *global* vocabulary size.
    seed : int
    fresh : bool
        The records' proposals are not valid (first sweep, or topics changed from outside):
        draw word proposals from the current state before the doc phase.
    all_local : bool
        Every token counted in ``nk`` is in ``rec``, so a word's row of ``nwk`` is exactly its
        tokens' topics and a word proposal is the topic of a random token of the word.
        Otherwise the proposal is drawn from the row by inverse CDF (O(K) per word).
    """
    state = _seed_state(seed)
    V = wptr.shape[0] - 1
    D = doc_ptr.shape[0] - 1
    if fresh:
        set_pending(rec, mh_steps)
        state = _word_phase(rec, mh_steps, wptr, widx, 0, V, nwk, nk, alpha, beta, vbeta, state,
                            False, all_local)
    state = _doc_phase(rec, mh_steps, doc_ptr, 0, D, nk, alpha, vbeta, state)
    state = _word_phase(rec, mh_steps, wptr, widx, 0, V, nwk, nk, alpha, beta, vbeta, state,
                        True, all_local)


@njit(**_JIT)
def set_pending(rec, mh_steps):
    """F_N := F_Z for every token (before a word phase that only draws proposals)."""
    S = mh_steps + 2
    for i in range(rec.shape[0] // S):
        rec[i * S + F_N] = rec[i * S + F_Z]


@njit(**_JIT)
def _doc_phase(rec, m, doc_ptr, d0, d1, nk, alpha, vbeta, state):
    """Doc phase of :func:`sweep_mh` over documents ``d0:d1``: accept word proposals, draw
    doc proposals. Touches only those documents' tokens and ``nk``."""
    K = nk.shape[0]
    S = m + 2
    asum = 0.0
    symmetric = True
    for k in range(K):
        asum += alpha[k]
        if alpha[k] != alpha[0]:
            symmetric = False
    a_prob, a_alias = build_alias(alpha)
    inv_a0 = 1.0 / alpha[0]
    ndk = np.zeros(K, np.int32)
    for d in range(d0, d1):
        start = doc_ptr[d]
        end = doc_ptr[d + 1]
        nd = end - start
        if nd == 0:
            continue
        for i in range(start, end):
            ndk[rec[i * S + F_Z]] += 1
        for i in range(start, end):
            b = i * S
            s = rec[b + F_Z]
            ndk[s] -= 1
            nk[s] -= 1
            # The proposal n_wk^{-i} + beta (drawn without the token itself, so it does not
            # depend on the token's state) cancels the target's word factor exactly.
            for j in range(m):
                t = rec[b + F_P + j]
                num = (ndk[t] + alpha[t]) * (nk[s] + vbeta)
                den = (ndk[s] + alpha[s]) * (nk[t] + vbeta)
                state, u = _rand(state)
                # Branch-free select (t == s gives num == den, a no-op): the accept test is
                # a coin flip the branch predictor cannot learn.
                s = t if u * den < num else s
            ndk[s] += 1
            nk[s] += 1
            rec[b + F_N] = s
        # Doc proposal n_dk^{-i} + alpha_k: n_dk^{-i} is the histogram of the topics of the
        # document's *other* tokens, so drawing one of them at random samples it in O(1).
        others = nd - 1
        tot = others + asum
        for i in range(start, end):
            b = i * S
            for j in range(m):
                state, u = _rand(state)
                u *= tot
                # Both candidates, then a select: which part u falls in is unpredictable.
                jj = start + _index_below(u, others)
                jj += 1 if jj >= i else 0
                jj = min(max(jj, start), end - 1)
                t_doc = rec[jj * S + F_N]
                if symmetric:
                    t_alpha = _index_below(max(u - others, 0.0) * inv_a0, K)
                else:
                    state, v = _rand(state)
                    v *= K
                    t_alpha = min(int(v), K - 1)
                    if v - t_alpha >= a_prob[t_alpha]:
                        t_alpha = a_alias[t_alpha]
                rec[b + F_P + j] = t_doc if u < others else t_alpha
        for i in range(start, end):
            ndk[rec[i * S + F_N]] = 0
    return state


@njit(**_JIT)
def _word_phase(rec, m, wptr, widx, w0, w1, nwk, nk, alpha, beta, vbeta, state, accept,
                all_local):
    """Word phase of :func:`sweep_mh` over words (rows of ``nwk``) ``w0:w1``: move their rows,
    accept doc proposals, draw word proposals; ``accept=False`` only draws. Touches only those
    words' tokens and rows, and ``nk``."""
    K = nk.shape[0]
    S = m + 2
    kbeta = K * beta
    inv_beta = 1.0 / beta
    maxc = 1
    for v in range(w0, w1):
        maxc = max(maxc, wptr[v + 1] - wptr[v])
    bz0 = np.empty(maxc, np.int32)         # a word's tokens: topic in nwk, current topic,
    bz = np.empty(maxc, np.int32)          # proposals
    bp = np.empty(maxc * m, np.int32)
    cdf = np.empty(K)
    hist = np.zeros(K, np.int32)
    for w in range(w0, w1):
        a = wptr[w]
        c = wptr[w + 1] - a
        if c == 0:
            continue
        # Gather the word's tokens once (independent loads, so they overlap).
        for j in range(c):
            b = widx[a + j] * S
            bz0[j] = rec[b + F_Z]
            bz[j] = rec[b + F_N]
            for q in range(m):
                bp[j * m + q] = rec[b + F_P + q]
        if all_local:
            # The word's row is the histogram of its tokens' topics: build it in a small
            # scratch that stays in L1, and touch nwk (V x K, far larger than the caches) only
            # for the tokens whose topic changed during the sweep.
            row = hist
            for j in range(c):
                row[bz[j]] += 1
        else:
            # Other tokens are counted too: work on nwk's row, moved first from the topics it
            # holds to the ones the doc phase chose.
            row = nwk[w]
            for j in range(c):
                if bz0[j] != bz[j]:
                    row[bz0[j]] -= 1
                    row[bz[j]] += 1
        if accept:
            for j in range(c):
                s = bz[j]
                row[s] -= 1
                nk[s] -= 1
                # The doc proposal n_dk^{-i} + alpha cancels the target's document factor.
                for q in range(m):
                    t = bp[j * m + q]
                    num = (row[t] + beta) * (nk[s] + vbeta)
                    den = (row[s] + beta) * (nk[t] + vbeta)
                    state, u = _rand(state)
                    s = t if u * den < num else s
                row[s] += 1
                nk[s] += 1
                bz[j] = s
        # Word proposal n_wk^{-i} + beta, without the token itself (see the doc phase).
        others = c - 1
        if all_local:
            tot = others + kbeta
        else:
            acc = 0.0
            for k in range(K):
                acc += row[k] + beta
                cdf[k] = acc
            tot = acc - 1.0
        for j in range(c):
            b = widx[a + j] * S
            s = bz[j]
            rec[b + F_Z] = s
            rec[b + F_N] = s
            for q in range(m):
                state, u = _rand(state)
                u *= tot
                if all_local:
                    # The row is the histogram of the word's tokens: pick another one, or a
                    # uniform topic (both computed, then selected, as in the doc phase).
                    jj = _index_below(u, others)
                    jj += 1 if jj >= j else 0
                    jj = min(max(jj, 0), c - 1)
                    t_uni = _index_below(max(u - others, 0.0) * inv_beta, K)
                    t = bz[jj] if u < others else t_uni
                else:
                    # Inverse CDF of row + beta less the token's own 1 at s.
                    t = _search(cdf, u)
                    if t >= s:
                        t = _search(cdf, u + 1.0)
                rec[b + F_P + q] = t
        if all_local:
            for j in range(c):
                s = bz[j]
                hist[s] = 0
                if bz0[j] != s:
                    nwk[w, bz0[j]] -= 1
                    nwk[w, s] += 1
    return state


# ----------------------------------------------------------------------------- driver
class _Work:
    """Working memory of one set of chunks: word index, records, document offsets."""

    def __init__(self, words_list, docptr_list, num_rows, mh_steps, num_topics):
        self.refs = [weakref.ref(w) for w in words_list]
        self.shapes = [w.shape[0] for w in words_list]
        self.num_rows = num_rows
        self.mh_steps = mh_steps
        self.num_topics = num_topics
        self.offsets = np.concatenate(([0], np.cumsum(self.shapes, dtype=np.int64)))
        self.wptr, self.widx = word_index(words_list, num_rows)
        self.doc_ptr = np.concatenate(
            [np.asarray(p[:-1], np.int64) + o for p, o in zip(docptr_list, self.offsets)]
            + [np.array([self.offsets[-1]], np.int64)])
        # -1 never equals a topic, so the first sweep sees "topics changed" and draws proposals.
        # int16 topics halve the records: the word phase's random reads hit the caches more.
        dtype = np.int16 if _SMALL_RECORDS and num_topics <= np.iinfo(np.int16).max else np.int32
        self.rec = np.full(int(self.offsets[-1]) * (mh_steps + 2), -1, dtype)

    def matches(self, words_list, docptr_list, num_rows, mh_steps, num_topics) -> bool:
        return (num_rows == self.num_rows and mh_steps == self.mh_steps
                and num_topics == self.num_topics
                and len(words_list) == len(self.refs)
                and all(w.shape[0] == n and r() is w
                        for r, w, n in zip(self.refs, words_list, self.shapes))
                and self.doc_ptr.shape[0] == 1 + sum(p.shape[0] - 1 for p in docptr_list))


_SMALL_RECORDS = True


class Workspace:
    """The MH sampler's working memory for one set of chunks, owned by whoever sweeps them.

    Holds the word index and the token records (the proposals drawn at the end of a sweep are
    the next sweep's), built on the first sweep and rebuilt when the chunks differ (other
    ``words`` arrays, other sizes, another ``mh_steps`` or K). Keep one per set of chunks swept
    repeatedly (the local executor one per run, a cluster worker one per chunk set it holds):
    a sweep with a new workspace starts by drawing fresh proposals, so the chain differs from
    one that kept its workspace. One sweep at a time: a second, concurrent sweep with the same
    workspace raises RuntimeError.
    """

    def __init__(self) -> None:
        self._work: _Work | None = None
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Free the memory (the next sweep rebuilds it and draws fresh proposals)."""
        self._work = None

    def __reduce__(self):
        # A copied or pickled model (copy.deepcopy, joblib, scikit-learn's clone checks) sweeps
        # other chunk arrays, which this memory would not match: it starts empty (and a lock
        # cannot be copied).
        return (Workspace, ())

    @contextlib.contextmanager
    def hold(self, words_list, docptr_list, num_rows: int, mh_steps: int,
             num_topics: int) -> Iterator[_Work]:
        """The memory for these chunks (rebuilt when it is another set's), for one sweep."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this MH workspace is in use by another sweep: give each "
                               "concurrent sweep its own")
        try:
            work = self._work
            if work is None or not work.matches(words_list, docptr_list, num_rows, mh_steps,
                                                num_topics):
                self._work = None  # the old memory goes before the new is allocated
                work = _Work(words_list, docptr_list, num_rows, mh_steps, num_topics)
                self._work = work
            yield work
        finally:
            self._lock.release()


def _mix_seeds(seeds) -> int:
    h = 0x243F6A8885A308D3
    for s in seeds:
        h = ((h ^ (int(s) & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3 + 0x9E3779B97F4A7C15) \
            & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h


def _sweep_parallel(work, mh_steps, nwk, nk, alpha, beta, vbeta, seed, fresh, all_local, pool,
                    threads):
    """:func:`sweep_mh` with each phase split over ``threads`` threads of ``pool``.

    WarpLDA's parallel schedule: in the doc phase each thread owns a range of documents (their
    tokens and document counts), in the word phase a range of words (their tokens and rows of
    ``nwk``), so no count but the K totals ``nk`` has two writers; each thread works on its own
    copy of ``nk`` during a phase and the changes are summed after it (the only count a thread
    sees late, by less than a phase). Exact counts after the sweep, like the serial sweep.
    """
    doc_cut = _blocks.mass_ranges(work.doc_ptr, threads)
    word_cut = _blocks.mass_ranges(work.wptr, threads)
    rng = np.random.default_rng(seed)

    def phase(run):
        nk0 = nk.copy()
        local = [nk0.copy() for _ in range(threads)]
        seeds = rng.integers(2 ** 63, size=threads)
        list(pool.map(lambda p: run(p, local[p], np.uint64(seeds[p])), range(threads)))
        delta = sum(c.astype(np.int64) - nk0 for c in local)
        nk[:] = nk0 + delta

    def word_phase(accept):
        phase(lambda p, nk_p, sd: _word_phase(
            work.rec, mh_steps, work.wptr, work.widx, word_cut[p], word_cut[p + 1], nwk, nk_p,
            alpha, beta, vbeta, np.uint64(_seed_state(sd)), accept, all_local))

    if fresh:
        set_pending(work.rec, mh_steps)
        word_phase(False)
    phase(lambda p, nk_p, sd: _doc_phase(
        work.rec, mh_steps, work.doc_ptr, doc_cut[p], doc_cut[p + 1], nk_p, alpha, vbeta,
        np.uint64(_seed_state(sd))))
    word_phase(True)


def sweep_chunks_mh(tokens: Tokens, nwk: np.ndarray, nk: np.ndarray, prior: Prior,
                    options: MhOptions, seeds) -> None:
    """One MH sweep over several chunks jointly, against ``nwk``/``nk`` (updated in place).

    What :func:`distlda.gibbs.sampling.sweep` runs for :class:`~distlda.gibbs.sampling.
    MhOptions`, with its contract: on return ``tokens.topics`` hold the new topics and
    ``nwk``/``nk`` are their counts plus whatever the other tokens they count held before.
    The chunks are swept as one token set, so a word's tokens of all chunks form one group of
    the word phase. ``options.mh_steps`` MH steps per token in each of the two phases (>= 1);
    with ``options.threads > 1`` each phase runs on that many threads of ``options.pool``
    (:func:`_sweep_parallel`), ``nwk``/``nk`` shared and updated in place. The working memory
    is ``options.workspace`` (a fresh one when None: see :class:`Workspace`).
    """
    mh_steps = DEFAULT_MH_STEPS if options.mh_steps is None else int(options.mh_steps)
    if mh_steps < 1:
        raise ValueError(f"mh_steps must be >= 1, got {mh_steps}")
    alpha, beta, vbeta = prior.alpha, prior.beta, prior.vbeta
    if not beta > 0 or not np.all(np.asarray(alpha) > 0):
        raise ValueError("the MH sampler needs alpha > 0 and beta > 0")
    words_list = list(tokens.words)
    if not words_list or sum(w.shape[0] for w in words_list) == 0:
        return
    space = options.workspace if options.workspace is not None else Workspace()
    with space.hold(words_list, tokens.doc_ptr, nwk.shape[0], mh_steps, nk.shape[0]) as work:
        S = mh_steps + 2
        valid = True
        for t, off in zip(tokens.topics, work.offsets[:-1]):
            valid &= bool(load_topics(work.rec, S, int(off), t))
        all_local = int(nk.sum(dtype=np.int64)) == int(work.offsets[-1])
        alpha = np.ascontiguousarray(alpha, dtype=np.float64)
        seed = _mix_seeds(seeds)
        if options.pool is not None and options.threads > 1:
            _sweep_parallel(work, mh_steps, nwk, nk, alpha, float(beta), float(vbeta), seed,
                            not valid, all_local, options.pool, int(options.threads))
        else:
            sweep_mh(work.rec, mh_steps, work.wptr, work.widx, work.doc_ptr, nwk, nk, alpha,
                     float(beta), float(vbeta), np.uint64(seed), not valid, all_local)
        for t, off in zip(tokens.topics, work.offsets[:-1]):
            store_topics(work.rec, S, int(off), t)
