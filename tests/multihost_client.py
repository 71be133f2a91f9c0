"""Run inside a test host (a network namespace): train on the cluster found with no address,
or list the name server's registrations, and print the outcome as one JSON line.

    python tests/multihost_client.py train D L K ITERATIONS SEED [TIMEOUT]
    python tests/multihost_client.py list
    python tests/multihost_client.py stats [full]
    python tests/multihost_client.py prune [all]
    python tests/multihost_client.py ls URL
    python tests/multihost_client.py write-set URL D V L SHARDS SEED
    python tests/multihost_client.py train-set URL K ITERATIONS SEED [check] [memory]

``write-set`` writes a seeded :class:`helpers.ZipfCorpus` (D documents of about L tokens,
vocabulary V) as a shard set of SHARDS shards at URL (an ``s3://`` bucket is made if missing).
``train-set`` trains the set at URL on the cluster (``distributed=True``); with ``memory``,
the set is read into one CSR matrix first and trained by today's path (the client sends the
tokens); with ``check``, the counts are verified against the set (sstats column sums equal
each word's count) and recounted from the checkpoints. Both print the client's peak RSS,
read right after training (before any check).
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
        prefix = "distlda." if argv[1:] == ["all"] else "distlda.worker."  # all: dispatcher too
        with _ns() as ns:
            for name, uri in ns.list(prefix=prefix).items():
                try:
                    transport.call(uri, "ping", timeout=1.0)
                except Exception:
                    ns.remove(name)
                    gone.append(name)
        print(json.dumps(gone))
        return 0
    if argv[0] == "stats":  # "stats full": the dispatcher's stats() as they are
        from distlda.cluster import transport
        with _ns() as ns:
            uri = ns.lookup("distlda.dispatcher")
        with transport.proxy(uri, 5.0) as d:
            s = d.stats()
        if argv[1:] == ["full"]:
            print(json.dumps(s, default=str))
            return 0
        print(json.dumps({k: s.get(k) for k in ("sweeps", "lost_workers", "redispatched_chunks",
                                                "longest_sweep_s")}
                         | {"sweep_s": [r["seconds"] for r in s.get("per_sweep", [])],
                            "workers": [r["workers"] for r in s.get("per_sweep", [])]}
                         | {k: s.get(k) for k in ("restored_shards", "bytes_down", "bytes_up",
                                                  "bytes_load", "tokens",
                                                  "bytes_per_token_per_sweep")}
                         | {"tokens_per_s": [r.get("tokens_per_s")
                                             for r in s.get("per_sweep", [])],
                            "bytes_sweep": [r["bytes_down"] + r["bytes_up"]
                                            for r in s.get("per_sweep", [])],
                            "job_workers": sorted({j["worker"] for r in s.get("per_sweep", [])
                                                   for j in r.get("jobs", [])})}))
        return 0
    if argv[0] == "ls":  # names of the files under an fsspec URL (recursively)
        import fsspec
        fs, root = fsspec.core.url_to_fs(argv[1])
        print(json.dumps(sorted(p.rsplit("/", 1)[-1] for p in fs.find(root))))
        return 0
    if argv[0] == "write-set":
        return write_set(argv[1], *(int(x) for x in argv[2:7]))
    if argv[0] == "train-set":
        return train_set(argv[1], *(int(x) for x in argv[2:5]), check="check" in argv[5:],
                         memory="memory" in argv[5:])
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


def vm_hwm() -> int:
    """This process's peak resident bytes (VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))


def write_set(url, D, V, L, shards, seed):
    import fsspec

    from distlda.corpora import ShardedCorpus

    from helpers import ZipfCorpus
    fs, root = fsspec.core.url_to_fs(url)
    bucket = root.split("/", 1)[0]
    if url.startswith("s3://") and not fs.exists(bucket):
        fs.mkdir(bucket)
    t0 = time.perf_counter()
    sc = ShardedCorpus.write(ZipfCorpus(D, V, L, seed=seed), url, shards=shards)
    print(json.dumps(dict(tokens=int(sc.num_tokens), docs=len(sc), num_terms=int(sc.num_terms),
                          seconds=time.perf_counter() - t0, shards=sc.num_shards)))
    return 0


def train_set(url, K, iters, seed, check=False, memory=False):
    import numpy as np

    from distlda.corpora import ShardedCorpus
    from distlda.models import LdaModel
    corpus = ShardedCorpus(url)
    if memory:
        import scipy.sparse as sp
        corpus = sp.vstack(list(corpus.iter_csr()), format="csr")
    t0 = time.perf_counter()
    lda = LdaModel(corpus, num_topics=K, iterations=iters, random_state=seed, eval_every=0,
                   distributed=True)
    seconds = time.perf_counter() - t0
    out = dict(rss_peak=vm_hwm(), seconds=seconds, sstats=int(lda.sstats.sum()),
               tokens=int(lda.num_tokens), executor=lda.executor_info)
    sh = lda.state.shards
    if sh is not None:
        out.update(checkpoint=sh.checkpoint, refs=[r and r["sweep"] for r in sh.refs],
                   chunks_held=len(lda.state.chunks))
    if check:
        sc = ShardedCorpus(url)
        counts = np.zeros(lda.sstats.shape[1], np.int64)
        for i in range(sc.num_shards):
            words, _ = sc.read_shard(i)
            counts += np.bincount(np.asarray(words, np.int64), minlength=counts.size)
        nwk, nk = lda.state.recount()
        out.update(set_tokens=int(counts.sum()),
                   words_exact=bool((lda.sstats.sum(0) == counts).all()),
                   exact=bool((nwk.T == lda.sstats).all() and (nk == lda.sstats.sum(1)).all()))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
