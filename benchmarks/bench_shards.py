#!/usr/bin/env python
"""Issue 23's capacity table: what a shard set costs the client, the dispatcher and each worker,
as the corpus grows, against today's path (the client sends the tokens).

Usage (as root: the hosts are network namespaces, tests/netns.py)::

    python benchmarks/bench_shards.py                      # 5 M and 20 M tokens, V=120,000, K=100
    python benchmarks/bench_shards.py --tokens 2e5,8e5 --sweeps 3   # a quick look

Topology (tests/shardhosts.py, as tests/test_multihost_shards.py): moto's S3 server, the name
server, the dispatcher and the client on host A; one worker with ``--threads T`` on each of B
and C. For each size a seeded Zipf-like corpus (tests/helpers.ZipfCorpus, the same V for every
size, generated streaming) is written from A as a shard set ``s3://BUCKET/tN``, then trained
twice, each time on a freshly started dispatcher and workers:

- ``shards``: ``LdaModel(ShardedCorpus(url), distributed=True)`` (the workers read their
  shards from the store; the client sends the set's address);
- ``memory``: the set read into one CSR matrix in the client, then ``LdaModel(csr,
  distributed=True)`` (the in-memory path: the chunks go client -> dispatcher -> workers once;
  the dispatcher keeps none since 2026-12-08, while it held a copy of every token before).

Each (size, path) runs ``--repeat`` times (paths interleaved) and the table shows medians:
a single peak reading moves by tens of MiB between identical runs (transient copies of the
V x K tables), as much as the bar allows over 15 M tokens; the last table gives that spread.

Per run: peak RSS (``VmHWM``) of the client (read in the client right after training), of the
dispatcher and of each worker (read just before they are stopped); the bytes on the
dispatcher's link a sweep (its ``stats()``: array payload down + up, median over sweeps 2..n;
``load`` is what went through it once, the tokens in the memory path); sampling tokens/s (the
median of the per-sweep records, sweeps 2..n). Then the growth of each RSS per token between
the smallest and the largest size: the issue's bar is < 0.5 byte/token for the client and the
dispatcher of the shard path. On a 2-core machine the two workers and the dispatcher share
the cores: tokens/s compares the two paths, not the hardware.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import common  # noqa: E402


def run_one(grid, url: str, args, memory: bool) -> dict:
    """Train ``url`` once on a fresh dispatcher and workers; the run's measurements."""
    import shardhosts
    grid.start_cluster()
    try:
        extra = ["memory"] if memory else []
        r = grid.client("train-set", url, args.topics, args.sweeps, args.seed, *extra,
                        timeout=3000)
        s = grid.stats()
        hwm = {"dispatcher": shardhosts.vm_hwm(grid.dispatcher)}
        hwm.update({f"worker {h}": shardhosts.vm_hwm(pid) for h, pid in grid.workers.items()})
        # a run that lost workers says why: the dispatcher's warnings, kept for the report
        notes = [ln for ln in grid.log(grid.dispatcher).splitlines()
                 if "WARNING" in ln and "plain mode" not in ln] if s["lost_workers"] else []
    finally:
        grid.stop_cluster()
    per = _per_sweep(s)
    return dict(client=r["rss_peak"], **hwm, tokens=r["tokens"], seconds=r["seconds"],
                sstats=r["sstats"], executor=r["executor"], sweeps=s["sweeps"],
                tokens_per_s=per["tokens_per_s"], bytes_sweep=per["bytes_sweep"],
                bytes_first=per["bytes_first"], bytes_load=s.get("bytes_load") or 0,
                lost=s["lost_workers"], notes=notes)


def _per_sweep(s: dict) -> dict:
    rates = [x for x in s["tokens_per_s"][1:] if x]
    return dict(tokens_per_s=statistics.median(rates) if rates else float("nan"),
                bytes_sweep=statistics.median(s["bytes_sweep"][1:]) if len(s["bytes_sweep"]) > 1
                else float("nan"),
                bytes_first=s["bytes_sweep"][0] if s["bytes_sweep"] else float("nan"))


def mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", default="5e6,2e7", help="corpus sizes in tokens (comma list)")
    p.add_argument("--terms", type=int, default=120_000, help="V, the same for every size")
    p.add_argument("--doc-len", type=int, default=200, help="mean tokens a document")
    p.add_argument("--topics", type=int, default=100)
    p.add_argument("--sweeps", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per size and path (fresh processes each); medians are shown")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--threads", type=int, default=2, help="--threads of each worker")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--paths", default="shards,memory", help="which paths to run")
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args(argv)
    import netns
    import shardhosts
    reason = netns.available() or shardhosts.moto_reason()
    if reason:
        print(f"bench_shards needs network namespaces and moto: {reason}", file=sys.stderr)
        return 2
    sizes = [int(float(x)) for x in args.tokens.split(",")]
    paths = [x for x in args.paths.split(",") if x]
    results: dict = {}
    t_start = time.perf_counter()
    with netns.Hosts(("a", "b", "c")) as h:
        grid = shardhosts.S3Grid(h, threads=args.threads, timeout=10.0)
        grid.stop_cluster()  # each run starts its own
        for n in sizes:
            docs = max(1, round(n / args.doc_len))
            name = f"t{n}"
            w = grid.write_set(name, docs, args.terms, args.doc_len, args.shards, args.seed)
            common.log(f"{name}: wrote {w['tokens']:,} tokens, {docs:,} documents, "
                       f"V={w['num_terms']:,} in {w['seconds']:.1f} s")
            for rep in range(args.repeat):  # paths interleaved: load from others hits both
                for path in paths:
                    r = run_one(grid, grid.url(name), args, memory=path == "memory")
                    assert r["sstats"] == r["tokens"] == w["tokens"], (r, w)
                    results.setdefault((n, path), []).append(r)
                    common.log(f"{name} {path} #{rep + 1}: {r}")
    lines = table(results, sizes, paths, args)
    text = "\n".join(lines)
    print(text)
    common.log(f"total {time.perf_counter() - t_start:.0f} s")
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


PROCS = ["client", "dispatcher", "worker b", "worker c"]


def med(runs: list, key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _range(runs: list, key: str) -> float:
    return max(r[key] for r in runs) - min(r[key] for r in runs)


def table(results: dict, sizes: list, paths: list, args) -> list[str]:
    """The report: per size and path the medians over the repeats; then the RSS growth."""
    head = ["tokens", "path", *[f"{p} MiB" for p in PROCS], "link MB/sweep", "B/token/sweep",
            "load MB", "tokens/s", "lost"]
    rows = []
    for n in sizes:
        for path in paths:
            runs = results[n, path]
            tok = runs[0]["tokens"]
            rows.append([f"{tok:,}", path, *[mib(med(runs, p)) for p in PROCS],
                         f"{med(runs, 'bytes_sweep') / 1e6:,.1f}",
                         f"{med(runs, 'bytes_sweep') / tok:.2f}",
                         f"{med(runs, 'bytes_load') / 1e6:,.1f}",
                         f"{med(runs, 'tokens_per_s'):,.0f}", sum(r["lost"] for r in runs)])
    out = [f"# reproduce: python benchmarks/bench_shards.py --tokens {args.tokens} --terms "
           f"{args.terms} --doc-len {args.doc_len} --topics {args.topics} --sweeps "
           f"{args.sweeps} --shards {args.shards} --threads {args.threads} --seed {args.seed} "
           f"--repeat {args.repeat}",
           *[f"# {line}" for line in common.environment_summary()],
           f"Zipf-like synthetic corpora (tests/helpers.ZipfCorpus), V={args.terms:,}, "
           f"K={args.topics}, {args.sweeps} sweeps, {args.shards} shards in moto S3 on host A;",
           f"dispatcher and client on A, one worker --threads {args.threads} on each of B and "
           f"C; {args.repeat} runs per row (fresh processes), medians shown.",
           "RSS: peak (VmHWM). link: the dispatcher's array payload down + up a sweep, median "
           "of sweeps 2..n; load: what went through it once (the tokens, memory path);",
           "tokens/s: median of sweeps 2..n (2 shared cores, other jobs running: compare "
           "paths, not hardware).", "",
           common.format_table(head, rows), ""]
    lo, hi = min(sizes), max(sizes)
    if lo == hi:
        return out
    grow, spread = [], []
    for path in paths:
        a, b = results[lo, path], results[hi, path]
        dt = b[0]["tokens"] - a[0]["tokens"]
        grow.append([path, *[f"{(med(b, p) - med(a, p)) / dt:+.2f}" for p in PROCS]])
        # how far apart the repeats of one row are, in the same unit: the resolution
        spread.append([path, *[f"{max(_range(a, p), _range(b, p)) / dt:.2f}" for p in PROCS]])
    out += [f"RSS growth per token, {results[lo, paths[0]][0]['tokens']:,} -> "
            f"{results[hi, paths[0]][0]['tokens']:,} tokens (bytes/token, from the medians; "
            f"the bar for the shard path's client and dispatcher: < 0.5):",
            common.format_table(["path", *PROCS], grow), "",
            "Resolution: the largest spread (max - min) of one row's repeats, over the same "
            "token difference (bytes/token):",
            common.format_table(["path", *PROCS], spread)]
    notes = [(n, path, i, r["notes"]) for (n, path), runs in results.items()
             for i, r in enumerate(runs) if r["notes"]]
    for n, path, i, lines in notes:
        out += ["", f"{n:,} tokens, {path}, run {i + 1}: {len(lines)} warnings of the "
                    f"dispatcher (first and last 10):"]
        out += [f"  {ln}" for ln in (lines if len(lines) <= 20 else lines[:10] + ["..."]
                                     + lines[-10:])]
    if "shards" in paths:
        a, b = results[lo, "shards"], results[hi, "shards"]
        dt = b[0]["tokens"] - a[0]["tokens"]
        out += ["", "shard path bar (< 0.5 byte/token): " + ", ".join(
            f"{p} {(med(b, p) - med(a, p)) / dt:+.2f} "
            f"{'met' if (med(b, p) - med(a, p)) / dt < 0.5 else 'NOT met'}"
            for p in ("client", "dispatcher"))]
    return out


if __name__ == "__main__":
    sys.exit(main())
