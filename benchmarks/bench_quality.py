#!/usr/bin/env python
"""Time to quality against tomotopy: how long distlda takes to reach tomotopy's held-out fit.

Usage::

    python benchmarks/bench_quality.py                    # 3 corpora x K 50,100,200 x 1,2 threads
    python benchmarks/bench_quality.py --quick            # synth-small, K=100, 1 thread, ~1 min
    python benchmarks/bench_quality.py --corpora synth,debdesc,kerneldoc --topics 100 \\
        --threads 1 --seeds 3                             # the issue-15 bar, 3 chains each
    python benchmarks/bench_quality.py --corpora debdesc --topics 100 --threads 1 \\
        --samplers auto,sparse,dense,mh

For every corpus, K and thread count, tomotopy trains first, in a fresh ``spawn`` child, for
``max(--targets)`` seconds of training (``train()`` calls only: documents are added before the
clock starts). Its held-out log-likelihood at each target time (default 20 s and 60 s) and at
``--table-at`` (30 s) is read off its run: the states just before and just after the time are
scored and linearly interpolated. Then each distlda sampler trains in its own child, its state
copied every ``--grid`` seconds of training with the clock stopped, until it has reached every
target (checked every few seconds, clock stopped) and trained ``--table-at`` seconds, or spent
``max(--targets)``. Its time to a target is the time from which on it stays there: found by
looking back from the last copy for one below the target (the fit first dips below the
random start's), then bisection after it, and linear interpolation between the two copies
around the crossing.

Reported per target T: ``time to tomotopy's LL at T / T`` (lower is better; 0.5 is "half the
time"; ``>x`` when distlda did not get there in its run). With ``--seeds N`` each library runs
N chains (seeds ``--seed`` on): the targets are the mean of tomotopy's chains' fits, and a
cell is the median of distlda's chains' ratios, with their range. Once both libraries are
near their plateau the fit of one chain depends on the mode it finds (chains of one sampler
differ by about 0.01 nats there), so a single chain's time to a late target measures luck as
much as speed: use ``--seeds 3`` or more for the late targets. Also tokens/s over the whole run of
each library (tokens x sweeps / training seconds) and both held-out log-likelihoods at 30 s:
the issue-15 table. ONE evaluator scores every state: document completion
(``distlda.evaluation.heldout_loglik``) on the same seeded held-out documents, from
``phi = (n_kw + eta) / (n_k + V eta)`` and alpha. Priors alpha=0.1, eta=0.01, fixed, as in
bench_serial.py. distlda's clock starts at ``train()``, after the corpus is read into a model
and the compiled kernels are loaded from numba's cache (a tiny model is trained first), as
tomotopy's starts after ``add_doc``. Threads: distlda ``workers=N``; tomotopy ``workers=N``
with its default ParallelScheme (NONE with one worker).

Corpora: synth (5.4M tokens, ~150 a document), debdesc (2.1M, ~37), kerneldoc (1.5M, ~720;
built by build_kerneldoc.py from Debian's linux-doc-6.1). The machine must be quiet: a run
of the full grid takes about an hour.
"""

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402

FULL = dict(corpora="synth,debdesc,kerneldoc", topics="50,100,200", threads="1,2",
            targets="20,60", table_at=30.0, grid=0.5, eval_iters=30, heldout_docs=500)
QUICK = dict(corpora="synth-small", topics="100", threads="1", targets="4,12", table_at=8.0,
             grid=0.25, eval_iters=20, heldout_docs=200)


class _Budget(Exception):
    """Raised by the sweep callback to end a distlda run."""


class Recorder:
    """A training clock that stops while states are copied or scored."""

    def __init__(self):
        self.paused = 0.0
        self.t0 = time.perf_counter()

    def clock(self):
        return time.perf_counter() - self.t0 - self.paused

    def pause(self):
        return time.perf_counter()

    def resume(self, since):
        self.paused += time.perf_counter() - since


def _heldout(files, docs, seed):
    return common.subsample_docs(common.load_csr(files.heldout), docs, seed)


def _score(counts, alpha, eta, held, args):
    return common.get_evaluator(args["evaluator"])[1](
        common.phi_from_counts(counts, eta), alpha, held, iterations=args["eval_iters"],
        random_state=args["seed"])


# ----------------------------------------------------------------------------- tomotopy child
def run_tomotopy(files, K, threads, args):
    """Train tomotopy for max(targets) seconds; held-out LL at each probe time."""
    os.environ.update(common.SINGLE_THREAD_ENV)
    import warnings

    import tomotopy as tp
    warnings.simplefilter("ignore", RuntimeWarning)   # "may differ even with fixed seed"
    train = common.load_csr(files.train)
    held = _heldout(files, args["heldout_docs"], args["seed"])
    vocab = common.load_vocab(files.vocab)
    mdl = tp.LDAModel(k=K, alpha=args["alpha"], eta=args["eta"], seed=args["chain"])
    mdl.optim_interval = 0
    for words in common.csr_to_word_docs(train, vocab):
        mdl.add_doc(words)
    scheme = tp.ParallelScheme.NONE if threads == 1 else tp.ParallelScheme.DEFAULT
    probes = sorted(set(args["targets"]) | {args["table_at"]})
    rec = Recorder()
    sweeps, block, prev = 0, 1, None                  # prev: (clock, counts) of the last block
    around = {}                                        # probe -> ((t0, c0), (t1, c1))
    while True:
        mdl.train(block, workers=threads, parallel=scheme)
        sweeps += block
        t = rec.clock()
        since = rec.pause()
        state = (t, common.tomotopy_counts(mdl, vocab))
        for p in probes:
            if p not in around and t >= p:
                around[p] = (prev or (0.0, None), state)
        prev = state
        rec.resume(since)
        if sweeps == 1:                                # blocks of ~--grid seconds
            block = max(1, int(round(args["grid"] / max(t, 1e-6))))
        if t >= probes[-1]:
            break
    alpha = np.asarray(mdl.alpha, dtype=np.float64)
    ll = {}
    for p, ((t0, c0), (t1, c1)) in around.items():
        l1 = _score(c1, alpha, args["eta"], held, args)
        l0 = _score(c0, alpha, args["eta"], held, args) if c0 is not None else l1
        ll[p] = l0 + (l1 - l0) * (p - t0) / max(t1 - t0, 1e-9)
    return {"ll": ll, "sweeps": sweeps, "seconds": prev[0],
            "tokens": common.n_tokens(train)}


# ----------------------------------------------------------------------------- distlda child
def run_distlda(files, K, threads, sampler, goals, args):
    """Train distlda until it reaches every goal LL and ran table_at seconds (or max targets)."""
    os.environ.update(common.SINGLE_THREAD_ENV)
    from distlda.models import LdaModel
    train = common.load_csr(files.train)
    held = _heldout(files, args["heldout_docs"], args["seed"])
    opts = dict(num_topics=K, alpha=args["alpha"], eta=args["eta"], distributed=False,
                workers=threads, sampler=sampler, eval_every=0)
    LdaModel(train[:20], iterations=2, **opts)          # load the kernels from numba's cache
    lda = LdaModel(train, iterations=0, random_state=args["chain"], **opts)
    limit = max(args["targets"])
    snaps = [(0.0, np.asarray(lda.sstats, dtype=np.int32))]
    checked = {"next": 5.0}
    rec = None

    def on_sweep(model, stats):
        t = rec.clock()
        since = rec.pause()
        stop = t >= limit
        check = not stop and t >= checked["next"] and t >= args["table_at"]
        if t - snaps[-1][0] >= args["grid"] or stop or check:
            snaps.append((t, np.asarray(model.sstats, dtype=np.int32)))
        if check:  # every 5 s once past table_at: has it reached every goal?
            checked["next"] = t + 5.0
            best = _score(snaps[-1][1], model.alpha, args["eta"], held, args)
            stop = best >= max(goals.values())
        rec.resume(since)
        if stop:
            raise _Budget

    lda.callbacks = [on_sweep]
    rec = Recorder()
    try:
        lda.train(10 ** 6)
    except _Budget:
        pass
    seconds, sweeps = snaps[-1][0], lda.state.sweeps_done
    alpha = np.asarray(lda.alpha, dtype=np.float64)
    cache = {}

    def ll_at(i):
        if i not in cache:
            cache[i] = _score(snaps[i][1], alpha, args["eta"], held, args)
        return cache[i]

    reach = {}
    for name, goal in goals.items():
        hi = len(snaps) - 1
        if ll_at(hi) < goal:
            reach[name] = None                           # not reached in the run
            continue
        # The fit first dips below the start (phi of random topics is the unigram model), so
        # look back from the end for a copy below the goal, then bisect after it: the time
        # from which on the run stays at the goal.
        lo = hi
        while lo > 0 and ll_at(lo) >= goal:
            lo = max(0, lo - 8)
        if ll_at(lo) >= goal:
            reach[name] = snaps[lo][0]                   # never below: at the start
            continue
        hi = min(lo + 8, len(snaps) - 1)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ll_at(mid) >= goal:
                hi = mid
            else:
                lo = mid
        (t0, t1), (l0, l1) = (snaps[lo][0], snaps[hi][0]), (ll_at(lo), ll_at(hi))
        reach[name] = t0 + (t1 - t0) * (goal - l0) / (l1 - l0) if l1 > l0 else t1
    # LL at table_at: interpolate between the copies around it
    i = next((j for j, s in enumerate(snaps) if s[0] >= args["table_at"]), len(snaps) - 1)
    t0, t1 = snaps[max(i - 1, 0)][0], snaps[i][0]
    l0, l1 = ll_at(max(i - 1, 0)), ll_at(i)
    at = l1 if t1 <= t0 else l0 + (l1 - l0) * (min(args["table_at"], t1) - t0) / (t1 - t0)
    return {"reach": reach, "ll_table": at, "sweeps": sweeps, "seconds": seconds,
            "tokens": common.n_tokens(train), "sampler": lda.executor_info}


def in_child(fn, *a):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *a).result()


# ----------------------------------------------------------------------------- driver
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", help=f"comma list (default {FULL['corpora']})")
    p.add_argument("--topics", help=f"comma list of K (default {FULL['topics']})")
    p.add_argument("--threads", help=f"comma list (default {FULL['threads']})")
    p.add_argument("--samplers", default="auto", help="distlda samplers (default auto)")
    p.add_argument("--targets", help="tomotopy training seconds whose fit distlda must reach "
                                     f"(default {FULL['targets']}; quick: {QUICK['targets']})")
    p.add_argument("--table-at", type=float, help="seconds at which both held-out LLs are "
                                                  f"tabled (default {FULL['table_at']:.0f})")
    p.add_argument("--grid", type=float, help="seconds between distlda's state copies "
                                              f"(default {FULL['grid']})")
    p.add_argument("--out", help="table file (default benchmarks/out/quality-<date>-<time>.txt)")
    p.add_argument("--seeds", type=int, default=1,
                   help="chains a library (seeds --seed, --seed+1, ...): targets are the mean "
                        "of tomotopy's, cells the median of distlda's (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: synth-small, K=100, 1 thread")
    common.add_model_args(p, FULL, QUICK)
    args = common.fill_defaults(p.parse_args(argv), FULL, QUICK)
    args.corpora = common.split_list(args.corpora, str)
    args.topics = common.split_list(args.topics, int)
    args.threads = common.split_list(args.threads, int)
    args.targets = common.split_list(args.targets, float)
    args.samplers = common.split_list(args.samplers, str)
    return args


def _mean(runs, key):
    return {t: float(np.mean([r[key][t] for r in runs])) for t in runs[0][key]}


def _rate(runs):
    return float(np.mean([r["tokens"] * r["sweeps"] / r["seconds"] for r in runs]))


def _cell(runs, t):
    """The median over chains of time-to-target / target, and their range when several
    (``>x``: a chain that did not get there, x its length / target)."""
    cells = sorted((r["reach"][t] / t, "") if r["reach"][t] is not None
                   else (np.inf, f">{r['seconds'] / t:.2f}") for r in runs)
    shown = [text or f"{x:.2f}" for x, text in cells]
    mid = len(cells) // 2
    if len(cells) % 2:
        med = shown[mid]
    else:  # two middle chains: their mean, or the slower one's when it did not get there
        pair = cells[mid - 1][0] + cells[mid][0]
        med = f"{pair / 2:.2f}" if np.isfinite(pair) else shown[mid]
    return med if len(cells) == 1 else f"{med} [{shown[0]}-{shown[-1]}]"


def _one_setting(files, K, thr, args, child):
    """Rows of one corpus, K and thread count: tomotopy's seeds, then each distlda sampler's."""
    seeds = [args.seed + i for i in range(args.seeds)]
    tts = [in_child(run_tomotopy, files, K, thr, dict(child, chain=s)) for s in seeds]
    tt_ll, tt_rate = _mean(tts, "ll"), _rate(tts)          # the mean of tomotopy's chains
    goals = {t: tt_ll[t] for t in args.targets}
    rows = []
    for sampler in args.samplers:
        common.log(f"K={K} threads={thr}: distlda {sampler} x{len(seeds)}")
        dls = [in_child(run_distlda, files, K, thr, sampler, goals, dict(child, chain=s))
               for s in seeds]
        label = sampler if sampler != "auto" else \
            "auto=" + dls[0]["sampler"].rsplit(", ", 1)[-1].split()[0]
        rate = _rate(dls)
        rows.append([K, thr, label, f"{tt_rate / 1e6:.2f}M", f"{rate / 1e6:.2f}M",
                     f"{rate / tt_rate:.2f}", f"{np.mean([d['ll_table'] for d in dls]):.4f}",
                     f"{tt_ll[args.table_at]:.4f}",
                     *[_cell(dls, t) for t in args.targets]])
        common.log(" | ".join(map(str, rows[-1])))
    return rows


def main(argv=None):
    args = parse_args(argv)
    shared = common.shared_dir(args.shared)
    child = dict(alpha=args.alpha, eta=args.eta, seed=args.seed, evaluator=args.evaluator,
                 eval_iters=args.eval_iters, heldout_docs=args.heldout_docs,
                 targets=args.targets, table_at=args.table_at, grid=args.grid)
    stamp = time.strftime("%Y-%m-%d-%H%M%S")
    out = Path(args.out) if args.out else common.OUT_DIR / f"quality-{stamp}.txt"
    rows = []
    heads = (["corpus", "K", "thr", "distlda", "tomotopy tok/s", "distlda tok/s", "x tomotopy",
              f"LL@{args.table_at:.0f}s distlda", "tomotopy"]
             + [f"to tt@{t:.0f}s" for t in args.targets])
    for name in args.corpora:
        files = common.corpus_files(name, shared)
        for K in args.topics:
            for thr in args.threads:
                common.log(f"{name} K={K} threads={thr}: tomotopy x{args.seeds}")
                rows += [[name] + r for r in _one_setting(files, K, thr, args, child)]
    title = (f"Time to tomotopy's held-out LL (distlda seconds / tomotopy seconds; lower is "
             f"better), alpha={args.alpha}, eta={args.eta}, evaluator: document completion, "
             f"{args.heldout_docs} held-out docs, {args.eval_iters} fold-in sweeps, "
             f"{args.seeds} chain(s) a library, seeds {args.seed}.."
             f"{args.seed + args.seeds - 1}" + ("; targets: the mean of tomotopy's chains; "
                                               "cells: the median of distlda's [range]"
                                               if args.seeds > 1 else ""))
    text = "\n".join(common.environment_summary() + ["", common.format_table(heads, rows, title)])
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    common.log(f"wrote {out}")


if __name__ == "__main__":
    main()
