"""A cluster worker sweeping its job on several threads (``lda_worker --threads T``): the
session's threaded schedule (exact counts, only the job's tokens, a chain fixed by the seeds
and T, T=1 the serial sweep bit for bit), its layout, the worker's option, and a real cluster
of one two-thread worker."""

import subprocess
import sys
import threading

import msgpack
import numpy as np
import pytest

from distlda.cluster import _kernels as CK
from distlda.cluster.messages import ChunkLoad, DenseSlice, Job, SessionConfig, ShardSet
from distlda.cluster.worker_session import WorkerSession
from distlda.gibbs import blocks, sampling
from distlda.gibbs import kernels as K_
from distlda.models import LdaModel
from distlda.models.lda_worker import LdaWorker, main

import reference as ref
from cluster import REPO
from helpers import assert_exact, planted_corpus

K, V = 6, 80


def over_the_wire(obj):
    return msgpack.unpackb(msgpack.packb(obj, use_bin_type=True), raw=False)


def config(sampler="sparse"):
    return SessionConfig(K, V, np.full(K, 0.5), 0.1, sampler, None, num_chunks=1000,
                         num_tokens=10**6, shards=ShardSet.of_chunks([1000] * 1000, 0))


def make_chunks(n=2, D=30, seed=3):
    """``n`` chunks of sorted documents with random topics (words below V - 5: the slice's rows
    are a subset of the vocabulary, so local row ids differ from word ids)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lens = rng.integers(1, 40, D)
        lens[rng.integers(D)] = 120  # one long document
        doc_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        words = (5 + rng.integers(0, V - 5, doc_ptr[-1])).astype(np.int32)
        words[words == 40] = 41  # a hole in the rows
        topics = rng.integers(0, K, doc_ptr[-1]).astype(np.int32)
        K_.sort_doc_tokens(words, topics, doc_ptr)
        out.append((words, topics, doc_ptr))
    return out


def session(cfg, chunks, threads):
    w = WorkerSession("s", cfg, "distlda.worker.test", threads=threads)
    loads = [ChunkLoad(i, words, doc_ptr, topics.copy()).to_wire(K)
             for i, (words, topics, doc_ptr) in enumerate(chunks)]
    w.load([ChunkLoad.from_wire(over_the_wire(c), cfg) for c in loads])
    return w


def counts(chunks, topics=None):
    words = np.concatenate([c[0] for c in chunks])
    topics = np.concatenate(topics if topics is not None else [c[1] for c in chunks])
    return ref.counts(words, topics, V, K)


def job_for(cfg, chunks, blocks_=True, of=(1, 1), seed=11):
    nwk, nk = counts(chunks)
    rows = np.unique(np.concatenate([c[0] for c in chunks])).astype(np.int32)
    cuts = np.array([0, 30, 55, V], np.int32)
    job = Job("j1", list(range(len(chunks))), DenseSlice(rows, nwk[rows].astype(np.int32)),
              nk.astype(np.int32), np.random.default_rng(seed).integers(2**32, size=len(chunks))
              .astype(np.uint32), np.asarray(cfg.alpha),
              (cuts, list(of)) if blocks_ else None, True)
    return Job.from_wire(over_the_wire(job.to_wire()), cfg), rows, cuts


def run(cfg, chunks, threads, **kw):
    """Run one job on a fresh session; returns (session, job, result, rows, cuts)."""
    w = session(cfg, chunks, threads)
    job, rows, cuts = job_for(cfg, chunks, **kw)
    w.accept(job)
    return w, job, w.run(job, threading.RLock()), rows, cuts


def topics_of(w, n):
    return [w.chunks[i].topics.astype(np.int32) for i in range(n)]


@pytest.mark.parametrize("sampler", ["sparse", "dense"])
def test_one_thread_is_the_serial_sweep_bit_for_bit(sampler):
    cfg = config(sampler)
    chunks = make_chunks()
    w, job, result, rows, cuts = run(cfg, chunks, 1)
    # the old path: sampling.sweep on the job's block ranges, the job's seeds, the slice's lists
    nwk, nk = counts(chunks)
    slice_ = nwk[rows].astype(np.int32)
    nk = nk.astype(np.int32)
    local = [np.searchsorted(rows, c[0]).astype(np.int32) for c in chunks]
    topics = [c[1].copy() for c in chunks]
    ranges = []
    for c in chunks:
        bp = blocks.block_ranges(ChunkLoad(0, c[0], c[2], c[1]), cuts)
        ranges.append((bp[1], bp[2]))
    options = (sampling.SparseOptions(K_.build_word_lists(slice_, slice_.sum(axis=1)))
               if sampler == "sparse" else sampling.DenseOptions())
    job2, _, _ = job_for(cfg, chunks)
    moved = sampling.sweep(sampling.Tokens(local, topics, [c[2] for c in chunks], ranges),
                           slice_, nk, sampling.Prior(np.asarray(cfg.alpha), cfg.beta,
                                                      cfg.beta * V), options, job2.seeds)
    for a, b in zip(topics_of(w, 2), topics):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(w.slice.nwk, slice_)
    np.testing.assert_array_equal(job.nk, nk)
    assert result.moved == moved > 0


def check_exact(cfg, chunks, w, job, result, rows, block_words=None):
    """The slice's rows and the job's topic totals are the counts of the chunks' new topics,
    the reported moves are the tokens whose topic changed, and (``block_words``: the job's word
    range) no token outside it changed."""
    new = topics_of(w, len(chunks))
    nwk, nk = counts(chunks, new)
    np.testing.assert_array_equal(w.slice.nwk, nwk[rows])
    np.testing.assert_array_equal(job.nk, nk)
    changed = np.concatenate([a != c[1] for a, c in zip(new, chunks)])
    assert result.moved == int(changed.sum()) > 0
    if block_words is not None:
        words = np.concatenate([c[0] for c in chunks])
        lo, hi = block_words
        assert ((words[changed] >= lo) & (words[changed] < hi)).all()
        inside = (words >= lo) & (words < hi)
        assert changed[inside].mean() > 0.3  # the whole block was swept, not part of it
    if w.slice.lists is not None:
        assert CK.lists_match(w.slice.nwk, *w.slice.lists) < 0


@pytest.mark.parametrize("sampler", ["sparse", "dense"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_keep_the_counts_exact_and_the_chain_fixed_by_seeds_and_t(sampler, threads):
    cfg = config(sampler)
    chunks = make_chunks()
    w, job, result, rows, cuts = run(cfg, chunks, threads)
    check_exact(cfg, chunks, w, job, result, rows, (cuts[1], cuts[2]))
    again = run(cfg, chunks, threads)
    for a, b in zip(topics_of(w, 2), topics_of(again[0], 2)):
        np.testing.assert_array_equal(a, b)
    assert again[2].moved == result.moved
    serial = run(cfg, chunks, 1)[0]
    assert any(not np.array_equal(a, b) for a, b in zip(topics_of(w, 2), topics_of(serial, 2)))


@pytest.mark.parametrize("sampler", ["sparse", "dense"])
def test_threads_on_chunks_of_two_blocks_and_on_whole_documents(sampler):
    cfg = config(sampler)
    chunks = make_chunks(3, seed=5)
    # one job, its chunks on different blocks: chunk j resamples only its own block
    w, job, result, rows, cuts = run(cfg, chunks, 2, of=(0, 2, 0))
    check_exact(cfg, chunks, w, job, result, rows)
    new = topics_of(w, 3)
    for (words, topics, _), t, b in zip(chunks, new, (0, 2, 0)):
        moved = t != topics
        assert moved.any() and ((words[moved] >= cuts[b]) & (words[moved] < cuts[b + 1])).all()
    # no blocks: every token
    w, job, result, rows, _ = run(cfg, chunks, 3, blocks_=False)
    check_exact(cfg, chunks, w, job, result, rows, (0, V))


def test_mh_sampler_splits_its_phases_over_the_threads():
    cfg = config("mh")
    chunks = make_chunks()
    w, job, result, rows, _ = run(cfg, chunks, 2, blocks_=False)
    check_exact(cfg, chunks, w, job, result, rows)
    again = run(cfg, chunks, 2, blocks_=False)[0]
    for a, b in zip(topics_of(w, 2), topics_of(again, 2)):
        np.testing.assert_array_equal(a, b)


def test_thread_layout_covers_each_token_once_in_its_row_block():
    chunks = make_chunks(3, seed=8)
    rows = np.unique(np.concatenate([c[0] for c in chunks])).astype(np.int32)
    local = [np.searchsorted(rows, c[0]).astype(np.int32) for c in chunks]
    cuts = np.array([0, 20, 50, rows.shape[0]], np.int32)
    ranges = [tuple(blocks.block_ranges(ChunkLoad(0, w_, c[2], c[1]), cuts)[1:3])
              for w_, c in zip(local, chunks)]
    for T in (1, 2, 3, 5):
        groups, sub = blocks.thread_layout(local, ranges, rows.shape[0], T)
        assert len(groups) == T and all(s.shape == (T + 1, c[2].shape[0] - 1)
                                        for s, c in zip(sub, chunks))
        seen = [np.zeros(c[2].shape[0] - 1, int) for c in chunks]
        for g in groups:
            for j, a, b in g:
                seen[j][a:b] += 1
        assert all((s == 1).all() for s in seen)  # every document in one group
        mass = [sum(int((ranges[j][1][a:b] - ranges[j][0][a:b]).sum()) for j, a, b in g)
                for g in groups]
        longest = max(int((hi - lo).max()) for lo, hi in ranges)
        assert max(mass) - min(mass) <= 2 * longest  # cut at document boundaries
        blocks_of = []
        for w_, (lo, hi), s in zip(local, ranges, sub):
            np.testing.assert_array_equal(s[0], lo)
            np.testing.assert_array_equal(s[T], hi)
            assert (np.diff(s, axis=0) >= 0).all()
            for b in range(T):
                for d in range(lo.shape[0]):
                    blocks_of.append((b, w_[s[b, d]:s[b + 1, d]]))
        # the blocks are word ranges: every word of block b lies below every word of b + 1
        for b in range(T - 1):
            here = np.concatenate([x for bb, x in blocks_of if bb == b] + [np.zeros(0, int)])
            later = np.concatenate([x for bb, x in blocks_of if bb > b] + [np.zeros(0, int)])
            if here.size and later.size:
                assert here.max() < later.min()


def test_session_and_worker_refuse_bad_thread_counts():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            WorkerSession("s", config(), "distlda.worker.test", threads=bad)
        with pytest.raises(ValueError, match="threads"):
            LdaWorker("distlda.worker.t", 1 << 30, bad)


def test_worker_passes_its_threads_to_the_session_and_says_so_in_ping():
    w = LdaWorker("distlda.worker.t", 1 << 30, 3)
    assert w.ping()["threads"] == 3
    w.reset("k" * 32, config().to_wire(), "o" * 32)
    assert w._state.threads == 3
    from distlda.gibbs.local import available_cores
    assert LdaWorker("distlda.worker.t", 1 << 30).ping()["threads"] == available_cores()


def test_worker_help_documents_threads_and_bad_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--threads T" in out and "every core" in out
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(SystemExit) as e:
            main(["--threads", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "--threads" in err and "Traceback" not in err
    # the same from a shell: a usage error, no traceback
    r = subprocess.run([sys.executable, "-m", "distlda.models.lda_worker", "--threads", "0"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and "usage:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.cluster(workers=0)
def test_one_worker_with_two_threads_trains_exactly(cluster):
    """A real cluster of ONE worker started ``--threads 2`` (with DISTLDA_CHECK: it verifies
    every model update): the counts stay exact and the worker says it sweeps on 2 threads."""
    from distlda.cluster import transport
    pid = cluster.add_worker(threads=2)
    cluster.wait_workers(1)
    X, _ = planted_corpus(D=300, V=200, K=5, L=50, seed=2)
    lda = LdaModel(X, num_topics=5, iterations=12, random_state=0, distributed=True,
                   eval_every=0, chunksize=50, ns_conf=cluster.ns_conf, sampler="sparse")
    assert lda.executor_info.startswith("distributed")
    assert_exact(lda, X.sum())
    (name,) = [n for n in cluster.worker_names() if n.endswith(f".{pid}")]
    with cluster._ns() as ns:
        uri = ns.lookup(name)
    assert transport.call(uri, "ping", timeout=5.0)["threads"] == 2
    assert "sweeping on 2 threads" in cluster.logs()


def test_sweep_threads_refuses_the_mh_sampler():
    from distlda.gibbs.local import sweep_threads
    (words, topics, doc_ptr), = make_chunks(1)
    nwk, nk = ref.counts(words, topics, V, K)
    with pytest.raises(TypeError, match="exact samplers"):
        sweep_threads(sampling.Tokens([words], [topics], [doc_ptr]), nwk.astype(np.int32),
                      nk.astype(np.int32), sampling.Prior(np.full(K, 0.5), 0.1, 0.1 * V),
                      sampling.MhOptions(), [1], None, 2)
