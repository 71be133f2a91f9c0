#!/usr/bin/env python
"""How many workers one dispatcher can feed: measure its costs, then model the cap.

Usage::

    python benchmarks/bench_capacity.py                    # synth-small, K=100, 1,2,4,8 workers
    python benchmarks/bench_capacity.py --corpus synth --workers 1,2,4,8 --iters 3,10

For each cluster size (on 127.0.0.1; on this 2-core machine the workers share the cores, so
the speedup means nothing here and only the dispatcher's own costs are read) it measures, over
the sweeps after the first ``skip``:

- the dispatcher's CPU seconds per committed token (it commits every token once a sweep),
- the bytes per token per sweep on its link (array payload, down + up),
- its memory per token held (resident memory during training minus before, over tokens),

and the serial sampler's tokens/s on one core (what a worker core sweeps). From these, a
dispatcher saturates its core at ``N_cpu = 1 / (rate * cpu_per_token)`` workers and its link
at ``N_link = bandwidth / (rate * bytes_per_token)``; the table gives both for 1 and 10 Gbit/s.
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import common  # noqa: E402
from cluster import Cluster  # noqa: E402


def rss(pid: int) -> int:
    """Resident bytes of process ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(X, args, n, n_tok, skip, total):
    from distlda.models import LdaModel
    with Cluster(workers=n, check=False) as c:
        # a small training first: the dispatcher's kernels load (and its pools start) then
        LdaModel(X[:100], num_topics=args.topics, iterations=1, distributed=True,
                 ns_conf=c.ns_conf)
        idle = rss(c.dispatcher)
        peak = [idle]
        stop = threading.Event()

        def watch():
            while not stop.wait(0.05):
                peak[0] = max(peak[0], rss(c.dispatcher))

        threading.Thread(target=watch, daemon=True).start()
        LdaModel(X, num_topics=args.topics, iterations=total, random_state=args.seed,
                 eval_every=0, distributed=True, ns_conf=c.ns_conf, alpha=0.1, eta=0.01)
        stop.set()
        with c.dispatcher_proxy() as d:
            per = d.stats()["per_sweep"][skip:]
    k = len(per)
    return dict(workers=n,
                cpu_per_token=sum(r["dispatcher_cpu_s"] for r in per) / k / n_tok,
                bytes_per_token=sum(r["bytes_down"] + r["bytes_up"] for r in per) / k / n_tok,
                mem_per_token=(peak[0] - idle) / n_tok,
                sweep_s=sum(r["seconds"] for r in per) / k)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="synth-small")
    p.add_argument("--topics", type=int, default=100)
    p.add_argument("--workers", default="1,2,4,8")
    p.add_argument("--iters", default="2,8", help="skip,total sweeps")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    skip, total = (int(x) for x in args.iters.split(","))
    files = common.corpus_files(args.corpus, common.shared_dir())
    X = common.load_csr(files.train)
    n_tok = common.n_tokens(X)
    from distlda.models import LdaModel
    LdaModel(X[:200], num_topics=args.topics, iterations=2, distributed=False)  # JIT
    t0 = time.perf_counter()
    LdaModel(X, num_topics=args.topics, iterations=skip, distributed=False, workers=1,
             random_state=args.seed, eval_every=0)
    t1 = time.perf_counter()
    LdaModel(X, num_topics=args.topics, iterations=total, distributed=False, workers=1,
             random_state=args.seed, eval_every=0)
    rate = n_tok * (total - skip) / max((time.perf_counter() - t1) - (t1 - t0), 1e-9)
    rows = []
    for n in (int(x) for x in args.workers.split(",")):
        m = measure(X, args, n, n_tok, skip, total)
        n_cpu = 1.0 / (rate * m["cpu_per_token"])
        n_1g = 125e6 / (rate * m["bytes_per_token"])
        n_10g = 1.25e9 / (rate * m["bytes_per_token"])
        rows.append([n, f"{m['cpu_per_token'] * 1e9:.1f}", f"{m['bytes_per_token']:.2f}",
                     f"{m['mem_per_token']:.1f}", f"{m['sweep_s'] * 1e3:.0f}",
                     f"{n_cpu:.0f}", f"{n_1g:.0f}", f"{n_10g:.0f}"])
        common.log(f"{n} workers: {rows[-1]}")
    print(f"corpus {args.corpus}: {n_tok:,} tokens, K={args.topics}, sweeps {skip + 1}-{total}; "
          f"serial sampler {rate:,.0f} tokens/s on one core")
    print(common.format_table(
        ["workers", "dispatcher CPU ns/token", "B/token/sweep", "dispatcher B/token held",
         "ms/sweep", "N_cpu", "N_link 1G", "N_link 10G"], rows))


if __name__ == "__main__":
    main()
