#!/usr/bin/env python
"""Distributed benchmark: serial (one thread) vs a Pyro5 cluster of 1 and 2 workers, one corpus.

Usage::

    python benchmarks/bench_distributed.py                  # synth-small, K=100
    python benchmarks/bench_distributed.py --corpus synth --topics 100 --iters 5,15
    python benchmarks/bench_distributed.py --quick          # smoke run
    python benchmarks/bench_distributed.py --corpus synth --iters 3,13 --repeats 2 --baseline f617a4f
    python benchmarks/bench_distributed.py --workers 2 --tls   # plain vs mutual TLS

One run starts a real cluster on 127.0.0.1 (name server, dispatcher, N workers as
subprocesses, stopped by PID afterwards) for each worker count, then trains each mode in
alternating rounds (so background load hits them alike) and keeps each mode's best round.
Throughput is the corpus's tokens over the *median* wall time of a sweep, timed in this
process (where the model lives) between consecutive sweeps after the first ``short`` ones,
so start-up, JIT, chunking and streaming the corpus to the cluster are left out and load
spikes count little. Bytes on the wire are the array payload the dispatcher sends and
receives per sweep (model rows or moves down, moves up), per token; the one-time load of the
corpus is reported apart. "CPU ms/sweep" adds up all processes (workers, dispatcher, client).
Quality is the held-out log-likelihood per token (document completion,
``LdaModel.log_perplexity``) of the best round's model; two serial seeds show the noise.
With ``--baseline REV`` the clusters of an older revision (its dispatcher and workers, checked
out from git into a temporary folder; the client is this one, whose calls to the dispatcher
are the same) join the rounds as modes of their own, so a change is measured side by side.
With ``--tls`` clusters with mutual TLS (``python -m distlda certs``, every process with
``--tls``, the client with ``tls=``) join the rounds the same way: the cost of TLS.
The "machine ceiling" line times two threads sweeping halves of the corpus on private counts
with no communication at all: the most any 2-way data-parallel sampler can gain here.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import common  # noqa: E402
from cluster import Cluster  # noqa: E402  (tests/cluster.py: the cluster fixture's helper)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="synth-small", help="synth-small (default) or synth")
    p.add_argument("--topics", type=int, default=100)
    p.add_argument("--iters", default="5,25",
                   help="skip,total sweeps: time sweeps skip+1..total (default 5,25)")
    p.add_argument("--workers", default="1,2", help="cluster sizes (default 1,2)")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds over all modes, alternating; the fastest of each counts")
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--eta", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--heldout-docs", type=int, default=500)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--chunksize", type=int, default=2000,
                   help="documents per chunk (default 2000, LdaModel's default)")
    p.add_argument("--quick", action="store_true", help="synth-small, 2,6 sweeps, 200 docs")
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="also run the clusters of git revision REV, in the same rounds")
    p.add_argument("--tls", action="store_true",
                   help="also run clusters with mutual TLS, in the same rounds")
    p.add_argument("--hosts", action="store_true",
                   help="run the clusters across network namespaces (root; tests/netns.py): "
                        "name server, dispatcher and client on host A, workers on B and C, each "
                        "link shaped to --link-rate (and --link-delay where tc netem exists)")
    p.add_argument("--link-rate", default="1gbit")
    p.add_argument("--link-delay", default="0.5ms")
    p.add_argument("--via", default=None, help=argparse.SUPPRESS)  # set by --hosts for the client
    p.add_argument("--wire-iface", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(common.OUT_DIR))
    a = p.parse_args(argv)
    if a.quick:
        a.corpus, a.iters, a.heldout_docs, a.eval_iters, a.repeats = "synth-small", "2,6", 200, 10, 1
    return a


def fit(X, args, iterations, seed, **kw):
    """(model, wall seconds, CPU seconds of this process)."""
    from distlda.models import LdaModel
    t0, c0 = time.perf_counter(), time.process_time()
    lda = LdaModel(X, num_topics=args.topics, alpha=args.alpha, eta=args.eta,
                   iterations=iterations, random_state=seed, eval_every=0,
                   chunksize=args.chunksize, **kw)
    return lda, time.perf_counter() - t0, time.process_time() - c0


def measure(X, args, n_tok, short, long_, ns_conf=None, tls=None):
    """Train ``long_`` sweeps, timing every sweep where the model is (this process).

    Returns (tokens/s from the median sweep after the first ``short`` sweeps, the model, this
    process's CPU seconds per sweep over the same sweeps). Serial when ``ns_conf`` is None.
    """
    import numpy as np

    from distlda.cluster import client as _client
    from distlda.gibbs.local import LocalExecutor
    lda, _, _ = fit(X, args, 0, args.seed, distributed=False, workers=1)  # chunks, no sweep
    if ns_conf is None:
        ex = LocalExecutor(1)
    else:
        _client.use_tls(tls)  # plain (None) or mutual TLS: one setting per process
        uri, info = _client.find_dispatcher(ns_conf)
        ex = _client.DistributedExecutor(uri, info["workers"])
    marks = []

    def on_sweep(it, **kw):
        marks.append((time.perf_counter(), time.process_time(), wire_bytes(args.wire_iface)))

    marks.append((time.perf_counter(), time.process_time(), wire_bytes(args.wire_iface)))
    ex.run(lda.state, long_, lda.rng, on_sweep)
    wall = np.diff([m[0] for m in marks])[short:]
    cpu = np.diff([m[1] for m in marks])[short:]
    wire = (marks[-1][2] - marks[short][2]) / max(len(marks) - 1 - short, 1) / n_tok
    lda.wire_per_token_sweep = wire if args.wire_iface and ns_conf is not None else None
    return n_tok / float(np.median(wall)), lda, float(np.median(cpu))


def wire_bytes(iface):
    """Bytes received plus sent on network interface ``iface`` so far (0 without one): on
    the host of the dispatcher and the client, every byte of the cluster's traffic, framing
    (Ethernet, IP, TCP, Pyro5, msgpack) included."""
    if not iface:
        return 0
    base = Path("/sys/class/net") / iface / "statistics"
    return int((base / "rx_bytes").read_text()) + int((base / "tx_bytes").read_text())


class RemoteCluster:
    """A cluster started elsewhere (by ``--hosts``), reached at its name server."""

    def __init__(self, host, port):
        self.ns_conf = {"host": host, "port": int(port)}

    def dispatcher_proxy(self, timeout=10.0):
        from distlda.cluster import transport
        with transport.ns_proxy(self.ns_conf["host"], self.ns_conf["port"], 5.0) as ns:
            uri = ns.lookup("distlda.dispatcher")
        return transport.proxy(uri, timeout)

    def stop(self):
        pass

    def cleanup(self):
        pass


def parallel_ceiling(lda, parts=2, repeats=5):
    """Speedup of ``parts`` threads sweeping disjoint halves of the corpus, each on a private
    copy of the counts, with no communication at all, over one thread sweeping everything:
    what the machine allows parallel sampling to gain (memory and cache contention included).
    Best of ``repeats``, on the state of a trained model (not a Gibbs chain: throughput only).
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from distlda.gibbs import sampling
    from distlda.gibbs.local import partition
    st = lda.state
    ch = st.chunks
    groups = partition([c.num_tokens for c in ch], parts)
    prior = sampling.Prior.of(st)

    def run(group):
        nwk, nk = copies[tuple(group)]
        tokens = sampling.Tokens([ch[i].words for i in group],
                                 [ch[i].topics.copy() for i in group],
                                 [ch[i].doc_ptr for i in group])
        sampling.sweep(tokens, nwk, nk, prior, sampling.SparseOptions(), np.arange(len(group)))

    best_one = best_par = float("inf")
    with ThreadPoolExecutor(parts) as pool:
        for _ in range(repeats):
            copies = {tuple(range(len(ch))): (st.nwk.copy(), st.nk.copy())}
            t0 = time.perf_counter()
            run(list(range(len(ch))))
            best_one = min(best_one, time.perf_counter() - t0)
            copies = {tuple(g): (st.nwk.copy(), st.nk.copy()) for g in groups}
            t0 = time.perf_counter()
            list(pool.map(run, groups))
            best_par = min(best_par, time.perf_counter() - t0)
    return best_one / best_par


def serializer_table(n_bytes=4 << 20, repeats=5):
    """Pyro5's serializers on one message of the size a worker exchanges per sweep: the
    arrays as raw bytes in our ``{"dtype", "shape", "data"}`` dicts (serpent base64-encodes
    bytes; json cannot carry them at all)."""
    import numpy as np
    from Pyro5.serializers import serializers

    from distlda.cluster import codec as _wire
    a = np.random.default_rng(0).integers(0, 2 ** 31, n_bytes // 4, dtype=np.int32)
    msg = {"words": _wire.enc(a[: a.size // 2]), "new": _wire.enc(a[a.size // 2:])}
    rows = []
    for name in ("msgpack", "marshal", "serpent"):
        ser = serializers[name]
        best_d = best_l = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            data = ser.dumps(msg)
            t1 = time.perf_counter()
            back = ser.loads(data)
            t2 = time.perf_counter()
            best_d, best_l = min(best_d, t1 - t0), min(best_l, t2 - t1)
        ok = "yes" if isinstance(back["words"]["data"], (bytes, bytearray)) else "no (base64 dict)"
        rows.append([name, f"{len(data) / 1e6:.2f}", f"{best_d * 1e3:.1f}", f"{best_l * 1e3:.1f}",
                     f"{n_bytes / (best_d + best_l) / 1e6:,.0f}", ok])
    return common.format_table(["serializer", "MB on wire", "dumps ms", "loads ms",
                                "MB/s", "bytes stay bytes"], rows,
                               title=f"Pyro5 serializers, one {n_bytes >> 20} MiB array message "
                                     f"(msgpack is used; pickle never)")


def checkout(rev):
    """A temporary folder holding git revision ``rev`` of this repository (its tree only)."""
    import subprocess
    import tempfile
    repo = HERE.parent
    out = Path(tempfile.mkdtemp(prefix=f"distlda-{rev}-"))
    tar = subprocess.run(["git", "-C", str(repo), "archive", rev], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar, check=True)
    return out


def mode_name(mode):
    if mode == "serial":
        return "serial, 1 thread"
    base, n = mode if isinstance(mode, tuple) else ("", mode)
    base = "TLS" if base == "tls" else base
    return f"{base + ' ' if base else ''}cluster, {n} worker{'s' * (n > 1)}"


def main(argv=None):
    args = parse_args(argv)
    if args.hosts:
        import hosts_bench
        return hosts_bench.run(args, sys.argv[1:] if argv is None else argv)
    short, long_ = (int(x) for x in args.iters.split(","))
    files = common.corpus_files(args.corpus, common.shared_dir())
    X = common.load_csr(files.train)
    H = common.subsample_docs(common.load_csr(files.heldout), args.heldout_docs, args.seed)
    n_tok = common.n_tokens(X)
    common.log(f"corpus {args.corpus}: D={X.shape[0]} V={X.shape[1]} tokens={n_tok:,}; "
               f"K={args.topics}, sweeps {short} vs {long_}")
    fit(X[:200], args, 2, 0, distributed=False, workers=1)  # JIT warm-up
    rows, results = [], []

    def heldout(lda):
        return lda.log_perplexity(H, iterations=args.eval_iters)

    sizes = [int(x) for x in args.workers.split(",")]
    modes = list(sizes)
    base_tree = None
    if args.baseline:
        base_tree = checkout(args.baseline)
        modes += [(args.baseline, n) for n in sizes]
    tls_dir = None
    if args.tls:
        import tempfile

        from distlda.cluster import tls as _tls
        tls_dir = Path(tempfile.mkdtemp(prefix="distlda-tls-"))
        _tls.create(tls_dir, ["localhost"])
        modes += [("tls", n) for n in sizes]

    def tls_of(mode):
        return tls_dir if isinstance(mode, tuple) and mode[0] == "tls" else None
    clusters = {}
    if args.via:  # the clusters run on other hosts (--hosts): this is the client on host A
        for item in args.via.split(","):
            n, where = item.split("=")
            clusters[int(n)] = RemoteCluster(*where.split(":"))
    try:
        for mode in modes:
            if mode in clusters:
                fit(X, args, 1, args.seed, distributed=True, ns_conf=clusters[mode].ns_conf)
                continue
            repo = base_tree if isinstance(mode, tuple) and not tls_of(mode) else None
            n = mode[1] if isinstance(mode, tuple) else mode
            clusters[mode] = Cluster(workers=n, check=False, repo=repo, tls=tls_of(mode))
            fit(X, args, 1, args.seed, distributed=True, ns_conf=clusters[mode].ns_conf,
                tls=tls_of(mode))  # JIT
        # Rounds alternate the modes so that background load hits them alike; best of rounds.
        best: dict = {}
        for rnd in range(args.repeats):
            for mode in ["serial"] + modes:
                conf = None if mode == "serial" else clusters[mode].ns_conf
                rate, lda, cpu = measure(X, args, n_tok, short, long_, conf, tls_of(mode))
                stats = None
                if mode != "serial":
                    with clusters[mode].dispatcher_proxy() as d:
                        stats = d.stats()
                common.log(f"round {rnd + 1}, {mode_name(mode)}: {rate:,.0f} tokens/s")
                best.setdefault(mode, []).append((rate, lda, stats, cpu))
    finally:
        for c in clusters.values():
            c.stop()
            c.cleanup()
        import shutil
        for tree in (base_tree, tls_dir):
            if tree is not None:
                shutil.rmtree(tree, ignore_errors=True)
    rounds = {m: [r[0] for r in v] for m, v in best.items()}
    best = {m: max(v, key=lambda r: r[0]) for m, v in best.items()}
    serial_rate, lda, _, serial_cpu = best["serial"]
    ceiling = parallel_ceiling(lda)
    common.log(f"machine ceiling for 2-way parallel sampling: {ceiling:.2f}x")
    ll0 = heldout(lda)
    ll1 = heldout(fit(X, args, long_, args.seed + 1, distributed=False, workers=1)[0])
    results.append(dict(mode="serial, 1 thread", tokens_per_s=serial_rate, speedup=1.0,
                        heldout_ll=ll0, heldout_ll_seed2=ll1, wire=None,
                        cpu_ms_per_sweep=serial_cpu * 1e3))
    common.log(f"serial: {serial_rate:,.0f} tokens/s, held-out {ll0:.4f} (seed+1: {ll1:.4f})")
    for n in modes:
        rate, lda, st, client_cpu = best[n]
        per = st["per_sweep"][short:] or st["per_sweep"]  # the sweeps the rate is taken on
        wire = dict(bytes_per_token_per_sweep=st["bytes_per_token_per_sweep"],
                    down_per_token=sum(r["bytes_down"] for r in per) / len(per) / n_tok,
                    up_per_token=sum(r["bytes_up"] for r in per) / len(per) / n_tok,
                    load_bytes_per_token=st["bytes_load"] / n_tok,
                    dispatcher_prepare_s=sum(r["prepare_s"] for r in per) / len(per),
                    dispatcher_commit_s=sum(r["commit_s"] for r in per) / len(per),
                    worker_s=sum(r["worker_s"] for r in per) / len(per),
                    sweep_s=sum(r["seconds"] for r in per) / len(per),
                    worker_cpu_s=sum(r["worker_cpu_s"] for r in per) / len(per),
                    dispatcher_cpu_s=sum(r["dispatcher_cpu_s"] for r in per) / len(per),
                    framed_per_token=getattr(lda, "wire_per_token_sweep", None))
        ll = heldout(lda)
        cpu = (wire["worker_cpu_s"] + wire["dispatcher_cpu_s"] + client_cpu) * 1e3
        ratios = [r / s for r, s in zip(rounds[n], rounds["serial"])]
        results.append(dict(mode=mode_name(n), tokens_per_s=rate,
                            speedup=rate / serial_rate, heldout_ll=ll, wire=wire,
                            cpu_ms_per_sweep=cpu, round_ratios=ratios))
        common.log(f"{mode_name(n)}: {rate:,.0f} tokens/s ({rate / serial_rate:.2f}x; rounds "
                   f"{', '.join(f'{x:.2f}x' for x in ratios)}), "
                   f"{wire['bytes_per_token_per_sweep']:.2f} B/token/sweep, held-out {ll:.4f}")

    for r in results:
        w = r["wire"] or {}
        framed = w.get("framed_per_token")
        rows.append([r["mode"], f"{r['tokens_per_s']:,.0f}", f"{r['speedup']:.2f}x",
                     f"{w['bytes_per_token_per_sweep']:.2f}" if w else "-",
                     f"{framed:.2f}" if framed is not None else "-",
                     f"{w['down_per_token']:.2f} / {w['up_per_token']:.2f}" if w else "-",
                     f"{w['load_bytes_per_token']:.1f}" if w else "-",
                     f"{w['sweep_s'] * 1e3:.0f} / {w['worker_s'] * 1e3:.0f} / "
                     f"{w['dispatcher_prepare_s'] * 1e3:.0f} / {w['dispatcher_commit_s'] * 1e3:.0f}"
                     if w else "-",
                     f"{r['cpu_ms_per_sweep']:.0f}",
                     f"{r['heldout_ll']:.4f}"])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    header = (f"distlda distributed benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
              f"command: bench_distributed.py {' '.join(argv if argv is not None else sys.argv[1:])}\n"
              + "\n".join(common.environment_summary()) + "\n"
              f"corpus {args.corpus}: D={X.shape[0]} V={X.shape[1]} tokens={n_tok:,}; "
              f"held-out {H.shape[0]} docs, {args.eval_iters} fold-in sweeps; K={args.topics} "
              f"alpha={args.alpha} eta={args.eta}; speed: median sweep of sweeps {short + 1}-{long_}, best of "
              f"{args.repeats} alternating rounds; "
              + (f"cluster across network namespaces ({args.via}; links {args.link_rate}"
                 f"{', ' + args.link_delay if args.link_delay else ''}), one worker per host"
                 if args.via else "cluster on 127.0.0.1, one process per worker"))
    table = common.format_table(
        ["mode", "tokens/s", "speedup", "B/token/sweep", "framed B/token/sweep", "down / up",
         "load B/token",
         "ms/sweep: all / worker / prep / commit", "CPU ms/sweep", "held-out LL/token"], rows)
    noise = abs(results[0]["heldout_ll"] - results[0]["heldout_ll_seed2"])
    per_round = "\n".join(f"{r['mode']}: speedup per round "
                          f"{', '.join(f'{x:.2f}x' for x in r['round_ratios'])}"
                          for r in results if r.get("round_ratios"))
    text = (f"{header}\n\n{table}\n{per_round}\n"
            f"held-out noise (serial, two seeds): {noise:.4f} per token\n"
            f"machine ceiling: 2 threads sweeping halves on private counts, no communication, "
            f"run {ceiling:.2f}x faster than 1 thread\n\n{serializer_table()}\n")
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"distributed-{stamp}.txt").write_text(text)
    (out / f"distributed-{stamp}.json").write_text(json.dumps(dict(args=vars(args), results=results,
                                                                  parallel_ceiling=ceiling),
                                                             indent=1))
    common.log(f"wrote {out}/distributed-{stamp}.txt")


if __name__ == "__main__":
    main()
