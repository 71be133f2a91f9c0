"""Compiled hot loops of the collapsed Gibbs sampler (numba, ``nogil`` so threads run in parallel).

Data layout (LightLDA's): a *chunk* of documents is three contiguous arrays,

- ``words``  int32[N]   word id of every token, documents back to back,
- ``topics`` int32[N]   topic assignment of every token, beside ``words``,
- ``doc_ptr`` int64[D+1] token offsets, document ``d`` is ``words[doc_ptr[d]:doc_ptr[d+1]]``.

Counts are int32: ``nwk`` (V x K, one contiguous row per word so the sampler reads a word's
topic counts from one cache line run) and ``nk`` (K). Every kernel takes the count arrays it
updates as arguments and allocates nothing global, so the same function serves the serial
model, the threads of one process and the cluster workers (each on its own model slice).
"""

import math

import numpy as np
from numba import njit

from distlda.gibbs.jit import JIT as _JIT
from distlda.gibbs.jit import prefetch_row as _prefetch_row
from distlda.gibbs.jit import rand as _rand
from distlda.gibbs.jit import seed_state as _seed_state

#: sweep_sparse computes a word's q bucket over the dense row when its list of non-zero topics
#: is longer than K / DENSE_Q (chosen by measurement at K=100 and K=1000).
DENSE_Q = 8


@njit(**_JIT)
def count_assignments(words, topics, nwk, nk, sign):
    """Add ``sign`` (+1 or -1) times the counts of (word, topic) assignments to nwk and nk."""
    for i in range(words.shape[0]):
        nwk[words[i], topics[i]] += sign
        nk[topics[i]] += sign


@njit(**_JIT)
def init_topics(topics, num_topics, seed):
    """Uniform random initial topics (in place), reproducible from ``seed``.

    Every topic is in ``[0, num_topics)`` (no masses involved); ``num_topics < 1`` raises.
    """
    if num_topics < 1:
        raise ValueError("init_topics: num_topics must be >= 1")
    np.random.seed(seed)
    for i in range(topics.shape[0]):
        topics[i] = np.random.randint(0, num_topics)


@njit(**_JIT)
def build_word_lists(nwk, local_counts):
    """Per-word lists of the topics with a non-zero count, for the sparse ``q`` bucket.

    The list of word ``v`` gets capacity ``min(K, nnz(nwk[v]) + local_counts[v])``: a sweep can
    only create a new non-zero entry by moving one of the tokens it holds, so the lists never
    overflow, and their total size is bounded by the number of tokens rather than V x K.

    Returns
    -------
    wt_ptr : int64[V+1]  start of each word's list in ``wt_top``
    wt_len : int32[V]    current length of each list
    wt_top : int32[...]  topic ids
    """
    V, K = nwk.shape
    wt_ptr = np.empty(V + 1, np.int64)
    wt_len = np.zeros(V, np.int32)
    wt_ptr[0] = 0
    for v in range(V):
        nnz = 0
        for k in range(K):
            if nwk[v, k] != 0:
                nnz += 1
        wt_len[v] = nnz
        wt_ptr[v + 1] = wt_ptr[v] + min(K, nnz + local_counts[v])
    wt_top = np.empty(wt_ptr[V], np.int32)
    for v in range(V):
        p = wt_ptr[v]
        for k in range(K):
            if nwk[v, k] != 0:
                wt_top[p] = k
                p += 1
    return wt_ptr, wt_len, wt_top


@njit(**_JIT)
def sort_doc_tokens(words, topics, doc_ptr):
    """Order each document's tokens by word id, in place (topics move with their words).

    Token order inside a document means nothing to LDA; sorted, the tokens of any contiguous
    range of word ids form one contiguous run per document (see :func:`block_bounds`).
    Returns False if nothing had to move.
    """
    moved = False
    for d in range(doc_ptr.shape[0] - 1):
        a, b = doc_ptr[d], doc_ptr[d + 1]
        ok = True
        for i in range(a + 1, b):
            if words[i] < words[i - 1]:
                ok = False
                break
        if ok:
            continue
        moved = True
        order = np.argsort(words[a:b], kind="mergesort")
        w = words[a:b].copy()
        t = topics[a:b].copy()
        for j in range(b - a):
            words[a + j] = w[order[j]]
            topics[a + j] = t[order[j]]
    return moved


@njit(**_JIT)
def block_bounds(words, doc_ptr, cuts):
    """Token ranges of vocabulary blocks in a chunk whose documents are sorted by word id.

    Block ``b`` is the word ids ``cuts[b] <= w < cuts[b+1]``; returns ``bp`` int64[B+1, D]
    with block ``b`` of document ``d`` at tokens ``bp[b, d]:bp[b+1, d]``.
    """
    B = cuts.shape[0] - 1
    D = doc_ptr.shape[0] - 1
    bp = np.empty((B + 1, D), np.int64)
    for d in range(D):
        a, e = doc_ptr[d], doc_ptr[d + 1]
        bp[0, d] = a
        i = a
        for b in range(1, B):
            while i < e and words[i] < cuts[b]:
                i += 1
            bp[b, d] = i
        bp[B, d] = e
    return bp


@njit(**_JIT)
def split_ranges(words, lo, hi, cuts):
    """Cut each token range ``[lo[d], hi[d])`` of a chunk sorted by word id in each document
    into the word ranges ``cuts[b] <= w < cuts[b+1]`` (binary searches within the range).

    Returns ``sp`` int64[B+1, D]: sub-range ``b`` of range ``d`` is tokens ``sp[b, d]:sp[b+1, d]``
    (``sp[0] == lo``, ``sp[B] == hi``); words below ``cuts[0]`` fall in sub-range 0, words from
    ``cuts[B]`` on in sub-range ``B - 1``.
    """
    B = cuts.shape[0] - 1
    D = lo.shape[0]
    sp = np.empty((B + 1, D), np.int64)
    for d in range(D):
        a, e = lo[d], hi[d]
        sp[0, d] = a
        for b in range(1, B):
            c = cuts[b]
            x, y = a, e  # first token in [a, e) with word >= c
            while x < y:
                m = (x + y) >> 1
                if words[m] < c:
                    x = m + 1
                else:
                    y = m
            sp[b, d] = x
            a = x
        sp[B, d] = e
    return sp


@njit(**_JIT)
def gather_ranges(src, lo, hi, out):
    """Copy ``src[lo[d]:hi[d]]`` for every ``d``, one range after the other, into ``out``
    (cast to its dtype); returns the number copied: the tokens of one vocabulary block, one
    run per document (a cluster worker's job reports their words and topics)."""
    n = 0
    for d in range(lo.shape[0]):
        for i in range(lo[d], hi[d]):
            out[n] = src[i]
            n += 1
    return n


#: Tokens ahead whose word rows the sweeps prefetch (measured: 2-8 all within 5%).
PREFETCH_AHEAD = 4

#: fastmath flags of the sparse sweep: reassociated sums let the q loop vectorize. Not
#: ``nnan``/``ninf``: the check that catches non-finite bucket masses must stay a real compare.
FASTMATH = {"reassoc", "nsz", "arcp", "contract", "afn"}


@njit(fastmath=FASTMATH, error_model="numpy", **_JIT)  # x/0 is inf: caught below
def sweep_sparse(words, topics, doc_ptr, tok_lo, tok_hi, nwk, nk, wt_ptr, wt_len, wt_top,
                 alpha, beta, vbeta, seed, fallbacks=None):
    """One exact collapsed Gibbs sweep over a chunk, SparseLDA style (Yao, Mimno & McCallum 2009).

    p(z=k | rest) is proportional to (alpha_k + n_dk)(n_wk + beta)/(n_k + V beta), split into
    s = alpha_k beta/(n_k+Vb) (dense, summed once per document), r = n_dk beta/(n_k+Vb) (over
    the document's topics) and q = (alpha_k + n_dk) n_wk/(n_k+Vb) (over the word's topics), so
    a token costs O(K_d + K_w) instead of O(K). Updates ``topics``, ``nwk``, ``nk`` and the word
    lists in place. ``vbeta`` is beta times the *global* vocabulary size, since ``nwk`` may hold
    only a slice of the vocabulary.

    Only tokens ``tok_lo[d] <= i < tok_hi[d]`` of document ``d`` are resampled (all of them when
    ``tok_lo, tok_hi = doc_ptr[:-1], doc_ptr[1:]``); the document's other tokens still count in
    its topic counts. That lets threads sweep one block of the vocabulary each at a time.
    Returns how many tokens changed topic.

    Whatever the numbers, every new topic is in ``[0, K)``: when the total mass ``s + r + q``
    is not a finite positive number (priors so large or small that float64 overflows, NaN),
    the draw falls back to a uniform topic, and ``fallbacks[0]`` (an int64 array, the check
    mode; None: not counted) counts those draws. The test is one compare per token, outside
    the bucket loops. :class:`distlda.models.LdaModel` validates the priors so that this
    never happens in training (see ``PRIOR_MIN``/``PRIOR_MAX`` there).
    """
    np.random.seed(seed)
    K = nk.shape[0]
    inv = np.empty(K)            # 1 / (n_k + V beta)
    coef = np.empty(K)           # (alpha_k + n_dk) / (n_k + V beta), the q-bucket weight
    ab = np.empty(K)             # alpha_k * beta
    for k in range(K):
        inv[k] = 1.0 / (nk[k] + vbeta)
        coef[k] = alpha[k] * inv[k]
        ab[k] = alpha[k] * beta
    ndk = np.zeros(K, np.int32)
    dtop = np.empty(K, np.int32)  # the document's non-zero topics ...
    dpos = np.empty(K, np.int32)  # ... and where each sits in dtop, for O(1) removal
    qcache = np.empty(K)
    # s changes only through inv, which is patched token by token below; a chunk's worth of
    # incremental updates moves it by rounding error only.
    s = 0.0
    for k in range(K):
        s += ab[k] * inv[k]
    D = doc_ptr.shape[0] - 1
    moved = 0
    for d in range(D):
        start = doc_ptr[d]
        end = doc_ptr[d + 1]
        if tok_lo[d] == tok_hi[d]:
            continue
        nd = 0
        for i in range(start, end):
            k = topics[i]
            if ndk[k] == 0:
                dpos[k] = nd
                dtop[nd] = k
                nd += 1
            ndk[k] += 1
        r = 0.0
        for j in range(nd):
            k = dtop[j]
            r += ndk[k] * beta * inv[k]
            coef[k] = (alpha[k] + ndk[k]) * inv[k]

        lo, hi = tok_lo[d], tok_hi[d]
        for i in range(lo, min(lo + PREFETCH_AHEAD, hi)):
            _prefetch_row(nwk, words[i])
        for i in range(lo, hi):
            if i + PREFETCH_AHEAD < hi:  # see sweep_dense
                _prefetch_row(nwk, words[i + PREFETCH_AHEAD])
            w = words[i]
            t = topics[i]
            # ---- take the token out
            s -= ab[t] * inv[t]
            r -= ndk[t] * beta * inv[t]
            ndk[t] -= 1
            nwk[w, t] -= 1
            nk[t] -= 1
            inv[t] = 1.0 / (nk[t] + vbeta)
            s += ab[t] * inv[t]
            r += ndk[t] * beta * inv[t]
            coef[t] = (alpha[t] + ndk[t]) * inv[t]
            if ndk[t] == 0:
                j = dpos[t]
                last = dtop[nd - 1]
                dtop[j] = last
                dpos[last] = j
                nd -= 1
            p = wt_ptr[w]
            L = wt_len[w]
            if nwk[w, t] == 0:
                for j in range(p, p + L):
                    if wt_top[j] == t:
                        wt_top[j] = wt_top[p + L - 1]
                        break
                L -= 1
                wt_len[w] = L
            # ---- q bucket over the word's topics: from its list when that is short, else
            # over the whole contiguous row, which vectorizes (measured at K=100: 1.6-2x
            # faster per sweep than the list for lists longer than K/8)
            q = 0.0
            dense = L * DENSE_Q > K
            if dense:
                for k in range(K):
                    v = coef[k] * nwk[w, k]
                    qcache[k] = v
                    q += v
            else:
                for j in range(L):
                    k = wt_top[p + j]
                    v = coef[k] * nwk[w, k]
                    q += v
                    qcache[j] = v
            total = s + r + q
            u = np.random.random() * total
            new = -1
            if not u < total:  # inf or NaN masses, or nothing to draw from: a uniform topic
                new = min(int(np.random.random() * K), K - 1)
                if fallbacks is not None:
                    fallbacks[0] += 1
            elif u < q:
                if dense:
                    # skip whole blocks of 16 topics first (each block sum vectorizes)
                    k0 = 0
                    while k0 + 16 <= K:
                        bs = 0.0
                        for k in range(k0, k0 + 16):
                            bs += qcache[k]
                        if u <= bs:
                            break
                        u -= bs
                        k0 += 16
                    for k in range(k0, K):
                        u -= qcache[k]
                        if u <= 0.0:
                            new = k
                            break
                else:
                    for j in range(L):
                        u -= qcache[j]
                        if u <= 0.0:
                            new = wt_top[p + j]
                            break
                if new < 0:  # rounding: the word's last non-zero topic
                    new = wt_top[p + L - 1] if L > 0 else t
            else:
                u -= q
                if u < r and nd > 0:
                    for j in range(nd):
                        k = dtop[j]
                        u -= ndk[k] * beta * inv[k]
                        if u <= 0.0:
                            new = k
                            break
                    if new < 0:
                        new = dtop[nd - 1]
                else:
                    u -= r
                    for k in range(K):
                        u -= ab[k] * inv[k]
                        if u <= 0.0:
                            new = k
                            break
                    if new < 0:
                        new = K - 1
            # ---- put it back with its new topic
            s -= ab[new] * inv[new]
            r -= ndk[new] * beta * inv[new]
            ndk[new] += 1
            nwk[w, new] += 1
            nk[new] += 1
            inv[new] = 1.0 / (nk[new] + vbeta)
            s += ab[new] * inv[new]
            r += ndk[new] * beta * inv[new]
            coef[new] = (alpha[new] + ndk[new]) * inv[new]
            if ndk[new] == 1:
                dpos[new] = nd
                dtop[nd] = new
                nd += 1
            if nwk[w, new] == 1:
                wt_top[p + L] = new
                wt_len[w] = L + 1
            moved += new != t
            topics[i] = new
        for j in range(nd):
            k = dtop[j]
            ndk[k] = 0
            coef[k] = alpha[k] * inv[k]
    return moved


#: Topics per block of the dense draw: whole blocks are skipped by their sums, then one block
#: is scanned (8 float32, one AVX2 register; 12 and 16 measured slower per sweep).
DRAW_BLOCK = 8


@njit(fastmath=FASTMATH, error_model="numpy", **_JIT)  # x/0 is inf: caught below
def sweep_dense(words, topics, doc_ptr, tok_lo, tok_hi, nwk, nk, alpha, beta, vbeta, seed,
                fallbacks=None):
    """One exact collapsed Gibbs sweep over a chunk, O(K) a token in vector instructions.

    p(z=k | rest) is proportional to (alpha_k + n_dk)(n_wk + beta)/(n_k + V beta), computed for
    all K topics as ``c_k * (n_wk + beta)`` with ``c_k = (alpha_k + n_dk)/(n_k + V beta)`` kept
    per document and patched for the two topics a token changes. That loop runs in SIMD
    (float32: 8 topics an AVX2 instruction, 16 with AVX-512). The draw tests the token's own
    topic first (staying is the likeliest move: 20-25% faster a sweep), then skips whole blocks
    of :data:`DRAW_BLOCK` topics by their sums and scans one block; the draw stays exact
    whatever the order, since the order does not depend on the uniform number. The count rows of
    the next :data:`PREFETCH_AHEAD` tokens' words are prefetched. A run of tokens of one word (a
    document's tokens come grouped by word: two thirds of them on long documents) keeps the
    masses and patches the two entries each token changed, so the O(K) loop runs once a run
    (1.4x a sweep on kerneldoc, 720 tokens a document; 1.1x on debdesc's 37). The masses and the
    draw's running sums are float32, twice the topics a vector instruction (1.1-1.2x a sweep):
    rounding moves a topic's probability by about 1e-6 of itself, far below the Monte Carlo
    error of any run, and a token whose float32 masses overflow or all vanish (extreme priors)
    is drawn again in float64. Below K=500 a token costs less than in :func:`sweep_sparse` (2x
    at K=100, see :func:`~distlda.gibbs.sampling.choose_sampler`). The dense O(K) form is the
    standard collapsed Gibbs step (Griffiths & Steyvers 2004); tomotopy's dense sampler makes
    the same trade at small K.

    Same contract as :func:`sweep_sparse`, without its word lists: only tokens
    ``tok_lo[d] <= i < tok_hi[d]`` of document ``d`` move (the others still count in the
    document's topic counts), ``topics``/``nwk``/``nk`` are updated in place, ``vbeta`` is beta
    times the global vocabulary, every new topic is in ``[0, K)`` (a non-finite or zero total
    mass, in float64 too, falls back to a uniform topic, counted in ``fallbacks[0]``), and it
    returns how many tokens changed topic. Random numbers: splitmix64 from ``seed``.
    """
    K = nk.shape[0]
    state = _seed_state(seed)
    inv = np.empty(K)            # 1 / (n_k + V beta)
    for k in range(K):
        inv[k] = 1.0 / (nk[k] + vbeta)
    ndk = np.zeros(K, np.int32)
    # float32 (see above): coef and mass; cum64 holds the rare float64 draw's running sums
    coef = np.empty(K, np.float32)  # (alpha_k + n_dk) / (n_k + V beta) of the current document
    mass = np.empty(K, np.float32)  # the token's unnormalised p(z = k)
    cum64 = np.empty(K)
    beta32 = np.float32(beta)
    B = DRAW_BLOCK
    moved = 0
    for d in range(doc_ptr.shape[0] - 1):
        lo, hi = tok_lo[d], tok_hi[d]
        if lo == hi:
            continue
        for i in range(lo, min(lo + PREFETCH_AHEAD, hi)):
            _prefetch_row(nwk, words[i])
        for i in range(doc_ptr[d], doc_ptr[d + 1]):
            ndk[topics[i]] += 1
        for k in range(K):
            coef[k] = (alpha[k] + ndk[k]) * inv[k]
        prev_w = -1              # the word whose masses `mass` holds
        total = 0.0
        for i in range(lo, hi):
            if i + PREFETCH_AHEAD < hi:
                _prefetch_row(nwk, words[i + PREFETCH_AHEAD])
            w = words[i]
            t = topics[i]
            # the masses with the token still in, then topic t's entry patched: its counts
            # change by scalar stores that a vector load right after would stall on. A run
            # of one word (a document's tokens come grouped by word) keeps the masses: the
            # previous token patched the two entries it changed.
            if w != prev_w:
                sum32 = np.float32(0.0)
                for k in range(K):  # the vectorized loop
                    m = coef[k] * (np.float32(nwk[w, k]) + beta32)
                    mass[k] = m
                    sum32 += m
                total = np.float64(sum32)
                prev_w = w
            ndk[t] -= 1
            nwk[w, t] -= 1
            nk[t] -= 1
            inv[t] = 1.0 / (nk[t] + vbeta)
            coef[t] = (alpha[t] + ndk[t]) * inv[t]
            v = np.float64(coef[t] * (np.float32(nwk[w, t]) + beta32))
            total += v - mass[t]
            mass[t] = v
            state, r = _rand(state)
            u = r * total
            new = K - 1
            if not (u < total and total > 0.0):  # float32 overflowed or vanished: float64
                total = 0.0
                for k in range(K):
                    total += (alpha[k] + ndk[k]) * inv[k] * (nwk[w, k] + beta)
                    cum64[k] = total
                state, r = _rand(state)
                u = r * total
                if u < total and total > 0.0:
                    new = search_cumulative(cum64, K, u)
                else:  # inf or NaN masses in float64 too: a uniform topic
                    state, r = _rand(state)
                    new = min(int(r * K), K - 1)
                    if fallbacks is not None:
                        fallbacks[0] += 1
                prev_w = -1  # recompute the masses for the next token
            elif u < v:  # the token keeps its topic, the likeliest case: tested first
                new = t
            else:  # the other topics in order (t's mass taken out of the scan)
                u32 = np.float32(u - v)
                mass[t] = 0.0
                k0 = 0
                while k0 + B <= K:  # skip whole blocks (each block sum vectorizes)
                    bs = np.float32(0.0)
                    for k in range(k0, k0 + B):
                        bs += mass[k]
                    if u32 < bs:
                        break
                    u32 -= bs
                    k0 += B
                last = min(k0 + B, K) - 1
                new = last  # rounding left u >= 0: the block's last topic
                for k in range(k0, last):
                    u32 -= mass[k]
                    if u32 < 0.0:
                        new = k
                        break
                mass[t] = v
            ndk[new] += 1
            nwk[w, new] += 1
            nk[new] += 1
            inv[new] = 1.0 / (nk[new] + vbeta)
            coef[new] = (alpha[new] + ndk[new]) * inv[new]
            v = np.float64(coef[new] * (np.float32(nwk[w, new]) + beta32))
            total += v - mass[new]  # mass[t] is current: t's counts are out
            mass[new] = v
            moved += new != t
            topics[i] = new
        for i in range(doc_ptr[d], doc_ptr[d + 1]):
            ndk[topics[i]] = 0
    return moved


@njit(inline="always", **_JIT)
def search_cumulative(cum, K, u):
    """The first index ``k < K`` with ``u <= cum[k]`` in non-decreasing cumulative weights
    (binary search; ``K - 1`` when ``u`` is past them all, as rounding may leave it): the
    categorical draw of the O(K) kernels, :func:`sweep_eta` and :func:`foldin`, and of
    :func:`sweep_dense`'s float64 redraw."""
    lo = 0
    hi = K - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(error_model="numpy", **_JIT)  # x/0 is inf: caught below
def sweep_eta(words, topics, doc_ptr, tok_lo, tok_hi, nwk, nk, alpha, eta_kw, eta_sum, seed,
              fallbacks=None):
    """One exact collapsed Gibbs sweep over a chunk with a non-uniform topic-word prior.

    p(z=k | rest) is proportional to (n_dk + alpha_k)(n_wk + beta_wk)/(n_k + sum_w beta_wk),
    summed over all K topics (O(K) a token): with per-word or per-topic-and-word priors the
    SparseLDA buckets of :func:`sweep_sparse` no longer factor, and this is the kernel that
    stays exact. ``eta_kw`` is float64[V, E]: E = 1 for a per-word prior (column 0 for every
    topic), E = K for a topics x words prior (transposed, one row per word); ``eta_sum[k]`` is
    sum_w beta_wk over the *whole* vocabulary. Same contract as :func:`sweep_sparse` otherwise:
    only tokens ``tok_lo[d] <= i < tok_hi[d]`` move, ``topics``/``nwk``/``nk`` are updated in
    place, every new topic is in ``[0, K)`` (a non-finite mass falls back to a uniform topic,
    counted in ``fallbacks[0]``), and it returns how many tokens changed topic.
    """
    np.random.seed(seed)
    K = nk.shape[0]
    es = 1 if eta_kw.shape[1] > 1 else 0  # column stride: 0 repeats a per-word prior
    inv = np.empty(K)
    for k in range(K):
        inv[k] = 1.0 / (nk[k] + eta_sum[k])
    ndk = np.zeros(K, np.int32)
    cum = np.empty(K)
    moved = 0
    for d in range(doc_ptr.shape[0] - 1):
        start = doc_ptr[d]
        end = doc_ptr[d + 1]
        if tok_lo[d] == tok_hi[d]:
            continue
        for i in range(start, end):
            ndk[topics[i]] += 1
        for i in range(tok_lo[d], tok_hi[d]):
            w = words[i]
            t = topics[i]
            ndk[t] -= 1
            nwk[w, t] -= 1
            nk[t] -= 1
            inv[t] = 1.0 / (nk[t] + eta_sum[t])
            tot = 0.0
            for k in range(K):
                tot += (ndk[k] + alpha[k]) * (nwk[w, k] + eta_kw[w, k * es]) * inv[k]
                cum[k] = tot
            u = np.random.random() * tot
            if not u < tot:  # inf or NaN masses: a uniform topic
                new = min(int(np.random.random() * K), K - 1)
                if fallbacks is not None:
                    fallbacks[0] += 1
            else:
                new = search_cumulative(cum, K, u)
            ndk[new] += 1
            nwk[w, new] += 1
            nk[new] += 1
            inv[new] = 1.0 / (nk[new] + eta_sum[new])
            moved += new != t
            topics[i] = new
        for i in range(start, end):
            ndk[topics[i]] = 0
    return moved


@njit(**_JIT)
def loglik_words_eta(nwk, nk, eta_kw, eta_sum):
    """log p(w | z) of the collapsed model with a non-uniform prior (``eta_kw`` as in
    :func:`sweep_eta`): sum_k [lgamma(B_k) - lgamma(n_k + B_k)] plus, over the non-zero
    counts, lgamma(n_wk + beta_wk) - lgamma(beta_wk)."""
    V, K = nwk.shape
    es = 1 if eta_kw.shape[1] > 1 else 0
    total = 0.0
    for v in range(V):
        for k in range(K):
            c = nwk[v, k]
            if c != 0:
                b = eta_kw[v, k * es]
                total += math.lgamma(c + b) - math.lgamma(b)
    for k in range(K):
        total += math.lgamma(eta_sum[k]) - math.lgamma(nk[k] + eta_sum[k])
    return total


@njit(**_JIT)
def loglik_words(nwk, nk, beta, num_terms):
    """log p(w | z) of the collapsed model, summing only over the non-zero counts."""
    V, K = nwk.shape
    lgb = math.lgamma(beta)
    total = 0.0
    for v in range(V):
        for k in range(K):
            c = nwk[v, k]
            if c != 0:
                total += math.lgamma(c + beta) - lgb
    vb = beta * num_terms
    lgvb = math.lgamma(vb)
    for k in range(K):
        total += lgvb - math.lgamma(nk[k] + vb)
    return total


@njit(**_JIT)
def loglik_docs(topics, doc_ptr, alpha):
    """log p(z) of the collapsed model for the documents of one chunk."""
    K = alpha.shape[0]
    asum = 0.0
    lga = np.empty(K)
    for k in range(K):
        asum += alpha[k]
        lga[k] = math.lgamma(alpha[k])
    lgasum = math.lgamma(asum)
    ndk = np.zeros(K, np.int32)
    total = 0.0
    for d in range(doc_ptr.shape[0] - 1):
        start = doc_ptr[d]
        end = doc_ptr[d + 1]
        if start == end:
            continue
        for i in range(start, end):
            ndk[topics[i]] += 1
        total += lgasum - math.lgamma(end - start + asum)
        for i in range(start, end):
            k = topics[i]
            if ndk[k] != 0:
                total += math.lgamma(ndk[k] + alpha[k]) - lga[k]
                ndk[k] = 0
    return total


@njit(**_JIT)
def doc_seed(sorted_words, seed):
    """A 32-bit seed from ``seed`` and a document's word ids (sorted), FNV-1a then splitmix64.

    Equal documents (the same multiset of word ids) get equal seeds, whatever batch they are in.
    """
    h = np.uint64(0xCBF29CE484222325) ^ np.uint64(seed)
    for i in range(sorted_words.shape[0]):
        h = (h ^ np.uint64(sorted_words[i])) * np.uint64(0x100000001B3)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    h = h ^ (h >> np.uint64(31))
    return np.int64(h >> np.uint64(32))


@njit(**_JIT)
def foldin(words, doc_ptr, counts, scale, offset, alpha, iterations, burnin, seed,
           fallbacks=None):
    """Gibbs fold-in of new documents with the topics held fixed.

    The topic-word probability of word ``w`` under topic ``k`` is taken as
    ``(counts[w, k] + offset) * scale[k]``: the model passes its counts ``nwk`` with
    ``offset = eta`` and ``scale = 1 / (n_k + V eta)`` (nothing of size V x K is built), a
    caller holding p(word | topic) passes it with ``offset = 0`` and ``scale = 1``.

    Each document is folded in on its own: its tokens are taken in word-id order and its
    random stream is seeded by :func:`doc_seed` from ``seed`` and its word ids, so its answer
    depends only on its content and ``seed``, not on the other documents of the call.

    Parameters
    ----------
    words, doc_ptr : the documents (see module docstring); word ids index rows of ``counts``.
    counts : int32 or float64[V, K]
    scale : float64[K]
    offset : float
    alpha : float64[K]
    iterations, burnin : sweeps in all, and sweeps discarded before averaging.
    seed : int
    fallbacks : int64[1], optional
        Check mode: counts the draws whose total mass was not finite and positive (they fall
        back to a uniform topic, so every topic stays in ``[0, K)``).

    Returns
    -------
    theta : float64[D, K]  posterior-mean document-topic distributions, averaged over the
        post-burn-in samples (rows sum to 1; an empty document gets alpha normalised).
    """
    K = alpha.shape[0]
    D = doc_ptr.shape[0] - 1
    asum = 0.0
    for k in range(K):
        asum += alpha[k]
    theta = np.zeros((D, K))
    ndk = np.zeros(K, np.int64)
    acc = np.zeros(K)
    cum = np.empty(K)
    nsamples = max(iterations - burnin, 1)
    for d in range(D):
        start = doc_ptr[d]
        end = doc_ptr[d + 1]
        n = end - start
        ws = np.sort(words[start:end])
        np.random.seed(doc_seed(ws, seed))
        z = np.empty(n, np.int32)
        for k in range(K):
            ndk[k] = 0
            acc[k] = 0.0
        for it in range(iterations):
            for i in range(n):
                w = ws[i]
                if it > 0:
                    ndk[z[i]] -= 1
                tot = 0.0
                for k in range(K):
                    tot += (ndk[k] + alpha[k]) * ((counts[w, k] + offset) * scale[k])
                    cum[k] = tot
                u = np.random.random() * tot
                if not u < tot:  # inf or NaN masses: a uniform topic
                    lo = min(int(np.random.random() * K), K - 1)
                    if fallbacks is not None:
                        fallbacks[0] += 1
                else:
                    lo = search_cumulative(cum, K, u)
                z[i] = lo
                ndk[lo] += 1
            if it >= iterations - nsamples:
                for k in range(K):
                    acc[k] += ndk[k]
        for k in range(K):
            theta[d, k] = (acc[k] / nsamples + alpha[k]) / (n + asum)
    return theta


@njit(**_JIT)
def completion_loglik(theta, held_doc, held_words, phi_t):
    """Sum over held-out tokens of log sum_k theta[doc, k] * phi_t[word, k]."""
    K = theta.shape[1]
    total = 0.0
    for i in range(held_words.shape[0]):
        d = held_doc[i]
        w = held_words[i]
        p = 0.0
        for k in range(K):
            p += theta[d, k] * phi_t[w, k]
        total += math.log(p)
    return total


@njit(**_JIT)
def doc_topic_pairs(topics, doc_ptr, num_topics):
    """(topic, count) of every non-zero document-topic count n_dk of a chunk.

    Returns int64 codes ``topic * stride + count`` with ``stride = 2**32``, so the caller
    can histogram them with np.unique; at most one code per token.
    """
    ndk = np.zeros(num_topics, np.int64)
    out = np.empty(topics.shape[0], np.int64)
    m = 0
    stride = np.int64(1) << 32
    for d in range(doc_ptr.shape[0] - 1):
        for i in range(doc_ptr[d], doc_ptr[d + 1]):
            ndk[topics[i]] += 1
        for i in range(doc_ptr[d], doc_ptr[d + 1]):
            k = topics[i]
            if ndk[k] != 0:
                out[m] = k * stride + ndk[k]
                m += 1
                ndk[k] = 0
    return out[:m]
