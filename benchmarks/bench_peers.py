#!/usr/bin/env python
"""distlda against its peers: speed per core, peak memory, held-out quality, convergence.

Usage::

    python benchmarks/bench_peers.py                 # synth K=1000 + debdesc K=100, ~15 min
    python benchmarks/bench_peers.py --quick         # smoke run on synth-small, ~1-2 min
    python benchmarks/bench_peers.py --corpora debdesc --topics 100,1000 --libs distlda,lda

Configurations: distlda for each sampler ("sparse", "mh" when ``LdaModel`` takes
``sampler=``) with 1 and 2 threads; tomotopy with 1 and 2 workers; ``lda`` (collapsed Gibbs,
one thread); gensim ``LdaMulticore`` (online variational Bayes, one E-step worker process plus
the main process). A library that does not import is skipped with a note.

Every training run is a fresh ``spawn`` child (benchmarks/common.py). Throughput is
long-minus-short: ``tokens * (n_long - n_short) / (t_long - t_short)`` over Gibbs sweeps, or
over passes for gensim; per core it is divided by the threads (workers) used. Every model is
scored by ONE evaluator (document completion, ``distlda.evaluation.heldout_loglik``) on the
same held-out documents, from its topic-word matrix and alpha. Each iteration count is its own
fresh run, which gives the convergence table (held-out LL/token against wall seconds) and a
PNG of the curves per corpus and K. See benchmarks/README.rst.
"""

import argparse
import dataclasses
import inspect
import json
import os
import sys
import time
from pathlib import Path

# One thread per numeric runtime, set before numpy/numba load, here and in every child.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (after the environment and sys.path set-up)

FULL = dict(corpora="synth,debdesc", topics="synth:1000,debdesc:100,1000", iters="4,16",
            passes="1,2", eval_iters=30, heldout_docs=1000, peer_budget=130.0)
QUICK = dict(corpora="synth-small", topics="100", iters="5,20", passes="1,2", eval_iters=10,
             heldout_docs=200, peer_budget=45.0)

#: Speed of the slow peers on the reference 2-core Xeon VM, in (token x topic) per second
#: for one sweep (lda: 1.2e8 at K=1000 to 2.7e8 at K=100) or one pass (gensim, default
#: ``iterations=50`` per document: 3.5e6 to 1.1e7, a later pass often slower than the first);
#: used only to predict run times against ``--peer-budget``.
PEER_RATE = {"lda": 1.5e8, "gensim": 5e6}


# ----------------------------------------------------------------------------- configurations
@dataclasses.dataclass(frozen=True)
class Config:
    """One benchmarked set-up: a library, its threads and (distlda) its sampler."""

    lib: str
    workers: int = 1
    sampler: str | None = None

    @property
    def family(self):
        """Name without the thread count, e.g. ``distlda mh`` (speed-ups compare within it)."""
        if self.lib == "distlda":
            return f"distlda {self.sampler or 'sparse'}"
        return "gensim LdaMulticore" if self.lib == "gensim" else self.lib

    @property
    def name(self):
        return f"{self.family} x{self.workers}"

    @property
    def unit(self):
        return "pass" if self.lib == "gensim" else "sweep"

    @property
    def units(self):
        return "passes" if self.lib == "gensim" else "sweeps"

    def options(self, mh_steps=None, tomotopy_parallel=None):
        """Keyword settings handed to the child (see :func:`common.fit_isolated`)."""
        opts = {"workers": self.workers}
        if self.lib == "tomotopy" and tomotopy_parallel:
            opts["parallel"] = tomotopy_parallel
        if self.sampler is not None:
            opts["sampler"] = self.sampler
            if self.sampler == "mh" and mh_steps is not None:
                opts["mh_steps"] = mh_steps
        return opts


def build_configs(args):
    """Configurations to run, in table order, and notes on what was left out."""
    configs, notes = [], []
    for lib in args.libs:
        try:
            if lib == "distlda":
                from distlda.models import LdaModel
            else:
                __import__(common.LIBRARY_MODULES[lib])
        except Exception as exc:                       # missing package, half-written module
            notes.append(f"{lib} skipped: {type(exc).__name__}: {exc}")
            continue
        if lib == "distlda":
            params = inspect.signature(LdaModel).parameters
            if "sampler" in params:
                samplers = args.samplers
            else:
                samplers = [None]
                notes.append("distlda: LdaModel takes no 'sampler' (yet): sparse sampler only"
                             + (f", {', '.join(s for s in args.samplers if s != 'sparse')} "
                                "not run" if set(args.samplers) - {"sparse"} else ""))
            if args.mh_steps is not None and "mh_steps" not in params:
                notes.append("distlda: LdaModel takes no 'mh_steps'; --mh-steps ignored")
            configs += [Config(lib, w, s) for s in samplers for w in args.workers]
        elif lib == "tomotopy":
            configs += [Config(lib, w) for w in args.workers]
        elif lib == "lda":
            configs.append(Config(lib, 1))
            if max(args.workers) > 1:
                notes.append("lda: single-threaded, run with 1 thread only")
        elif lib == "gensim":
            configs.append(Config(lib, 1))
            notes.append("gensim LdaMulticore is variational Bayes, not Gibbs: counts are "
                         "passes over the corpus, tokens/s = tokens * passes / s; x1 = one "
                         "E-step worker process + the main process (reading, M-step); phi = "
                         "get_topics()")
    return configs, notes


def plan_counts(config, args, tokens, num_topics):
    """Iteration (or pass) counts for `config`, shrunk for slow peers to fit the budget.

    distlda and tomotopy always run ``--iters``. lda (``--iters``) and gensim (``--passes``)
    cost O(K) per token: their sampling time is predicted as ``tokens * K / PEER_RATE`` per
    sweep or pass, and all runs of the configuration together must fit ``--peer-budget``.
    The longest prefix of the counts that fits is kept; when that is fewer than two counts,
    the largest pair ``(max(1, n // 5), n)`` that fits replaces them; when not even ``(1, 2)``
    fits, the configuration is skipped.

    Returns
    -------
    counts : list of int
        Ascending; empty means skipped.
    note : str or None
    """
    counts = args.passes if config.lib == "gensim" else args.iters
    if config.lib not in PEER_RATE or not args.peer_budget:
        return counts, None
    per_unit = tokens * num_topics / PEER_RATE[config.lib]
    units = args.peer_budget / per_unit                 # sweeps (passes) the budget buys
    keep = [n for i, n in enumerate(counts) if sum(counts[:i + 1]) <= units]
    if keep == counts:
        return counts, None
    why = (f"{config.name}: predicted ~{per_unit:.0f} s per {config.unit}, {config.units} "
           f"{counts} ~{sum(counts) * per_unit:.0f} s > --peer-budget {args.peer_budget:.0f} s")
    if len(keep) >= 2:
        return keep, f"{why}: {config.units} {keep} only"
    for n in range(counts[-1], 1, -1):
        short = min(max(1, n // 5), n - 1)
        if short + n <= units:
            return [short, n], f"{why}: {config.units} [{short}, {n}] instead"
    return [], f"{why}: skipped (--peer-budget 0 runs it anyway)"


# ----------------------------------------------------------------------------- options
def parse_args(argv=None):
    """Parse the command line; ``--quick`` only changes the defaults left unset."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", help=f"comma list of synth, synth-small, debdesc "
                                     f"(default {FULL['corpora']}; quick: {QUICK['corpora']})")
    p.add_argument("--topics", help="comma list of K for every corpus, or CORPUS:K items for one "
                                    "corpus (bare K items apply to the corpora without one) "
                                    f"(default {FULL['topics']}; quick: {QUICK['topics']})")
    p.add_argument("--iters", help="Gibbs sweeps, one fresh run per count; smallest and largest "
                                   f"give the throughput (default {FULL['iters']}; "
                                   f"quick: {QUICK['iters']})")
    p.add_argument("--passes", help="gensim passes, one fresh run each "
                                    f"(default {FULL['passes']}; quick: {QUICK['passes']})")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per (configuration, count); the fastest counts (default 1)")
    p.add_argument("--libs", default=",".join(common.PEER_LIBRARIES),
                   help=f"comma list (default {','.join(common.PEER_LIBRARIES)})")
    p.add_argument("--workers", default="1,2",
                   help="thread counts for distlda and tomotopy (default 1,2)")
    p.add_argument("--samplers", default="sparse,mh",
                   help="distlda samplers, if LdaModel takes sampler= (default sparse,mh)")
    p.add_argument("--mh-steps", type=int, help="distlda mh_steps (default: LdaModel's)")
    p.add_argument("--tomotopy-parallel", choices=("default", "partition", "copy_merge"),
                   default="default", help="tomotopy ParallelScheme with more than one worker "
                   "(default: DEFAULT, tomotopy's choice; one worker always uses NONE)")
    p.add_argument("--peer-budget", type=float,
                   help="seconds all runs of the lda (gensim) configuration may be predicted to "
                        "take before its counts are shrunk or it is skipped; 0 = no limit "
                        f"(default {FULL['peer_budget']:.0f}; quick: {QUICK['peer_budget']:.0f})")
    common.add_model_args(p, FULL, QUICK)
    p.add_argument("--out", help="table file (default benchmarks/out/peers-<date>-<time>.txt; "
                                 "raw results beside it as .json, plots as "
                                 "peers-<corpus>-K<K>-<date>-<time>.png)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: synth-small, K=100, a few iterations, small evaluation")
    args = common.fill_defaults(p.parse_args(argv), FULL, QUICK)
    args.corpora = common.split_list(args.corpora, str)
    try:
        args.topics = topics_by_corpus(args.topics, args.corpora)
    except ValueError as exc:
        p.error(f"--topics: {exc}")
    args.iters = sorted(set(common.split_list(args.iters, int)))
    args.passes = sorted(set(common.split_list(args.passes, int)))
    args.libs = common.split_list(args.libs, str)
    args.workers = sorted(set(common.split_list(args.workers, int)))
    args.samplers = common.split_list(args.samplers, str)
    for opt in ("iters", "passes"):
        counts = getattr(args, opt)
        if len(counts) < 2 or counts[0] < 1:
            p.error(f"--{opt} needs at least two different counts >= 1 (short and long run)")
    if not args.workers or args.workers[0] < 1:
        p.error("--workers needs positive integers")
    unknown = set(args.libs) - set(common.PEER_LIBRARIES)
    if unknown:
        p.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    return args


def topics_by_corpus(text, corpora):
    """``"synth:1000,debdesc:100,1000"`` -> ``{"synth": [1000], "debdesc": [100], ...}``.

    Bare numbers apply to every corpus that has no ``CORPUS:K`` item.
    """
    specific, general = {}, []
    for item in common.split_list(text, str):
        corpus, _, k = item.rpartition(":")
        if int(k) < 1:
            raise ValueError(f"K must be positive, got {item!r}")
        (specific.setdefault(corpus, []) if corpus else general).append(int(k))
    plan = {c: specific.get(c, general) for c in corpora}
    missing = [c for c, ks in plan.items() if not ks]
    if missing:
        raise ValueError(f"no K for {', '.join(missing)}")
    return plan


# ----------------------------------------------------------------------------- measuring
def schedule(plan, repeats):
    """Order of the runs: round r runs every configuration's r-th count, order alternating.

    Parameters
    ----------
    plan : dict of Config -> list of int

    Yields
    ------
    (repeat, Config, iterations)
    """
    step = 0
    for rep in range(repeats):
        for r in range(max((len(c) for c in plan.values()), default=0)):
            order = [cfg for cfg, counts in plan.items() if len(counts) > r]
            for cfg in (order if step % 2 == 0 else order[::-1]):
                yield rep, cfg, plan[cfg][r]
            step += 1


def measure(files, heldout, num_topics, plan, args, evaluate):
    """Run the schedule for one corpus and K; evaluate the repeat-0 model of every cell.

    Returns
    -------
    list of dict
        One record per run: ``config`` (name), ``iterations``, ``repeat``, ``seconds``,
        ``cpu_seconds``, RSS figures, ``notes``; for repeat 0 also ``heldout_ll``,
        ``word_ll`` (Gibbs only) and ``eval_seconds``; ``error`` on failure.
    """
    records = []
    for rep, cfg, n in schedule(plan, args.repeats):
        common.log(f"{files.name} K={num_topics} {cfg.name} {cfg.units}={n} (repeat {rep})")
        rec = {"config": cfg.name, "iterations": n, "repeat": rep, "notes": []}
        try:
            res = common.fit_isolated(cfg.lib, files, num_topics, n, args.alpha, args.eta,
                                      args.seed,
                                      cfg.options(args.mh_steps, args.tomotopy_parallel))
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"
            common.log(f"  failed: {rec['error']}")
            records.append(rec)
            continue
        counts, phi, alpha = res.pop("counts", None), res.pop("phi", None), res.pop("alpha")
        rec.update(res)
        rec["notes"] = list(res.get("notes", []))
        common.log(f"  fit {res['seconds']:.2f}s, cpu/wall {res['cpu_seconds'] / res['seconds']:.2f}"
                   f", peak RSS {res['peak_rss_mb']:.0f} MiB")
        if rep == 0:
            t0 = time.perf_counter()
            if phi is None:
                phi = common.phi_from_counts(counts, args.eta)
                rec["word_ll"] = common.word_loglik_per_token(counts, args.eta)
            try:
                rec["heldout_ll"] = float(evaluate(phi, alpha, heldout,
                                                   iterations=args.eval_iters,
                                                   random_state=args.seed))
            except Exception as exc:                   # keep the timings of this run
                rec["notes"].append(f"evaluation failed: {type(exc).__name__}: {exc}")
                common.log(f"  {rec['notes'][-1]}")
            else:
                rec["eval_seconds"] = time.perf_counter() - t0
                common.log(f"  held-out LL/token {rec['heldout_ll']:.4f} "
                           f"({rec['eval_seconds']:.1f}s to evaluate)")
        records.append(rec)
    return records


def throughput(records, cfg, counts):
    """Speed of `cfg` from its fastest short and long runs (None if one is missing).

    Returns
    -------
    dict or None
        ``tokens_per_s`` (all threads), ``per_core`` (divided by ``cfg.workers``),
        ``s_per_iter``, ``fixed_s`` (intercept), ``cpu_per_wall``, the long run's
        ``peak_rss_mb`` and ``fit_rss_mb``, ``n_short``, ``n_long``.
    """
    def best(n):
        ok = [r for r in records if r["config"] == cfg.name and r["iterations"] == n
              and "error" not in r]
        return min(ok, key=lambda r: r["seconds"]) if ok else None

    if len(counts) < 2:
        return None
    short, long_ = best(counts[0]), best(counts[-1])
    if short is None or long_ is None:
        return None
    dt = long_["seconds"] - short["seconds"]
    s_per_iter = dt / (counts[-1] - counts[0])
    tps = long_["n_tokens"] / s_per_iter if dt > 0 else float("nan")
    return {"tokens_per_s": tps, "per_core": tps / cfg.workers, "s_per_iter": s_per_iter,
            "fixed_s": short["seconds"] - counts[0] * s_per_iter,
            "cpu_per_wall": (long_["cpu_seconds"] - short["cpu_seconds"]) / dt if dt > 0
            else float("nan"),
            "peak_rss_mb": long_["peak_rss_mb"],
            "fit_rss_mb": long_["peak_rss_mb"] - long_["rss_before_mb"],
            "n_short": counts[0], "n_long": counts[-1]}


def final_record(records, cfg, counts):
    """Repeat-0 record of the longest count, or {}."""
    return next((r for r in records if r["config"] == cfg.name and counts
                 and r["iterations"] == counts[-1] and r["repeat"] == 0 and "error" not in r), {})


# ----------------------------------------------------------------------------- tables
def _fmt(x, spec):
    return "n/a" if x is None or x != x else format(x, spec)


def _ratio(a, b):
    return a / b if a is not None and b and a == a and b == b else None


def _fmt_ratio(x):
    """``1.23x``; three decimals below 0.1 so a slow peer does not read ``0.00x``."""
    return "n/a" if x is None else format(x, ".3f" if x < 0.1 else ".2f") + "x"


def summary_table(corpus, num_topics, plan, records):
    """Headline table (one row per configuration) and the checks below it."""
    speed = {cfg: throughput(records, cfg, counts) for cfg, counts in plan.items()}
    by_name = {cfg.name: s for cfg, s in speed.items()}
    rows, checks = [], []
    for cfg, counts in plan.items():
        s = speed[cfg]
        if not counts:
            rows.append([cfg.name, cfg.workers, cfg.unit, "skipped"] + [""] * 9)
            continue
        runs = f"{counts[0]}-{counts[-1]}"
        if s is None:
            rows.append([cfg.name, cfg.workers, cfg.unit, runs] + ["n/a"] * 9)
            continue
        one = by_name.get(f"{cfg.family} x1") or {}
        tomo = by_name.get(f"tomotopy x{cfg.workers}") or {}
        speedup = _ratio(s["tokens_per_s"], one.get("tokens_per_s")) if cfg.workers > 1 else None
        vs_tomo = _ratio(s["tokens_per_s"], tomo.get("tokens_per_s"))
        rss_tomo = _ratio(s["peak_rss_mb"], tomo.get("peak_rss_mb"))
        rows.append([cfg.name, cfg.workers, cfg.unit, runs, _fmt(s["tokens_per_s"], ",.0f"),
                     _fmt(s["per_core"], ",.0f"),
                     _fmt_ratio(speedup) if cfg.workers > 1 else "-",
                     _fmt_ratio(vs_tomo), _fmt(s["fixed_s"], ".1f"),
                     _fmt(s["cpu_per_wall"], ".2f"),
                     _fmt(final_record(records, cfg, counts).get("heldout_ll"), ".4f"),
                     _fmt(s["peak_rss_mb"], ".0f"), _fmt_ratio(rss_tomo)])
        if cfg.lib == "distlda" and cfg.workers > 1 and speedup is not None:
            target = 0.9 * cfg.workers
            checks.append(f"check: {cfg.family} {cfg.workers} threads = {speedup:.2f}x one thread "
                          f"(target >= {target:.1f}x: {'met' if speedup >= target else 'NOT met'})")
        if cfg.lib == "distlda" and rss_tomo is not None:
            checks.append(f"check: peak RSS {cfg.name} {s['peak_rss_mb']:.0f} MiB vs tomotopy "
                          f"x{cfg.workers} {tomo['peak_rss_mb']:.0f} MiB = {rss_tomo:.2f}x "
                          f"(K={num_topics})")
    headers = ["configuration", "threads", "unit", "runs", "tokens/s", "tokens/s/core",
               "vs 1 thread", "vs tomotopy", "fixed s", "cpu/wall", "heldout LL/tok",
               "peak RSS MiB", "RSS vs tomotopy"]
    title = (f"== {corpus}  K={num_topics}  speed from the shortest vs longest run of each "
             f"configuration (runs = {{sweeps|passes}}), heldout LL of the longest")
    return common.format_table(headers, [[str(c) for c in r] for r in rows], title), speed, checks


def convergence_table(plan, records):
    """Quality against wall time, one row per (configuration, count) of repeat 0."""
    rows = []
    for cfg in plan:
        for r in sorted((r for r in records if r["config"] == cfg.name and r["repeat"] == 0),
                        key=lambda r: r["iterations"]):
            if "error" in r:
                rows.append([cfg.name, r["iterations"], "failed: " + r["error"][:70], "", ""])
                continue
            rows.append([cfg.name, f"{r['iterations']} {cfg.units}", _fmt(r["seconds"], ".2f"),
                         _fmt(r.get("heldout_ll"), ".4f"), _fmt(r.get("word_ll"), ".4f")])
    headers = ["configuration", "runs", "wall s", "heldout LL/tok", "log p(w|z)/tok"]
    return common.format_table(headers, [[str(c) for c in r] for r in rows],
                               "-- convergence: fresh run per row, wall s = whole fit "
                               "(start-up included)")


# ----------------------------------------------------------------------------- plot
#: Colour per library family, dashes per thread count, so the legend reads at a glance.
_COLOURS = {"distlda sparse": "tab:blue", "distlda mh": "tab:cyan", "tomotopy": "tab:orange",
            "lda": "tab:green", "gensim LdaMulticore": "tab:red"}


def plot_convergence(path, corpus, num_topics, plan, records, subtitle, refs=None):
    """Held-out LL/token against wall seconds, one line per configuration, as a PNG.

    `refs` (name -> LL/token) are drawn as horizontal dotted lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    drawn, all_y = 0, []
    for cfg in plan:
        pts = sorted((r["seconds"], r["heldout_ll"], r["iterations"]) for r in records
                     if r["config"] == cfg.name and r["repeat"] == 0 and "heldout_ll" in r)
        if not pts:
            continue
        xs, ys, ns = zip(*pts)
        all_y += ys
        ax.plot(xs, ys, marker="o" if cfg.workers == 1 else "s",
                linestyle="-" if cfg.workers == 1 else "--",
                color=_COLOURS.get(cfg.family), label=f"{cfg.name} ({cfg.units} {', '.join(map(str, ns))})")
        for x, y, n in pts:
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=_COLOURS.get(cfg.family))
        drawn += 1
    if not drawn:
        plt.close(fig)
        return False
    # The y range follows the curves (and the unigram floor); a reference far outside it
    # (the planted topics, early in training) is named in the legend instead of drawn.
    near = [v for k, v in (refs or {}).items() if k == "unigram"]
    lo, hi = min(all_y + near), max(all_y + near)
    pad = max(0.08 * (hi - lo), 0.01)
    for (label, value), colour in zip((refs or {}).items(), ("0.45", "black")):
        if lo - pad <= value <= hi + pad:
            ax.axhline(value, color=colour, linestyle=":", linewidth=1.2,
                       label=f"{label}: {value:.3f}")
        else:
            ax.plot([], [], color=colour, linestyle=":", linewidth=1.2,
                    label=f"{label}: {value:.3f} ({'above' if value > hi else 'below'} the plot)")
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda x, _: f"{x:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("wall seconds of the whole fit (fresh process; log scale)")
    ax.set_ylabel("held-out log-likelihood per token (higher is better)")
    ax.set_title(f"{corpus}, K={num_topics}: convergence against wall time\n{subtitle}",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def references(files, train, heldout, args, evaluate):
    """Held-out LL/token of two fixed models, through the same evaluator and seed.

    ``unigram``: one topic, the training word frequencies (+ eta), a floor any topic model
    should beat once it has converged. ``planted topics``: for a synthetic corpus, the true
    topic-word matrix it was generated from (``NAME.true_phi.npy``) with alpha = 0.1, a ceiling.

    Returns
    -------
    dict of str -> float
    """
    import numpy as np

    freq = np.asarray(train.sum(axis=0), dtype=np.float64).ravel() + args.eta
    refs = {"unigram": float(evaluate((freq / freq.sum())[None, :], 1.0, heldout,
                                      iterations=2, random_state=args.seed))}
    true_phi = files.train.parent / f"{files.name}.true_phi.npy"
    if files.name in common.SYNTHETIC and true_phi.exists():
        refs["planted topics"] = float(evaluate(np.load(true_phi), 0.1, heldout,
                                                iterations=args.eval_iters,
                                                random_state=args.seed))
    return refs


# ----------------------------------------------------------------------------- main
def _version(module):
    """``"name x.y.z"``, or ``"name missing"``."""
    try:
        return f"{module} {__import__(module).__version__}"
    except Exception:
        return f"{module} missing"


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    shared = common.shared_dir(args.shared)
    evaluator_name, evaluate = common.get_evaluator(args.evaluator)
    configs, config_notes = build_configs(args)
    if not configs:
        raise SystemExit("nothing to benchmark: " + "; ".join(config_notes))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else common.OUT_DIR / f"peers-{stamp}.txt"

    header = [f"distlda peers benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}",
              "command: " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
              *common.environment_summary(),
              "peer versions: " + ", ".join(_version(m) for m in ("lda", "gensim", "psutil",
                                                                  "matplotlib")),
              "configurations: " + ", ".join(c.name for c in configs),
              f"each run a fresh spawn child, {', '.join(f'{k}={v}' for k, v in common.SINGLE_THREAD_ENV.items())}; "
              "threads only where a configuration says x2; tomotopy optim_interval=0, "
              f"ParallelScheme NONE (x1) / {args.tomotopy_parallel.upper()} (x2); "
              "distlda eval_every=0",
              f"alpha={args.alpha} (symmetric, every library and K)  eta={args.eta}  "
              f"seed={args.seed}  sweeps={args.iters}  gensim passes={args.passes}  "
              f"repeats={args.repeats}  peer budget={args.peer_budget:.0f} s per configuration",
              f"held-out: {evaluator_name}, {args.eval_iters} sweeps, "
              f"{args.heldout_docs or 'all'} documents; phi = (n_kw+eta)/(n_k+V*eta) for Gibbs "
              "models, get_topics() for gensim",
              "tokens/s/core = tokens/s / threads; vs 1 thread = tokens/s over the same "
              "configuration's x1; vs tomotopy = tokens/s and peak RSS over tomotopy with the "
              "same threads",
              *config_notes]
    print("\n".join(header), flush=True)
    sections, raw, plots = ["\n".join(header)], [], []
    for name in args.corpora:
        files = common.corpus_files(name, shared)
        train = common.load_csr(files.train)
        tokens = common.n_tokens(train)
        heldout = common.subsample_docs(common.load_csr(files.heldout), args.heldout_docs,
                                        args.seed)
        corpus_line = (f"corpus {name}: train D={train.shape[0]} V={train.shape[1]} "
                       f"tokens={tokens:,}; held-out D={heldout.shape[0]} "
                       f"tokens={common.n_tokens(heldout):,}")
        common.log(corpus_line)
        try:
            refs = references(files, train, heldout, args, evaluate)
        except Exception as exc:                         # reference only: never fatal
            refs = {}
            common.log(f"reference models not evaluated: {type(exc).__name__}: {exc}")
        if refs:
            corpus_line += ("\nheld-out LL/token of reference models (same evaluator): "
                            + ", ".join(f"{k} {v:.4f}" for k, v in refs.items()))
        del train
        for num_topics in args.topics[name]:
            plan, plan_notes = {}, []
            for cfg in configs:
                plan[cfg], note = plan_counts(cfg, args, tokens, num_topics)
                if note:
                    plan_notes.append(note)
            records = measure(files, heldout, num_topics, plan, args, evaluate)
            table, speed, checks = summary_table(name, num_topics, plan, records)
            notes = sorted({f"{r['config']}: {n}" if not n.startswith(r["config"].split()[0])
                            else n for r in records for n in r.get("notes", [])})
            text = "\n".join([table, corpus_line, *checks, *plan_notes,
                              convergence_table(plan, records), *notes])
            png = out.parent / f"peers-{name}-K{num_topics}-{stamp}.png"
            if not args.no_plot:
                try:
                    if plot_convergence(png, name, num_topics, plan, records,
                                        f"{evaluator_name.split(' ')[0]}, "
                                        f"{heldout.shape[0]} held-out docs; labels = "
                                        "sweeps (gensim: passes)", refs):
                        plots.append(str(png))
                        text += f"\nplot: {png}"
                except Exception as exc:                # matplotlib missing or broken
                    text += f"\nplot not written: {type(exc).__name__}: {exc}"
            print("\n" + text, flush=True)
            sections.append(text)
            raw.append({"corpus": name, "num_topics": num_topics, "references": refs,
                        "plan": {c.name: v for c, v in plan.items()}, "runs": records,
                        "throughput": {c.name: s for c, s in speed.items()}})

    elapsed = time.perf_counter() - started
    footer = f"total wall time {elapsed / 60:.1f} min"
    print("\n" + footer, flush=True)
    sections.append(footer)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n\n".join(sections) + "\n")
    out.with_suffix(".json").write_text(json.dumps(
        {"args": vars(args), "header": header, "results": raw, "plots": plots,
         "elapsed_s": elapsed}, indent=1, default=str))
    common.log(f"wrote {out}, {out.with_suffix('.json').name}"
               + (f" and {len(plots)} plot(s)" if plots else ""))


if __name__ == "__main__":
    main()
