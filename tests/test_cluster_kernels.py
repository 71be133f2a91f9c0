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
def test_topic_change_and_apply_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    V, K = 40, 7
    words, topics, doc_ptr = sorted_chunk(rng, V, K)
    lo, hi = block(rng, words, doc_ptr, V)
    n = int((hi - lo).sum())
    new = np.where(rng.random(n) < 0.5, rng.integers(0, K, n), ref.gather_ranges(topics, lo, hi))
    new = new.astype(np.uint8)
    nk = np.zeros(K, np.int32)
    moved = CK.topic_change(topics, lo, hi, new, nk, K)
    want_moved, want_dnk = ref.topic_change(topics, lo, hi, new, K)
    assert moved == want_moved
    np.testing.assert_array_equal(nk, want_dnk)
    bad = new.copy()
    if n:
        bad[n // 2] = K
        nk2 = np.zeros(K, np.int32)
        assert CK.topic_change(topics, lo, hi, bad, nk2, K) == -1 and not nk2.any()
    t = topics.copy()
    K_.scatter_ranges(t, lo, hi, new)
    np.testing.assert_array_equal(ref.gather_ranges(t, lo, hi), new)


@pytest.mark.parametrize("seed", range(4))
def test_pack_read_and_apply_moves_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    V, K = 40, 7
    words, topics, doc_ptr = sorted_chunk(rng, V, K)
    lo, hi = block(rng, words, doc_ptr, V)
    old = ref.gather_ranges(topics, lo, hi).astype(np.uint8)
    new = np.where(rng.random(old.size) < 0.4, rng.integers(0, K, old.size), old).astype(np.uint8)
    packed = np.zeros((old.size + 7) // 8, np.uint8)
    out = np.empty(old.size, np.uint8)
    n = CK.pack_moves(old, new, packed, out)
    want_bits, want_new = ref.pack_moves(old, new)
    np.testing.assert_array_equal(packed, want_bits)
    np.testing.assert_array_equal(out[:n], want_new)
    nk = np.zeros(K, np.int32)
    ow, oo = np.empty(n, np.int32), np.empty(n, np.int32)
    assert CK.read_moves(packed, out[:n], words, topics, lo, hi, nk, ow, oo, K) == n
    w, o, dnk = ref.read_moves(packed, out[:n], words, topics, lo, hi, K)
    np.testing.assert_array_equal(ow, w)
    np.testing.assert_array_equal(oo, o)
    np.testing.assert_array_equal(nk, dnk)
    t = topics.copy()
    CK.apply_moves(packed, out[:n], t, lo, hi)
    np.testing.assert_array_equal(ref.gather_ranges(t, lo, hi), new)
    # malformed: one topic too few, a topic out of range, a bit past the last token
    scratch = (np.empty(n + 8, np.int32), np.empty(n + 8, np.int32))
    if n:
        assert CK.read_moves(packed, out[:n - 1], words, topics, lo, hi, nk, *scratch, K) == -1
        wrong = out[:n].copy()
        wrong[0] = K
        assert ref.read_moves(packed, wrong, words, topics, lo, hi, K) is None
        assert CK.read_moves(packed, wrong, words, topics, lo, hi, nk, *scratch, K) == -1
    if old.size % 8:
        extra = packed.copy()
        extra[-1] |= 1  # the last bit of the last byte: past the last token
        assert ref.read_moves(extra, out[:n], words, topics, lo, hi, K) is None
        assert CK.read_moves(extra, out[:n], words, topics, lo, hi, nk, *scratch, K) == -1


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
