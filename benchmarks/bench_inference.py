#!/usr/bin/env python
"""Inference on big models: time and peak memory per call of ``lda[bow]`` (issue 12).

Usage::

    python benchmarks/bench_inference.py                 # V in 1e4, 1e5, 4e5; K in 100, 1000
    python benchmarks/bench_inference.py --terms 10000 --topics 100 --calls 50

The model's word-topic counts are fabricated (no training): every word gets counts in a few
random topics, so the count table has the size of a trained model's. For each model it
reports, per call (median over ``--calls`` calls, after one warm-up call that builds the
inference cache):

- ``2-word ms`` / ``100-word ms``: ``lda[bow]`` of a document of 2 and of 100 distinct words;
- ``batch ms/doc``: ``lda.inference`` of 100 documents of 20 words, per document;
- ``peak KiB``: the largest peak of memory allocated through Python and NumPy during one
  2-word call (tracemalloc; the kernel's own scratch, a few K-vectors and the document's
  tokens, is allocated by numba and not seen here);
- ``RSS growth MiB``: how much the process's peak RSS rose during all the calls.

Before issue 12 every call built the K x V table and a transposed copy: 0.25-0.29 s and a
915.6 MiB peak per two-word call at V=400,000, K=100.
"""

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from distlda.models import LdaModel  # noqa: E402


def fabricate(num_terms: int, num_topics: int, seed: int = 0, per_word: int = 5) -> LdaModel:
    """A model whose counts are ``per_word`` random (topic, count) entries per word."""
    lda = LdaModel(None, num_topics=num_topics, id2word={num_terms - 1: "last"},
                   random_state=seed, workers=1, inference_iterations=50)
    rng = np.random.default_rng(seed)
    nwk = lda.state.nwk
    rows = np.repeat(np.arange(num_terms), per_word)
    cols = rng.integers(0, num_topics, rows.shape[0])
    nwk[rows, cols] = rng.integers(1, 50, rows.shape[0], dtype=np.int32)
    lda.state.nk[:] = nwk.sum(axis=0, dtype=np.int64)
    lda.state.touch()  # counts changed in place
    return lda


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(num_terms: int, num_topics: int, calls: int) -> dict:
    lda = fabricate(num_terms, num_topics)
    rng = np.random.default_rng(1)
    doc2 = [(int(w), 1) for w in rng.choice(num_terms, 2, replace=False)]
    doc100 = [(int(w), 1) for w in rng.choice(num_terms, 100, replace=False)]
    batch = [[(int(w), 1) for w in rng.choice(num_terms, 20, replace=False)] for _ in range(100)]
    t = time.perf_counter()
    lda[doc2]  # warm-up: compiles (first model only) and builds the inference cache
    first = time.perf_counter() - t
    rss0 = rss_mib()

    def timed(fn, n):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    t2 = timed(lambda: lda[doc2], calls)
    t100 = timed(lambda: lda[doc100], max(calls // 5, 3))
    tb = timed(lambda: lda.fold_in(batch), 3) / len(batch)
    tracemalloc.start()
    lda[doc2]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(V=num_terms, K=num_topics, counts_mib=lda.state.nwk.nbytes / 2 ** 20,
                first_ms=first * 1e3, ms2=t2 * 1e3, ms100=t100 * 1e3, batch_ms=tb * 1e3,
                peak_kib=peak / 1024, rss_growth=rss_mib() - rss0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--terms", default="10000,100000,400000", help="comma list of V")
    p.add_argument("--topics", default="100,1000", help="comma list of K")
    p.add_argument("--calls", type=int, default=100, help="calls timed per figure (median)")
    args = p.parse_args(argv)
    rows = [measure(v, k, args.calls) for k in map(int, args.topics.split(","))
            for v in map(int, args.terms.split(","))]
    head = ("V", "K", "counts MiB", "first call ms", "2-word ms", "100-word ms",
            "batch ms/doc", "peak KiB", "RSS growth MiB")
    print("  ".join(h.rjust(max(len(h), 7)) for h in head))
    for r in rows:
        cells = (f"{r['V']:,}", f"{r['K']}", f"{r['counts_mib']:.1f}", f"{r['first_ms']:.1f}",
                 f"{r['ms2']:.3f}", f"{r['ms100']:.3f}", f"{r['batch_ms']:.3f}",
                 f"{r['peak_kib']:.1f}", f"{r['rss_growth']:.1f}")
        print("  ".join(c.rjust(max(len(h), 7)) for c, h in zip(cells, head)))


if __name__ == "__main__":
    main()
