"""Slow, obvious reference implementations: every kernel test compares against one of these.

Each function is the NumPy (or plain Python) statement of what a compiled kernel computes,
written for clarity, not speed. A kernel's test feeds both the same random inputs.
"""

import itertools

import numpy as np
from scipy.special import gammaln


def counts(words, topics, V, K):
    """Word-topic counts (V x K) and topic totals (K) of assignments."""
    nwk = np.zeros((V, K), np.int64)
    np.add.at(nwk, (np.asarray(words, np.int64), np.asarray(topics, np.int64)), 1)
    return nwk, nwk.sum(axis=0)


def sort_doc_tokens(words, topics, doc_ptr):
    """Each document's (word, topic) pairs in word order, stable."""
    w, t = np.array(words), np.array(topics)
    for a, b in zip(doc_ptr[:-1], doc_ptr[1:]):
        order = np.argsort(w[a:b], kind="stable")
        w[a:b], t[a:b] = w[a:b][order], t[a:b][order]
    return w, t


def block_bounds(words, doc_ptr, cuts):
    """bp[b, d]: first token of document d whose word is >= cuts[b] (words sorted per doc)."""
    B, D = len(cuts) - 1, len(doc_ptr) - 1
    bp = np.empty((B + 1, D), np.int64)
    for d in range(D):
        a, e = doc_ptr[d], doc_ptr[d + 1]
        bp[:B, d] = a + np.searchsorted(words[a:e], cuts[:B], side="left")
        bp[0, d], bp[B, d] = a, e
    return bp


def gather_ranges(src, lo, hi):
    return np.concatenate([src[a:b] for a, b in zip(lo, hi)] or [src[:0]])


def apply_rows(rowmap, words, delta, nwk):
    """nwk with delta[j] added to row rowmap[words[j]] (rows < 0 skipped); None if a count
    would go negative."""
    out = np.array(nwk, np.int64)
    for w, d in zip(words, delta):
        r = rowmap[w]
        if r >= 0:
            out[r] += d
    held = np.asarray(rowmap)[np.asarray(words)] >= 0 if len(words) else np.zeros(0, bool)
    rows = np.asarray(rowmap)[np.asarray(words)[held]] if len(words) else []
    return None if (out[rows] < 0).any() else out


def apply_foreign_moves(rowmap, words, old, new, nwk):
    """nwk with each move's token taken from (row, old) and put at (row, new), in order; None
    if a count would go negative on the way."""
    out = np.array(nwk, np.int64)
    for w, a, b in zip(words, old, new):
        r = rowmap[w]
        if r < 0:
            continue
        out[r, a] -= 1
        if out[r, a] < 0:
            return None
        out[r, b] += 1
    return out


def row_delta(nwk, snap, r0, rows, lim):
    """The changed rows r0.. against snap: (word ids and changes within lim, the others)."""
    d = np.asarray(nwk[r0:r0 + len(snap)], np.int64) - snap
    changed = np.flatnonzero((d != 0).any(axis=1))
    big = np.abs(d[changed]).max(axis=1) > lim if changed.size else np.zeros(0, bool)
    return (rows[r0 + changed[~big]], d[changed[~big]], rows[r0 + changed[big]], d[changed[big]])


def word_lists_ok(nwk, wt_ptr, wt_len, wt_top):
    """Every row's list holds exactly its non-zero topics."""
    for r in range(nwk.shape[0]):
        got = sorted(wt_top[wt_ptr[r]: wt_ptr[r] + wt_len[r]].tolist())
        if got != np.flatnonzero(nwk[r]).tolist():
            return False
    return True


def exact_marginals(docs, V, K, alpha, beta):
    """p(z_i = k | w) and p(z_i = z_j | w) of the collapsed model, by enumeration."""
    words = np.array(sum(docs, []))
    N = words.size
    Z = np.array(list(itertools.product(range(K), repeat=N)))
    logp = np.zeros(len(Z))
    start = 0
    for doc in docs:
        zd = Z[:, start:start + len(doc)]
        start += len(doc)
        logp += gammaln(np.stack([(zd == k).sum(1) for k in range(K)], 1) + alpha).sum(1)
    nwk = np.zeros((len(Z), V, K))
    for i in range(N):
        nwk[np.arange(len(Z)), words[i], Z[:, i]] += 1
    b = np.asarray(beta, float)  # scalar, (V,) per word or (K, V) per topic and word
    bvk = np.broadcast_to(b.T if b.ndim == 2 else b[:, None] if b.ndim == 1 else b, (V, K))
    logp += (gammaln(nwk + bvk).sum((1, 2))
             - gammaln(nwk.sum(1) + bvk.sum(0)).sum(1))
    p = np.exp(logp - logp.max())
    p /= p.sum()
    marg = np.stack([(p[:, None] * (Z[:, i, None] == np.arange(K))).sum(0) for i in range(N)])
    same = (p[:, None, None] * (Z[:, :, None] == Z[:, None, :])).sum(0)
    return marg, same


def conditional(doc_topics, i, word, nwk, nk, alpha, beta, V):
    """p(z_i = k | rest) ~ (n_dk + alpha_k)(n_wk + beta)/(n_k + V beta), token i removed."""
    K = len(alpha)
    ndk = np.bincount(np.delete(doc_topics, i), minlength=K)
    nw = nwk[word].astype(float)
    nw[doc_topics[i]] -= 1
    nkk = nk.astype(float)
    nkk[doc_topics[i]] -= 1
    p = (ndk + alpha) * (nw + beta) / (nkk + V * beta)
    return p / p.sum()
