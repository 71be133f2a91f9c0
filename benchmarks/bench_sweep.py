"""One sweep of the sampler entry point, per sampler, from one fixed state: ns per token.

Usage::

    python benchmarks/bench_sweep.py                        # this checkout only
    python benchmarks/bench_sweep.py --baseline a343335     # and a343335, alternating

For each corpus (``synth-small``, built by the shared ``build.py``, and the shared
``debdesc``) and each case (dense, sparse and mh at K=100, mh at K=1000) a model is trained a
few sweeps in one thread (``LdaModel``, same seed everywhere); one more sweep through
:func:`distlda.gibbs.sampling.sweep` (the MH sampler's memory built afresh, its proposals then
kept) gives the fixed state: topics, counts, the sparse sampler's word lists and the MH
records. Each repeat restores that state and times one sweep with fixed seeds (what
``LocalExecutor`` runs with one thread); the table gives the minimum over the repeats and
rounds, in ns per token, and a hash of the topics after the sweep (equal hashes: the same
chain).

With ``--baseline REV`` a temporary ``git worktree`` of REV is made and the same measurement
runs in a subprocess with ``PYTHONPATH`` on it, alternating with this checkout's subprocess
round by round (the machine may be shared: only the minima and their ratio mean something);
the worktree is removed after. The sweep is called through whichever entry point the
checkout has (the records API, or the flat arguments before it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402  (puts this checkout first on sys.path; --repo goes before it)

CASES = (("dense", 100), ("sparse", 100), ("mh", 100), ("mh", 1000))
CORPORA = ("synth-small", "debdesc")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="also measure git revision REV (a temporary worktree), alternating")
    p.add_argument("--corpora", default=",".join(CORPORA))
    p.add_argument("--cases", default=",".join(f"{s}:{k}" for s, k in CASES),
                   help="sampler:K pairs")
    p.add_argument("--repeats", type=int, default=7, help="timed sweeps per case and round")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per checkout")
    p.add_argument("--train-sweeps", type=int, default=3)
    p.add_argument("--shared", default=None, help="the shared folder (corpora/)")
    p.add_argument("--out", default=None, help="also write the report to this file")
    p.add_argument("--child", default=None, metavar="REPO", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- the child
class Sweeper:
    """One sweep of ``state``'s chunks through the checkout's entry point, and the state it
    must start from (snapshot / restore)."""

    def __init__(self, state, sampler: str):
        from distlda.gibbs import kernels as K_
        from distlda.gibbs import mh as _mh
        from distlda.gibbs import sampling
        self.st, self.sampler, self.mh, self.sampling = state, sampler, _mh, sampling
        self.records_api = hasattr(sampling, "Tokens")
        self.lists = None
        if sampler == "sparse":
            counts = np.zeros(state.num_terms, np.int64)
            for c in state.chunks:
                counts += np.bincount(c.words, minlength=state.num_terms)
            self.lists = K_.build_word_lists(state.nwk, counts)
        if self.records_api:
            s = sampling
            self.options = (s.MhOptions(None, _mh.Workspace()) if sampler == "mh"
                            else s.DenseOptions() if sampler == "dense"
                            else s.SparseOptions(self.lists))
        elif sampler == "mh":
            _mh.clear_cache()  # the first sweep draws fresh proposals, as a new workspace does

    def sweep(self, seeds) -> None:
        st, s = self.st, self.sampling
        if self.records_api:
            s.sweep(s.Tokens.of(st.chunks), st.nwk, st.nk, s.Prior.of(st), self.options, seeds)
        else:
            s.sweep([c.words for c in st.chunks], [c.topics for c in st.chunks],
                    [c.doc_ptr for c in st.chunks], st.nwk, st.nk, st.alpha, st.beta, st.vbeta,
                    seeds, self.sampler, word_lists=self.lists)

    def _records(self):
        if self.sampler != "mh":
            return None
        if self.records_api:
            return self.options.workspace._work.rec
        return next(reversed(self.mh._CACHE.values())).rec  # the last one used

    def arrays(self) -> list:
        """Every array the sweep reads and writes."""
        st = self.st
        out = [c.topics for c in st.chunks] + [st.nwk, st.nk] + list(self.lists or ())
        rec = self._records()
        return out + ([rec] if rec is not None else [])


def trained_state(X, sampler: str, K: int, sweeps: int):
    from distlda.models import LdaModel
    lda = LdaModel(X, num_topics=K, alpha=0.1, eta=0.01, iterations=sweeps, sampler=sampler,
                   random_state=0, workers=1, distributed=False, eval_every=0, chunksize=2000)
    for state in (lda.__dict__.get("_state"), getattr(lda, "state", None)):
        if hasattr(state, "chunks"):  # the Gibbs state, wherever this checkout keeps it
            return state
    raise SystemExit("no Gibbs state found on the model")


def measure_case(X, sampler: str, K: int, args) -> dict:
    st = trained_state(X, sampler, K, args.train_sweeps)
    sw = Sweeper(st, sampler)
    seeds = np.arange(len(st.chunks), dtype=np.int64) + 12345
    sw.sweep(seeds + 1)           # builds the MH memory; its proposals are then the next's
    fixed = [a.copy() for a in sw.arrays()]
    best = float("inf")
    for _ in range(args.repeats):
        for a, f in zip(sw.arrays(), fixed):
            np.copyto(a, f)
        t0 = time.perf_counter()
        sw.sweep(seeds)
        best = min(best, time.perf_counter() - t0)
    topics = np.concatenate([c.topics for c in st.chunks])
    return {"ns_per_token": best / st.num_tokens * 1e9, "tokens": st.num_tokens,
            "hash": hashlib.sha1(topics.tobytes()).hexdigest()[:10],
            "api": "records" if sw.records_api else "flat"}


def child(args) -> None:
    sys.path.insert(0, args.child)  # this checkout's distlda, before the one common put first
    import distlda
    shared = common.shared_dir(args.shared)
    out = {"distlda": str(Path(distlda.__file__).resolve().parent), "cases": {}}
    for name in args.corpora.split(","):
        X = common.load_csr(common.corpus_files(name, shared).train)
        for case in args.cases.split(","):
            sampler, K = case.split(":")
            out["cases"][f"{name} {sampler} K={K}"] = measure_case(X, sampler, int(K), args)
    print(json.dumps(out))


# ----------------------------------------------------------------------------- the parent
def run_child(repo: Path, argv: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(repo), **common.SINGLE_THREAD_ENV)
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", str(repo)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"measuring {repo} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def child_argv(args) -> list[str]:
    argv = ["--corpora", args.corpora, "--cases", args.cases, "--repeats", str(args.repeats),
            "--train-sweeps", str(args.train_sweeps)]
    return argv + (["--shared", args.shared] if args.shared else [])


def add_worktree(rev: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"distlda-{rev}-")) / "tree"
    subprocess.run(["git", "-C", str(common.REPO_ROOT), "worktree", "add", "--detach", "-q",
                    str(path), rev], check=True)
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(common.REPO_ROOT), "worktree", "remove", "--force",
                    str(path)], check=False)
    subprocess.run(["git", "-C", str(common.REPO_ROOT), "worktree", "prune"], check=False)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def git_rev(repo: Path) -> str:
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "distlda"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+changes" if dirty else "")


def report(args, results: dict, labels: list[str]) -> str:
    here = labels[0]
    cases = list(results[here][0]["cases"])
    best = {lab: {c: min(r["cases"][c]["ns_per_token"] for r in results[lab]) for c in cases}
            for lab in labels}
    headers = ["case", "tokens"] + [f"{lab} ns/token" for lab in labels]
    if len(labels) > 1:
        headers += [f"{here} / {labels[1]}", "same topics"]
    rows = []
    for c in cases:
        first = results[here][0]["cases"][c]
        row = [c, f"{first['tokens']:,}"] + [f"{best[lab][c]:.1f}" for lab in labels]
        if len(labels) > 1:
            other = results[labels[1]][0]["cases"][c]
            row += [f"{best[here][c] / best[labels[1]][c]:.3f}",
                    "yes" if other["hash"] == first["hash"] else "NO"]
        rows.append(row)
    lines = [f"distlda sweep benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}",
             f"command: bench_sweep.py {' '.join(sys.argv[1:])}",
             *common.environment_summary(),
             *(f"{lab}: {results[lab][0]['distlda']} ({results[lab][0]['cases'][cases[0]]['api']}"
               f" entry point)" for lab in labels),
             f"one sweep from a fixed state (LdaModel trained {args.train_sweeps} sweeps, one "
             f"thread, alpha=0.1, eta=0.01), min of {args.repeats} repeats x {args.rounds} "
             f"alternating rounds", "",
             common.format_table(headers, rows)]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args)
    repos = {git_rev(common.REPO_ROOT): common.REPO_ROOT}
    tree = None
    try:
        if args.baseline:
            tree = add_worktree(args.baseline)
            repos[args.baseline] = tree
        labels = list(repos)
        results: dict = {lab: [] for lab in labels}
        for rnd in range(args.rounds):
            # alternate which goes first, so that a slow spell hits both alike
            for lab in labels if rnd % 2 == 0 else labels[::-1]:
                common.log(f"round {rnd + 1}: {lab}")
                results[lab].append(run_child(repos[lab], child_argv(args)))
    finally:
        if tree is not None:
            remove_worktree(tree)
    text = report(args, results, labels)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
