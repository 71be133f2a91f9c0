#!/usr/bin/env python
"""What a dead or frozen registration costs a sweep, across namespaced hosts (as root).

Usage::

    python benchmarks/bench_membership.py [--rounds 3] [--docs 6000] [--sweeps 30]

Host A runs a plain Pyro5 name server (which keeps dead registrations), the dispatcher and
the client; B and C one worker each. Each round trains three times, alternating: on the clean
cluster; right after a third worker on B registered and was SIGKILLed (its registration stays);
right after a third worker on B registered and was frozen with SIGSTOP. It prints the median
sweep time of each condition per round and over all rounds, and the ratio to clean.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import netns  # noqa: E402

sys.path.insert(0, str(HERE))
from hosts_bench import PlainCluster  # noqa: E402

PY = sys.executable


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--docs", type=int, default=6000)
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--sweeps", type=int, default=30)
    args = p.parse_args(argv)
    reason = netns.available()
    if reason:
        print(f"needs network namespaces: {reason}", file=sys.stderr)
        return 2
    with netns.Hosts(("a", "b", "c")) as h:
        cluster = PlainCluster(h)
        env, query, workers = cluster.env, cluster.query, cluster.workers

        while workers() < 2:
            time.sleep(0.5)

        def train():
            r = query("train", str(args.docs), str(args.length), "20", str(args.sweeps), "1")
            assert r["exact"], r
            return statistics.median(query("stats")["sweep_s"][3:])

        train()  # warm-up
        results = {"clean": [], "killed": [], "frozen": []}
        for rnd in range(args.rounds):
            for cond in results:
                if cond == "clean":  # no dead registration left from the round before
                    query("prune")
                    time.sleep(3.0)  # the dispatcher forgets them too
                else:
                    before = workers()
                    pid = h.start("b", f"extra-{cond}-{rnd}", [PY, "-m",
                                                              "distlda.models.lda_worker"], env)
                    while workers() <= before:
                        time.sleep(0.2)
                    time.sleep(1.0)  # admitted by the dispatcher
                    h.kill(pid) if cond == "killed" else h.freeze(pid)
                results[cond].append(train())
                if cond == "frozen":
                    h.kill(pid)
                print(f"round {rnd + 1} {cond}: median sweep {results[cond][-1] * 1e3:.1f} ms",
                      flush=True)
        base = statistics.median(results["clean"])
        print(f"{args.docs * args.length:,} tokens, K=20, {args.sweeps} sweeps, 2 workers")
        for cond, vals in results.items():
            m = statistics.median(vals)
            print(f"{cond:7s} median sweep {m * 1e3:7.1f} ms  ({m / base:.3f}x clean)  rounds "
                  + ", ".join(f"{v * 1e3:.1f}" for v in vals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
