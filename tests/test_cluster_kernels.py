"""The cluster's compiled helpers (distlda.cluster._kernels), each against its reference."""

import numpy as np
import pytest

from distlda.cluster import _kernels as CK
from distlda.gibbs import kernels as K_

import reference as ref


def random_moves(rng, V, K, N, share):
    """N tokens' words and topics before and after ``share`` of them are resampled."""
    words = rng.integers(0, V, N).astype(np.int32)
    before = rng.integers(0, K, N).astype(np.int32)
    after = np.where(rng.random(N) < share, rng.integers(0, K, N), before).astype(np.int32)
    return words, before, after


def sorted_chunk(rng, V, K, D=30):
    lens = rng.integers(0, 25, D)
    doc_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    words = rng.integers(0, V, doc_ptr[-1]).astype(np.int32)
    topics = rng.integers(0, K, doc_ptr[-1]).astype(np.int32)
    K_.sort_doc_tokens(words, topics, doc_ptr)
    return words, topics, doc_ptr


def block(rng, words, doc_ptr, V):
    cuts = np.array([0, V // 3, V], np.int32)
    bp = K_.block_bounds(words, doc_ptr, cuts)
    b = int(rng.integers(0, 2))
    return bp[b], bp[b + 1]


@pytest.mark.parametrize("seed", range(4))
def test_gather_ranges_takes_one_run_per_document(seed):
    rng = np.random.default_rng(seed)
    V, K = 40, 7
    words, topics, doc_ptr = sorted_chunk(rng, V, K)
    lo, hi = block(rng, words, doc_ptr, V)
    out = np.empty(topics.shape[0], np.uint8)
    n = K_.gather_ranges(topics, lo, hi, out)
    np.testing.assert_array_equal(out[:n], ref.gather_ranges(topics, lo, hi))
    assert n == int((hi - lo).sum())


def test_row_totals_checks_that_rows_keep_their_totals():
    rng = np.random.default_rng(3)
    d = rng.integers(-3, 4, (20, 6)).astype(np.int8)
    d[:, -1] -= d.sum(axis=1).astype(np.int8)  # each row sums to zero
    dk = np.zeros(6, np.int64)
    assert CK.row_totals(d, dk)
    np.testing.assert_array_equal(dk, d.sum(axis=0))
    d[5, 0] += 1
    assert not CK.row_totals(d, np.zeros(6, np.int64))


def test_sorted_in_docs_and_block_bounds_match_the_reference():
    rng = np.random.default_rng(0)
    doc_ptr = np.array([0, 7, 7, 20, 21], np.int64)
    words = rng.integers(0, 30, 21).astype(np.int32)
    topics = (words * 7 + np.arange(21)).astype(np.int32)  # tells the tokens apart
    want_w, want_t = ref.sort_doc_tokens(words, topics, doc_ptr)
    assert not CK.sorted_in_docs(words, doc_ptr)
    assert K_.sort_doc_tokens(words, topics, doc_ptr)
    assert not K_.sort_doc_tokens(words, topics, doc_ptr)  # already sorted: nothing moves
    assert CK.sorted_in_docs(words, doc_ptr)
    np.testing.assert_array_equal(words, want_w)
    np.testing.assert_array_equal(topics, want_t)
    cuts = np.array([0, 10, 10, 25, 30], np.int32)
    np.testing.assert_array_equal(K_.block_bounds(words, doc_ptr, cuts),
                                  ref.block_bounds(words, doc_ptr, cuts))


def test_foreign_moves_keep_rows_and_word_lists_exact():
    V, K = 40, 12
    words, before, after = random_moves(np.random.default_rng(1), V, K, 400, 0.5)
    nwk = ref.counts(words, before, V, K)[0].astype(np.int32)
    lists = K_.build_word_lists(nwk, nwk.sum(axis=1))
    rowmap = np.arange(V, dtype=np.int32)
    rowmap[::5] = -1  # rows this worker does not hold are skipped
    moved = before != after
    want = ref.apply_foreign_moves(rowmap, words[moved], before[moved], after[moved], nwk)
    assert CK.apply_foreign_moves(rowmap, words[moved], before[moved], after[moved], nwk,
                                  *lists, True)
    np.testing.assert_array_equal(nwk, want)
    held = rowmap >= 0
    assert ref.word_lists_ok(nwk[held], lists[0][:-1][held], lists[1][held], lists[2])
    assert CK.lists_match(nwk, *lists) == -1
    # an update that does not fit the rows is refused, not applied as garbage
    w0 = [v for v in np.flatnonzero(held) if (nwk[v] == 0).any()][0]
    empty = np.flatnonzero(nwk[w0] == 0)[0]
    args = (np.array([w0], np.int32), np.array([empty], np.int32), np.array([0], np.int32))
    assert ref.apply_foreign_moves(rowmap, *args, nwk) is None
    assert not CK.apply_foreign_moves(rowmap, *args, nwk, *lists, True)


def test_row_delta_and_apply_rows_rebuild_peer_rows_and_lists():
    V, K = 30, 9
    words, before, after = random_moves(np.random.default_rng(2), V, K, 500, 0.3)
    nwk0 = ref.counts(words, before, V, K)[0].astype(np.int32)
    nwk1 = ref.counts(words, after, V, K)[0].astype(np.int32)
    rows = np.arange(V, dtype=np.int32) * 3  # the sender's rows are words 0, 3, 6, ...
    lo = 4                                   # it changed rows 4.. (a block of its rows)
    snap = nwk0[lo:].copy()
    ow, od = np.empty(V - lo, np.int32), np.empty((V - lo, K), np.int8)
    bw, bd = np.empty(V - lo, np.int32), np.empty((V - lo, K), np.int32)
    for lim in (127, 1):
        n, nb = CK.row_delta(nwk1, snap, lo, rows, lim, ow, od, bw, bd)
        sw, sd, lw, ld = ref.row_delta(nwk1, snap, lo, rows, lim)
        np.testing.assert_array_equal(ow[:n], sw)
        np.testing.assert_array_equal(od[:n], sd)
        np.testing.assert_array_equal(bw[:nb], lw)
        np.testing.assert_array_equal(bd[:nb], ld)
    assert 0 < nb  # with lim 1 some rows go to the wide part
    n, nb = CK.row_delta(nwk1, snap, lo, rows, 1, ow, od, bw[:1], bd[:1])
    assert nb > 1  # counted past the capacity it was given, for the caller to grow it
    n, nb = CK.row_delta(nwk1, snap, lo, rows, 127, ow, od, bw, bd)
    # The receiver holds the same rows under other numbers, minus every fifth word.
    peer = nwk0.copy()
    peer[:lo] = nwk1[:lo]  # rows outside the block are not the sender's business
    lists = K_.build_word_lists(peer, peer.sum(axis=1))
    rowmap = np.full(3 * V, -1, np.int32)
    rowmap[rows] = np.arange(V, dtype=np.int32)
    rowmap[rows[::5]] = -1
    want = ref.apply_rows(rowmap, ow[:n], od[:n], peer)
    assert CK.apply_rows(rowmap, ow[:n], od[:n], peer, *lists, True)
    np.testing.assert_array_equal(peer, want)
    held = rowmap[rows] >= 0
    np.testing.assert_array_equal(peer[held], nwk1[held])
    assert ref.word_lists_ok(peer[held], lists[0][:-1][held], lists[1][held], lists[2])
    # a change that does not fit the rows (a count below zero) is refused
    r = [r for r in np.flatnonzero(held) if (peer[r] == 0).any()][0]
    bad = np.zeros((1, K), np.int8)
    bad[0, np.flatnonzero(peer[r] == 0)[0]] = -1
    bad[0, np.flatnonzero(peer[r])[0]] = 1
    assert ref.apply_rows(rowmap, rows[[r]], bad, peer) is None
    assert not CK.apply_rows(rowmap, rows[[r]], bad, peer, *lists, True)


def test_lists_match_finds_a_wrong_list():
    rng = np.random.default_rng(4)
    nwk = rng.integers(0, 3, (20, 8)).astype(np.int32)
    lists = K_.build_word_lists(nwk, nwk.sum(axis=1))
    assert CK.lists_match(nwk, *lists) == -1
    r = int(np.flatnonzero(nwk.sum(axis=1) > 0)[3])
    nwk[r, np.flatnonzero(nwk[r])[0]] = 0  # a count drops to zero, its list keeps the topic
    assert CK.lists_match(nwk, *lists) == r
