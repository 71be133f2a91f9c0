"""Run inside a test host (a network namespace): train on the cluster found with no address,
or list the name server's registrations, and print the outcome as one JSON line.

    python tests/multihost_client.py train D L K ITERATIONS SEED [TIMEOUT]
    python tests/multihost_client.py list
    python tests/multihost_client.py stats
    python tests/multihost_client.py prune
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _ns():
    from distlda.cluster import transport
    transport.configure()
    return transport.locate_ns(timeout=3.0, broadcast=True)


def main(argv):
    if argv[0] == "list":
        with _ns() as ns:
            print(json.dumps({k: str(v) for k, v in ns.list(prefix="distlda.").items()}))
        return 0
    if argv[0] == "prune":  # remove worker registrations that do not answer a ping
        from distlda.cluster import transport
        gone = []
        with _ns() as ns:
            for name, uri in ns.list(prefix="distlda.worker.").items():
                try:
                    transport.call(uri, "ping", timeout=1.0)
                except Exception:
                    ns.remove(name)
                    gone.append(name)
        print(json.dumps(gone))
        return 0
    if argv[0] == "stats":
        from distlda.cluster import transport
        with _ns() as ns:
            uri = ns.lookup("distlda.dispatcher")
        with transport.proxy(uri, 5.0) as d:
            s = d.stats()
        print(json.dumps({k: s.get(k) for k in ("sweeps", "lost_workers", "redispatched_chunks",
                                                "longest_sweep_s")}
                         | {"sweep_s": [r["seconds"] for r in s.get("per_sweep", [])],
                            "workers": [r["workers"] for r in s.get("per_sweep", [])]}))
        return 0
    from distlda.models import LdaModel

    from helpers import planted_corpus
    D, L, K, iters, seed = (int(x) for x in argv[1:6])
    X, _ = planted_corpus(D=D, V=2000, K=K, L=L, seed=seed)
    t0 = time.perf_counter()
    lda = LdaModel(X, num_topics=K, iterations=iters, random_state=seed, eval_every=0,
                   chunksize=100, distributed=None)
    seconds = time.perf_counter() - t0
    nwk, nk = lda.state.recount()
    print(json.dumps(dict(tokens=int(X.sum()), sstats=int(lda.sstats.sum()),
                          exact=bool((nwk.T == lda.sstats).all() and (nk == lda.sstats.sum(1)).all()),
                          executor=lda.executor_info, seconds=seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
