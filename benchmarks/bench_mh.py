#!/usr/bin/env python
"""Sampler choice: exact SparseLDA vs WarpLDA-style MH (mh_steps 1, 2, 4) vs tomotopy.

Usage::

    python benchmarks/bench_mh.py                          # synth-small, K=100,1000, 6 s each
    python benchmarks/bench_mh.py --topics 100,300,1000 --budget 4
    python benchmarks/bench_mh.py --doc-length 20          # documents cut into 20-token pieces

One thread, one process, every sampler started from the same random topics. Each run samples
for ``--budget`` seconds of *sampling* time (the clock is stopped while the log-likelihood is
computed after every sweep). Reported per run:

- tokens/s: ``N * (n - skip) / (t_n - t_skip)``, i.e. a long run minus a short run of the same
  chain (the first ``--skip`` sweeps carry the JIT-free warm-up, the MH proposal bootstrap and
  tomotopy's initialisation);
- joint log p(w, z) per token (``GibbsState.log_likelihood() / N``; for tomotopy recomputed
  from its assignments with the same code) after the same number of sweeps, and at the end of
  the equal wall-time budget, with the held-out log-likelihood per token of that final state
  (document completion, ``distlda.evaluation.heldout_loglik``).
"""

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from distlda.evaluation import heldout_loglik  # noqa: E402
from distlda.gibbs import kernels as K_  # noqa: E402
from distlda.gibbs import mh as _mh  # noqa: E402
from distlda.gibbs import sampling  # noqa: E402
from distlda.gibbs.chunks import iter_chunks  # noqa: E402
from distlda.gibbs.state import GibbsState  # noqa: E402

import common  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="synth-small")
    p.add_argument("--topics", default="100,1000", help="comma list of K")
    p.add_argument("--samplers", default="dense,sparse,mh1,mh2,mh4,tomotopy",
                   help="comma list: dense, sparse, mhN (N MH steps per phase), tomotopy")
    p.add_argument("--budget", type=float, default=6.0, help="sampling seconds per run")
    p.add_argument("--max-sweeps", type=int, default=200)
    p.add_argument("--min-sweeps", type=int, default=4, help="even past the budget")
    p.add_argument("--skip", type=int, default=2, help="sweeps left out of the throughput")
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--eta", type=float, default=0.01)
    p.add_argument("--doc-length", type=int, default=0,
                   help="cut documents into pieces of this many tokens (0: as they are)")
    p.add_argument("--heldout-docs", type=int, default=300)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--shared", help="team shared/ directory")
    return p.parse_args(argv)


def cut_documents(csr, length):
    """Split every document into consecutive pieces of ``length`` tokens (word-id order)."""
    csr = sp.csr_matrix(csr)
    counts = csr.data.astype(np.int64)
    words = np.repeat(csr.indices, counts)
    per_doc = np.asarray(csr.sum(axis=1)).ravel().astype(np.int64)
    doc = np.repeat(np.arange(csr.shape[0]), per_doc)
    pos = np.arange(words.size) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
    piece = np.concatenate(([0], np.cumsum((per_doc + length - 1) // length)))[doc] + pos // length
    out = sp.csr_matrix((np.ones(words.size, np.int32), (piece, words)),
                        shape=(int(piece.max()) + 1, csr.shape[1]))
    out.sum_duplicates()
    return out


class DistldaRun:
    """A GibbsState swept by ``sampling.sweep`` (exactly what LocalExecutor does, one thread)."""

    def __init__(self, train, K, alpha, eta, seed, sampler, mh_steps):
        self.state = GibbsState(K, train.shape[1], np.full(K, alpha), eta)
        rng = np.random.default_rng(seed)
        for c in iter_chunks(train, train.shape[1], 2000):
            self.state.add_chunk(c, int(rng.integers(2 ** 32)))
        self.rng = np.random.default_rng(seed + 1)
        self.sampler, self.mh_steps = sampler, mh_steps
        # the MH sampler's memory, kept across this run's sweeps (as LocalExecutor keeps it)
        self.options = (sampling.MhOptions(mh_steps, _mh.Workspace()) if sampler == "mh"
                        else sampling.DenseOptions() if sampler == "dense"
                        else sampling.SparseOptions())

    def sweep(self):
        st = self.state
        sampling.sweep(sampling.Tokens.of(st.chunks), st.nwk, st.nk, sampling.Prior.of(st),
                       self.options, self.rng.integers(2 ** 32, size=len(st.chunks)))

    def loglik(self):
        return self.state.log_likelihood() / self.state.num_tokens

    def phi(self):
        return common.phi_from_counts(self.state.nwk.T, self.state.beta)


class TomotopyRun:
    """tomotopy LDAModel, one worker, fixed alpha; its state is scored with our code."""

    def __init__(self, train, K, alpha, eta, seed):
        import tomotopy as tp
        self.tp = tp
        vocab = [str(i) for i in range(train.shape[1])]
        self.mdl = tp.LDAModel(k=K, alpha=alpha, eta=eta, seed=seed)
        self.mdl.optim_interval = 0
        for words in common.csr_to_word_docs(train, vocab):
            self.mdl.add_doc(words)
        self.V, self.K, self.alpha, self.eta = train.shape[1], K, np.full(K, alpha), eta
        self.first = True

    def sweep(self):
        self.mdl.train(1, workers=1, parallel=self.tp.ParallelScheme.NONE)

    def _assignments(self):
        ids = np.array([int(w) for w in self.mdl.vocabs], np.int64)   # tomotopy id -> ours
        words, topics, lens = [], [], []
        for d in self.mdl.docs:
            words.append(ids[np.asarray(d.words, np.int64)])
            topics.append(np.asarray(d.topics, np.int32))
            lens.append(len(d.words))
        doc_ptr = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        return np.concatenate(words).astype(np.int32), np.concatenate(topics), doc_ptr

    def loglik(self):
        words, topics, doc_ptr = self._assignments()
        nwk = np.zeros((self.V, self.K), np.int32)
        nk = np.zeros(self.K, np.int32)
        K_.count_assignments(words, topics, nwk, nk, 1)
        ll = K_.loglik_words(nwk, nk, self.eta, self.V) + K_.loglik_docs(topics, doc_ptr,
                                                                         self.alpha)
        return ll / words.shape[0]

    def phi(self):
        words, topics, _ = self._assignments()
        nwk = np.zeros((self.V, self.K), np.int32)
        K_.count_assignments(words, topics, nwk, np.zeros(self.K, np.int32), 1)
        return common.phi_from_counts(nwk.T, self.eta)


def make_run(name, train, K, args):
    if name == "tomotopy":
        return TomotopyRun(train, K, args.alpha, args.eta, args.seed)
    if name in ("sparse", "dense"):
        return DistldaRun(train, K, args.alpha, args.eta, args.seed, name, None)
    if name.startswith("mh"):
        return DistldaRun(train, K, args.alpha, args.eta, args.seed, "mh", int(name[2:]))
    raise SystemExit(f"unknown sampler {name!r}")


def warm_up(samplers):
    """Compile (or load from numba's cache) every kernel before anything is timed."""
    rng = np.random.default_rng(0)
    X = sp.random(30, 50, density=0.2, format="csr", random_state=0, dtype=np.float64)
    X.data = rng.integers(1, 4, X.data.size).astype(np.float64)
    X = sp.csr_matrix(X.astype(np.int32))
    for name in samplers:
        if name != "tomotopy":
            exact = name in ("sparse", "dense")
            run = DistldaRun(X, 5, 0.1, 0.01, 0, name if exact else "mh",
                             None if exact else int(name[2:]))
            run.sweep()
            run.sweep()
            run.loglik()


def measure(run, budget, max_sweeps, min_sweeps):
    """Sweep until ``budget`` seconds of sampling; (sweeps, sampling seconds, LL) per sweep."""
    trace = []
    clock = 0.0
    for n in range(1, max_sweeps + 1):
        t0 = time.perf_counter()
        run.sweep()
        clock += time.perf_counter() - t0
        trace.append((n, clock, run.loglik()))
        if clock >= budget and n >= min_sweeps:
            break
    return trace


def main(argv=None):
    args = parse_args(argv)
    samplers = args.samplers.split(",")
    topics = [int(k) for k in args.topics.split(",")]
    files = common.corpus_files(args.corpus, common.shared_dir(args.shared))
    train = common.load_csr(files.train)
    heldout = common.subsample_docs(common.load_csr(files.heldout), args.heldout_docs,
                                    args.seed)
    if args.doc_length:
        train = cut_documents(train, args.doc_length)
        heldout = cut_documents(heldout, 2 * args.doc_length)
    N = common.n_tokens(train)
    common.log(f"{args.corpus}: D={train.shape[0]} V={train.shape[1]} N={N} "
               f"mean doc length {N / train.shape[0]:.1f}")
    warm_up(samplers)
    lines = [f"bench_mh  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
             f"command: bench_mh.py {' '.join(sys.argv[1:])}"]
    lines += common.environment_summary()
    lines.append(f"corpus {args.corpus}: D={train.shape[0]} V={train.shape[1]} tokens={N} "
                 f"(mean doc length {N / train.shape[0]:.1f}); alpha={args.alpha} "
                 f"eta={args.eta}; one thread; budget {args.budget:g} s sampling per run; "
                 f"tokens/s over sweeps {args.skip + 1}..n")
    for K in topics:
        traces = {}
        finals = {}
        for name in samplers:
            run = make_run(name, train, K, args)
            trace = measure(run, args.budget, args.max_sweeps, args.min_sweeps)
            traces[name] = trace
            ho = heldout_loglik(run.phi(), np.full(K, args.alpha), heldout,
                                iterations=args.eval_iters, random_state=args.seed)
            finals[name] = ho
            n, t, ll = trace[-1]
            common.log(f"K={K} {name}: {n} sweeps in {t:.2f} s, LL {ll:.4f}, held-out {ho:.4f}")
        equal = min(len(tr) for tr in traces.values())
        rows = []
        tomo_rate = None
        for name in samplers:
            tr = traces[name]
            n, t, ll = tr[-1]
            s = min(args.skip, n - 1)
            t_s = tr[s - 1][1] if s > 0 else 0.0
            rate = N * (n - s) / max(t - t_s, 1e-9)
            if name == "tomotopy":
                tomo_rate = rate
            rows.append([name, rate, tr[equal - 1][2], n, ll, finals[name]])
        table = []
        for name, rate, ll_eq, n, ll, ho in rows:
            table.append([name, str(K), f"{rate:,.0f}",
                          f"{rate / tomo_rate:.2f}x" if tomo_rate else "-",
                          f"{ll_eq:.4f}", str(n), f"{ll:.4f}", f"{ho:.4f}"])
        lines.append("")
        lines.append(common.format_table(
            ["sampler", "K", "tokens/s", "vs tomotopy", f"LL/tok @{equal} sweeps",
             "sweeps in budget", "LL/tok @budget", "held-out LL/tok @budget"], table,
            title=f"== K={K}"))
        lines.append("LL trace (sweep: sampling s, joint LL/token):")
        for name in samplers:
            pts = traces[name]
            pick = sorted({0, 1, 2, 4, 9, 19, 49, 99, len(pts) - 1} & set(range(len(pts))))
            lines.append(f"  {name:9s} " + "  ".join(
                f"{pts[i][0]}:{pts[i][1]:.2f}s:{pts[i][2]:.3f}" for i in pick))
    text = "\n".join(lines)
    print(text)
    common.OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = common.OUT_DIR / f"mh-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    out.write_text(text + "\n")
    common.log(f"wrote {out}")


if __name__ == "__main__":
    main()
