#!/usr/bin/env python
"""Symmetric-eta sampler throughput before and after issue 14, and the non-uniform eta kernel.

Usage::

    python benchmarks/bench_eta.py                       # K=100, 20 sweeps, 3 rounds
    python benchmarks/bench_eta.py --topics 50 --sweeps 10 --rounds 2 --threads 1 2

Issue 14 added per-word and topics x words eta, sampled by a new O(K)-per-token kernel
(:func:`distlda.gibbs.kernels.sweep_eta`), and left the scalar-eta SparseLDA path as it was.
This script checks that the scalar path is no slower: it extracts the old revision
(``--before``, default c57b03b, the commit before the work) with ``git archive`` into a
temporary directory, and times both trees on the same seeded synthetic corpus, each in its
own child process, alternating rounds (old, new, old, new, ...) so drift hits both alike. It
also times the new tree with a per-word and a topics x words eta on the same corpus.

Each child trains ``LdaModel(sampler="sparse", distributed=False)``, warms up (compiles and
runs 2 sweeps), then times ``train(sweeps)``; a row gives the median tokens per second over
the rounds and the ratio to the old tree's symmetric run with the same threads, and the best
round (on a shared machine the least disturbed one). Since end-to-end runs in separate
processes are at the mercy of other load, the script first compares the two trees' scalar
kernels (``sweep_sparse``) in one process, sweep by sweep on two copies of the same chain
(which must stay identical), which is the fairest old/new comparison on a busy machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CORPUS = r"""
import numpy as np
import scipy.sparse as sp
rng = np.random.default_rng(seed)
true_k = 50
phi = rng.dirichlet(np.full(V, 0.05), true_k)
theta = rng.dirichlet(np.full(true_k, 0.1), docs)  # LDA's generative process
z = (rng.random((docs, 100, 1)) > theta.cumsum(1)[:, None, :]).sum(2).clip(0, true_k - 1)
rows = np.repeat(np.arange(docs), 100)
cols = np.empty(docs * 100, np.int64)
z = z.ravel()
for k in range(true_k):  # 100 tokens a document, each word drawn from its topic
    cols[z == k] = rng.choice(V, int((z == k).sum()), p=phi[k])
X = sp.csr_matrix((np.ones(rows.size, np.int32), (rows, cols)), shape=(docs, V))
X.sum_duplicates()
"""

CHILD = r"""
import json, sys, time
from distlda.models import LdaModel
docs, V, K, sweeps, threads, kind, seed = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                          int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], 0)
""" + CORPUS + r"""
eta = {"symmetric": 0.01, "per-word": rng.uniform(0.005, 0.02, V),
       "topic-word": rng.uniform(0.005, 0.02, (K, V))}[kind]
lda = LdaModel(X, num_topics=K, eta=eta, iterations=2, sampler="sparse", workers=threads,
               random_state=1, distributed=False, eval_every=0, progress=False)
t = time.perf_counter()
lda.train(sweeps)
secs = time.perf_counter() - t
print(json.dumps(dict(tokens=lda.num_tokens, rate=lda.num_tokens * sweeps / secs,
                      ll=lda.log_likelihood_per_token())))
"""


def extract(rev: str, into: Path) -> Path:
    """The ``distlda`` package of revision ``rev`` under ``into`` (git archive)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "distlda"],
                          check=True, capture_output=True).stdout
    tar_path = into / "old.tar"
    tar_path.write_bytes(data)
    with tarfile.open(tar_path) as tf:
        tf.extractall(into / "old", filter="data")
    return into / "old"


def kernel_ab(args, old: Path) -> dict:
    """Per-sweep seconds of the old and the new ``sweep_sparse`` (symmetric eta), in this
    process, on two copies of one chain, alternating sweep by sweep (who goes first too),
    so load from other processes hits both alike. Same seeds: the chains must stay equal."""
    import importlib.util
    import time

    import numpy as np
    sys.path.insert(0, str(ROOT))
    from distlda.gibbs import kernels as new_k
    from distlda.gibbs.chunks import iter_chunks
    # a copy under its own name, so numba's cache of it never mixes with the old tree's
    src = old.parent / "old_kernels.py"
    src.write_bytes((old / "distlda" / "gibbs" / "kernels.py").read_bytes())
    spec = importlib.util.spec_from_file_location("old_kernels", src)
    old_k = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old_k)
    ns: dict = dict(seed=0, V=args.terms, docs=args.docs)
    exec(CORPUS, ns)
    V, K = args.terms, args.topics
    chunk = next(iter(iter_chunks(ns["X"], V, args.docs)))
    topics0 = np.random.default_rng(1).integers(0, K, chunk.num_tokens).astype(np.int32)
    alpha, beta = np.full(K, 1.0 / K), 0.01
    states = {}
    for name, mod in (("old", old_k), ("new", new_k)):
        t = topics0.copy()
        nwk, nk = np.zeros((V, K), np.int32), np.zeros(K, np.int32)
        mod.count_assignments(chunk.words, t, nwk, nk, 1)
        lists = mod.build_word_lists(nwk, np.bincount(chunk.words, minlength=V))
        states[name] = (mod, t, nwk, nk, lists)
    lo, hi = chunk.doc_ptr[:-1], chunk.doc_ptr[1:]
    times: dict = {"old": [], "new": []}
    for s in range(args.kernel_sweeps + 2):  # 2 warm-up sweeps (compile)
        for name in (("old", "new") if s % 2 == 0 else ("new", "old")):
            mod, t, nwk, nk, lists = states[name]
            t0 = time.perf_counter()
            mod.sweep_sparse(chunk.words, t, chunk.doc_ptr, lo, hi, nwk, nk, *lists, alpha,
                             beta, V * beta, 1000 + s)
            if s >= 2:
                times[name].append(time.perf_counter() - t0)
    if not np.array_equal(states["old"][1], states["new"][1]):
        raise SystemExit("the old and new kernels' chains differ: not the same sampler")
    times["tokens"] = chunk.num_tokens
    return times


def run(tree: Path, args, threads: int, kind: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.docs), str(args.terms),
                          str(args.topics), str(args.sweeps), str(threads), kind],
                         capture_output=True, text=True, env=env, cwd=str(tree))
    if out.returncode:
        raise SystemExit(f"the run in {tree} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", default="c57b03b", help="old revision (default c57b03b)")
    p.add_argument("--docs", type=int, default=4000)
    p.add_argument("--terms", type=int, default=5000)
    p.add_argument("--topics", type=int, default=100)
    p.add_argument("--sweeps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--kernel-sweeps", type=int, default=40,
                   help="sweeps of the in-process old/new kernel comparison (0: skip it)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = extract(args.before, Path(tmp))
        ab = kernel_ab(args, old) if args.kernel_sweeps else None
        runs = [(f"{args.before} (before)", old, "symmetric"), ("this tree", ROOT, "symmetric"),
                ("this tree", ROOT, "per-word"), ("this tree", ROOT, "topic-word")]
        rates: dict = {}
        tokens = None
        for r in range(args.rounds):
            for threads in args.threads:
                for name, tree, kind in runs:
                    res = run(tree, args, threads, kind)
                    tokens = res["tokens"]
                    rates.setdefault((name, kind, threads), []).append(res["rate"])
                    print(f"round {r + 1}: {name:18s} {kind:10s} {threads} thr: "
                          f"{res['rate'] / 1e6:.3f} M tokens/s", file=sys.stderr)
    if ab:
        ratio = statistics.median(n / o for n, o in zip(ab["new"], ab["old"]))
        print(f"kernel sweep_sparse, symmetric eta, 1 thread, {args.kernel_sweeps} sweeps "
              f"alternating old/new in one process on equal chains: old "
              f"{ab['tokens'] * len(ab['old']) / sum(ab['old']) / 1e6:.3f} M tokens/s, new "
              f"{ab['tokens'] * len(ab['new']) / sum(ab['new']) / 1e6:.3f} M tokens/s, "
              f"median per-sweep time new/old {ratio:.3f}")
    print(f"corpus: synthetic LDA (seeded), {args.docs} docs x 100 tokens = {tokens} tokens, "
          f"V={args.terms}; K={args.topics}; "
          f"{args.sweeps} timed sweeps after 2 warm-up; sampler=sparse; median of "
          f"{args.rounds} rounds, old and new alternating")
    print(f"{'tree':20s} {'eta':11s} {'threads':>7s} {'median M tok/s':>15s} "
          f"{'vs before':>10s} {'best M tok/s':>13s} {'vs before':>10s}")
    for (name, kind, threads), values in rates.items():
        before = rates[(f"{args.before} (before)", "symmetric", threads)]
        med, best = statistics.median(values), max(values)
        print(f"{name:20s} {kind:11s} {threads:7d} {med / 1e6:15.3f} "
              f"{med / statistics.median(before):9.3f}x {best / 1e6:13.3f} "
              f"{best / max(before):9.3f}x")


if __name__ == "__main__":
    main()
