#!/usr/bin/env python
"""Single-core benchmark: distlda vs tomotopy, speed and held-out quality.

Usage::

    python benchmarks/bench_serial.py                      # synth + debdesc, K=100,1000
    python benchmarks/bench_serial.py --corpora debdesc --topics 100
    python benchmarks/bench_serial.py --quick              # smoke run, < 1 min

Every training runs in its own fresh ``spawn`` process, one thread. Sampling throughput is
``N_train_tokens * (n_long - n_short) / (t_long - t_short)`` over a short and a long run, so
start-up, JIT and initialisation cancel; the libraries alternate so background load hits
both. Quality is the held-out log-likelihood per token by document completion, computed by
one evaluator from each model's word-topic counts and alpha. See benchmarks/README.rst.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One thread everywhere, set before numpy/numba load, here and in every child process.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (after the environment and sys.path set-up)

FULL = dict(corpora="synth,debdesc", iters="10,25,50,100", eval_iters=50, heldout_docs=0)
QUICK = dict(corpora="synth-small", iters="2,5", eval_iters=10, heldout_docs=200)


# ----------------------------------------------------------------------------- options
def parse_args(argv=None):
    """Parse the command line; ``--quick`` only changes the defaults left unset."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", help=f"comma list of synth, synth-small, debdesc "
                                     f"(default {FULL['corpora']}; quick: {QUICK['corpora']})")
    p.add_argument("--topics", default="100,1000", help="comma list of K (default 100,1000)")
    p.add_argument("--iters", help="comma list of iteration counts, one training run each; the "
                                   "smallest and largest give the throughput "
                                   f"(default {FULL['iters']}; quick: {QUICK['iters']})")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per (library, iters); the fastest counts (default 1)")
    p.add_argument("--libs", default=",".join(common.LIBRARIES),
                   help="comma list of libraries (default tomotopy,distlda)")
    common.add_model_args(p, FULL, QUICK)
    p.add_argument("--out", help="table file (default benchmarks/out/serial-<date>.txt; "
                                 "raw results go beside it as .json)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: synth-small, a few iterations, small evaluation")
    args = common.fill_defaults(p.parse_args(argv), FULL, QUICK)
    args.corpora = common.split_list(args.corpora, str)
    args.topics = common.split_list(args.topics, int)
    args.iters = sorted(set(common.split_list(args.iters, int)))
    args.libs = common.split_list(args.libs, str)
    if len(args.iters) < 2 or args.iters[0] < 1:
        p.error("--iters needs at least two different counts >= 1 (short and long run)")
    if not args.topics or min(args.topics) < 1:
        p.error("--topics needs positive integers")
    unknown = set(args.libs) - set(common.LIBRARIES)
    if unknown:
        p.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    return args


def available_libraries(requested):
    """Drop libraries that cannot be imported; return (libraries, notes)."""
    libs, notes = [], []
    for lib in requested:
        try:
            if lib == "distlda":
                from distlda.models import LdaModel  # noqa: F401
            else:
                import tomotopy  # noqa: F401
            libs.append(lib)
        except Exception as exc:                       # half-written module, missing package
            notes.append(f"{lib} skipped: {type(exc).__name__}: {exc}")
    return libs, notes


# ----------------------------------------------------------------------------- measuring
def schedule(libs, iters, repeats):
    """Order of training runs: every iteration count per repeat, libraries alternating.

    Yields
    ------
    (repeat, iterations, library)
    """
    step = 0
    for rep in range(repeats):
        for n in iters:
            for lib in (libs if step % 2 == 0 else libs[::-1]):
                yield rep, n, lib
            step += 1


def measure(files, heldout, num_topics, args, evaluate):
    """Run the whole schedule for one corpus and K; evaluate the first model of each cell.

    Returns
    -------
    list of dict
        One record per run: library, iterations, repeat, seconds, cpu_seconds, rss figures,
        and for repeat 0 ``heldout_ll``, ``word_ll``, ``eval_seconds``; ``error`` on failure.
    """
    records = []
    for rep, n, lib in schedule(args.libs, args.iters, args.repeats):
        common.log(f"{files.name} K={num_topics} {lib} iters={n} (repeat {rep})")
        rec = {"library": lib, "iterations": n, "repeat": rep, "notes": []}
        try:
            res = common.fit_isolated(lib, files, num_topics, n, args.alpha, args.eta, args.seed)
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"
            common.log(f"  failed: {rec['error']}")
            records.append(rec)
            continue
        counts, alpha = res.pop("counts"), res.pop("alpha")
        rec.update(res)
        common.log(f"  fit {res['seconds']:.2f}s, peak RSS {res['peak_rss_mb']:.0f} MiB")
        if rep == 0:
            t0 = time.perf_counter()
            phi = common.phi_from_counts(counts, args.eta)
            rec["heldout_ll"] = float(evaluate(phi, alpha, heldout, iterations=args.eval_iters,
                                               random_state=args.seed))
            rec["eval_seconds"] = time.perf_counter() - t0
            rec["word_ll"] = common.word_loglik_per_token(counts, args.eta)
            common.log(f"  held-out LL/token {rec['heldout_ll']:.4f} "
                       f"({rec['eval_seconds']:.1f}s to evaluate)")
        records.append(rec)
    return records


def throughput(records, lib, n_short, n_long):
    """Sampling speed of `lib` from the fastest short and long runs.

    Returns
    -------
    dict or None
        ``tokens_per_s``, ``s_per_iter``, ``fixed_s`` (start-up + init, the intercept),
        ``cpu_per_wall`` and the long run's RSS figures; None if a run is missing.
    """
    def best(n):
        ok = [r for r in records if r["library"] == lib and r["iterations"] == n
              and "error" not in r]
        return min(ok, key=lambda r: r["seconds"]) if ok else None

    short, long_ = best(n_short), best(n_long)
    if short is None or long_ is None:
        return None
    dt = long_["seconds"] - short["seconds"]
    s_per_iter = dt / (n_long - n_short)
    cpu_dt = long_["cpu_seconds"] - short["cpu_seconds"]
    return {
        "tokens_per_s": long_["n_tokens"] / s_per_iter if dt > 0 else float("nan"),
        "s_per_iter": s_per_iter,
        "fixed_s": short["seconds"] - n_short * s_per_iter,
        "cpu_per_wall": cpu_dt / dt if dt > 0 else float("nan"),
        "peak_rss_mb": long_["peak_rss_mb"],
        "fit_rss_mb": long_["peak_rss_mb"] - long_["rss_before_mb"],
    }


# ----------------------------------------------------------------------------- tables
def _fmt(x, spec):
    return "n/a" if x is None or x != x else format(x, spec)


def summary_table(corpus, num_topics, records, args):
    """The headline table: one row per library."""
    n_short, n_long = args.iters[0], args.iters[-1]
    speed = {lib: throughput(records, lib, n_short, n_long) for lib in args.libs}
    base = (speed.get("tomotopy") or {}).get("tokens_per_s")
    rows = []
    for lib in args.libs:
        s = speed[lib]
        final = next((r for r in records if r["library"] == lib and r["iterations"] == n_long
                      and r["repeat"] == 0 and "error" not in r), {})
        if s is None:
            rows.append([lib, num_topics, n_long, 1] + ["n/a"] * 8)
            continue
        ratio = s["tokens_per_s"] / base if base else None
        rows.append([lib, num_topics, n_long, 1, _fmt(s["tokens_per_s"], ",.0f"),
                     _fmt(ratio, ".2f") + ("x" if ratio else ""), _fmt(s["fixed_s"], ".1f"),
                     _fmt(s["cpu_per_wall"], ".2f"), _fmt(final.get("heldout_ll"), ".4f"),
                     _fmt(final.get("word_ll"), ".4f"), _fmt(s["peak_rss_mb"], ".0f"),
                     _fmt(s["fit_rss_mb"], ".0f")])
    headers = ["library", "K", "iters", "threads", "tokens/s/core", "vs tomotopy", "fixed s",
               "cpu/wall", "heldout LL/tok", "log p(w|z)/tok", "peak RSS MiB", "fit RSS MiB"]
    title = (f"== {corpus}  K={num_topics}  speed from {n_short} vs {n_long} iterations, "
             f"alpha={args.alpha} eta={args.eta}")
    return format_table(headers, rows, title), speed


def convergence_table(records, args):
    """Quality against wall time, one row per (library, iterations) of repeat 0."""
    rows = []
    for lib in args.libs:
        for r in records:
            if r["library"] != lib or r["repeat"] != 0:
                continue
            if "error" in r:
                rows.append([lib, r["iterations"], "failed: " + r["error"][:70], "", ""])
                continue
            rows.append([lib, r["iterations"], _fmt(r["seconds"], ".2f"),
                         _fmt(r.get("heldout_ll"), ".4f"), _fmt(r.get("word_ll"), ".4f")])
    headers = ["library", "iters", "wall s", "heldout LL/tok", "log p(w|z)/tok"]
    return format_table(headers, rows, "-- convergence: fresh run per row, wall s = whole fit")


def format_table(headers, rows, title):
    """:func:`common.format_table` with every cell turned into text."""
    return common.format_table(headers, [[str(c) for c in row] for row in rows], title)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    shared = common.shared_dir(args.shared)
    evaluator_name, evaluate = common.get_evaluator(args.evaluator)
    args.libs, lib_notes = available_libraries(args.libs)
    if not args.libs:
        raise SystemExit("no library to benchmark: " + "; ".join(lib_notes))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else common.OUT_DIR / f"serial-{stamp}.txt"

    header = [f"distlda serial benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}",
              "command: " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
              *common.environment_summary(),
              f"one thread per run ({', '.join(f'{k}={v}' for k, v in common.SINGLE_THREAD_ENV.items())}; "
              "tomotopy workers=1, ParallelScheme.NONE, optim_interval=0; distlda "
              + ", ".join(f"{k}={v}" for k, v in common.DISTLDA_OPTIONS.items()) + ")",
              f"alpha={args.alpha} (symmetric, every K)  eta={args.eta}  seed={args.seed}  "
              f"iterations={args.iters}  repeats={args.repeats}",
              f"held-out: {evaluator_name}, {args.eval_iters} sweeps, "
              f"{args.heldout_docs or 'all'} documents, phi = (n_kw+eta)/(n_k+V*eta)",
              *lib_notes]
    print("\n".join(header), flush=True)
    sections, raw = ["\n".join(header)], []
    for name in args.corpora:
        files = common.corpus_files(name, shared)
        train = common.load_csr(files.train)
        heldout = common.subsample_docs(common.load_csr(files.heldout), args.heldout_docs,
                                        args.seed)
        corpus_line = (f"corpus {name}: train D={train.shape[0]} V={train.shape[1]} "
                       f"tokens={common.n_tokens(train):,}; held-out D={heldout.shape[0]} "
                       f"tokens={common.n_tokens(heldout):,}")
        common.log(corpus_line)
        del train
        for num_topics in args.topics:
            records = measure(files, heldout, num_topics, args, evaluate)
            table, speed = summary_table(name, num_topics, records, args)
            notes = sorted({f"{r['library']}: {n}" for r in records for n in r.get("notes", [])})
            text = "\n".join([table, corpus_line, convergence_table(records, args), *notes])
            print("\n" + text, flush=True)
            sections.append(text)
            raw.append({"corpus": name, "num_topics": num_topics, "runs": records,
                        "throughput": speed})

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n\n".join(sections) + "\n")
    out.with_suffix(".json").write_text(json.dumps(
        {"args": {k: v for k, v in vars(args).items()}, "header": header, "results": raw},
        indent=1, default=str))
    common.log(f"wrote {out} and {out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
