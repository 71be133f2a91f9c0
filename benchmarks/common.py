"""Shared helpers for the distlda benchmarks.

Corpus building and loading (Matrix Market -> scipy CSR, cached as ``.npz``), one
training run per library in an isolated ``spawn`` child (so timings, peak memory and
imported state never mix), the shared held-out evaluator, and plain-text tables.

Everything that touches ``distlda`` or ``tomotopy`` imports it lazily, so this module
works with either library missing.
"""

import dataclasses
import gzip
import importlib
import inspect
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp
from scipy.special import gammaln

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benchmarks"
DATA_DIR = BENCH_DIR / "data"
OUT_DIR = BENCH_DIR / "out"

# Benchmark the checkout, not whatever distlda happens to be installed.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

#: Environment variables that pin every numeric runtime we might load to one thread.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}

#: Extra LdaModel arguments, passed when its signature has them.
DISTLDA_OPTIONS = {"workers": 1, "eval_every": 0, "distributed": False}  # no cluster lookup

SYNTHETIC = ("synth", "synth-small")
#: Real corpora built here from Debian packages (benchmarks/build_<name>.py).
BUILT = ("kerneldoc",)
LIBRARIES = ("tomotopy", "distlda")
LIBRARY_MODULES = {"tomotopy": "tomotopy", "distlda": "distlda.models",
                   "lda": "lda", "gensim": "gensim.models"}
#: Every library a training child can run (bench_peers.py); bench_serial.py uses LIBRARIES.
PEER_LIBRARIES = ("distlda", "tomotopy", "lda", "gensim")


# ----------------------------------------------------------------------------- paths
def shared_dir(override=None):
    """Locate the team's ``shared/`` directory.

    Parameters
    ----------
    override : str or None
        Explicit path (``--shared``). Falls back to ``$DISTLDA_SHARED``, then to
        ``../shared`` relative to the repository root.

    Returns
    -------
    pathlib.Path
    """
    path = Path(override or os.environ.get("DISTLDA_SHARED") or REPO_ROOT.parent / "shared")
    if not (path / "corpora").is_dir():
        raise SystemExit(f"shared directory not found (no corpora/ in {path}); "
                         "pass --shared DIR or set DISTLDA_SHARED")
    return path.resolve()


# ----------------------------------------------------------------------------- corpora
@dataclasses.dataclass(frozen=True)
class CorpusFiles:
    """Where one benchmark corpus lives on disk (picklable, so children can reload it).

    Attributes
    ----------
    name : str
        Corpus name, e.g. ``"synth"`` or ``"debdesc"``.
    train, heldout : pathlib.Path
        Matrix Market files (optionally ``.gz``), documents x words, 1-based.
    vocab : pathlib.Path
        One word per line (optionally ``.gz``); line ``i`` is word id ``i``.
    """

    name: str
    train: Path
    heldout: Path
    vocab: Path


def corpus_files(name, shared, data_dir=DATA_DIR):
    """Return the files of corpus `name`, building a synthetic corpus if missing.

    Parameters
    ----------
    name : {"synth", "synth-small", "debdesc", "kerneldoc"}
    shared : pathlib.Path
        The shared directory (see :func:`shared_dir`).
    data_dir : pathlib.Path
        Where synthetic corpora are built and caches are kept.

    Returns
    -------
    CorpusFiles
    """
    if name in SYNTHETIC or name in BUILT:
        files = CorpusFiles(name, data_dir / f"{name}.train.mm", data_dir / f"{name}.heldout.mm",
                            data_dir / f"{name}.vocab")
        if not (files.train.exists() and files.heldout.exists() and files.vocab.exists()):
            if name in BUILT:
                script = BENCH_DIR / f"build_{name}.py"
                cmd = [sys.executable, str(script), "--out", str(data_dir), "--shared", str(shared)]
                log(f"building corpus {name}: {' '.join(cmd)}")
                subprocess.run(cmd, check=True)
            else:
                build_synthetic(name, shared, data_dir)
        return files
    src = shared / "corpora"
    files = CorpusFiles(name, src / f"{name}.train.mm.gz", src / f"{name}.heldout.mm.gz",
                        src / f"{name}.vocab.gz")
    missing = [str(p) for p in (files.train, files.heldout, files.vocab) if not p.exists()]
    if missing:
        raise SystemExit(f"corpus {name!r}: missing {', '.join(missing)}")
    return files


def build_synthetic(name, shared, data_dir):
    """Run ``shared/corpora/build.py NAME --out DATA_DIR`` (seeded, deterministic)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(shared / "corpora" / "build.py"), name, "--out", str(data_dir)]
    log(f"building corpus {name}: {' '.join(cmd)}")
    subprocess.run(cmd, check=True)


def _cache_path(mm_path, data_dir):
    stem = mm_path.name.removesuffix(".gz").removesuffix(".mm")
    return data_dir / f"{stem}.npz"


def load_csr(mm_path, data_dir=DATA_DIR):
    """Load a Matrix Market count matrix as int32 CSR, through an ``.npz`` cache.

    Parameters
    ----------
    mm_path : pathlib.Path
        ``.mm`` or ``.mm.gz`` file (documents x words).
    data_dir : pathlib.Path
        Cache directory; the cache is rebuilt when older than `mm_path`.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_docs, n_words), dtype int32
        Sorted indices, no duplicates.
    """
    cache = _cache_path(Path(mm_path), data_dir)
    if cache.exists() and cache.stat().st_mtime >= Path(mm_path).stat().st_mtime:
        return sp.load_npz(cache).tocsr()
    csr = sp.csr_matrix(scipy.io.mmread(str(mm_path)))
    csr.sum_duplicates()
    csr.sort_indices()
    csr = sp.csr_matrix(csr, dtype=np.int32)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    sp.save_npz(tmp, csr, compressed=False)
    os.replace(tmp, cache)
    return csr


def load_vocab(path):
    """Read a vocabulary file (one word per line, optionally gzipped) into a list."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def n_tokens(csr):
    """Total token count of a document-term matrix."""
    return int(csr.data.sum(dtype=np.int64))


def subsample_docs(csr, max_docs, seed=0):
    """Keep at most `max_docs` rows (a seeded sample, order preserved); ``0`` keeps all."""
    if not max_docs or csr.shape[0] <= max_docs:
        return csr
    rows = np.sort(np.random.default_rng(seed).choice(csr.shape[0], max_docs, replace=False))
    return csr[rows]


def csr_to_word_docs(csr, vocab):
    """Yield each non-empty document as a list of word strings (tokens expanded).

    Parameters
    ----------
    csr : scipy.sparse.csr_matrix
    vocab : list of str

    Yields
    ------
    list of str
    """
    words = np.asarray(vocab, dtype=object)
    for d in range(csr.shape[0]):
        lo, hi = csr.indptr[d], csr.indptr[d + 1]
        if hi > lo:
            yield words[np.repeat(csr.indices[lo:hi], csr.data[lo:hi])].tolist()


# ----------------------------------------------------------------------------- process metrics
def current_rss_mb():
    """Resident set size of this process now, in MiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    """High-water resident set size of this process, in MiB.

    Reads ``VmHWM`` (per address space, so it starts afresh in a spawned child);
    ``ru_maxrss`` is not used on Linux because it carries the parent's peak across exec.
    """
    try:
        with open("/proc/self/status") as f:
            line = next(l for l in f if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- training (children)
def fit_isolated(lib, files, num_topics, iterations, alpha, eta, seed, options=None):
    """Train one model in a fresh ``spawn`` process and return its measurements.

    A new interpreter per run means every run pays (and the long-minus-short difference
    cancels) the same import/JIT/initialisation cost, and peak RSS belongs to one library.

    Parameters
    ----------
    lib : {"tomotopy", "distlda", "lda", "gensim"}
    options : dict or None
        Library-specific settings, e.g. ``{"workers": 2}`` (tomotopy, distlda, gensim) or
        ``{"sampler": "mh"}`` (distlda, passed to ``LdaModel`` over
        :data:`DISTLDA_OPTIONS`). None keeps the one-thread defaults of bench_serial.py.

    Returns
    -------
    dict
        See :func:`_fit_child`.
    """
    args = (lib, files, num_topics, iterations, alpha, eta, seed)
    if options:                                  # keep bench_serial's call unchanged
        args += (options,)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_fit_child, *args).result()


def _fit_child(lib, files, num_topics, iterations, alpha, eta, seed, options=None):
    """Child-process body: load the training matrix, fit, report.

    Returns
    -------
    dict
        ``seconds`` (wall, model construction through end of training), ``cpu_seconds``
        (process CPU over the same span, all threads), ``peak_rss_mb`` (read as training
        ends, before any post-processing), ``counts`` (int32 ndarray of
        shape (K, V), word-topic counts), ``alpha`` (ndarray of shape (K,)),
        ``n_tokens``, ``rss_before_mb`` (corpus loaded, library imported), ``peak_rss_mb``,
        ``notes`` (list of str). gensim returns ``phi`` (float32, rows sum to 1) instead of
        ``counts``: its model has no integer counts.
    """
    os.environ.update(SINGLE_THREAD_ENV)
    train = load_csr(files.train)
    fit = {"tomotopy": _fit_tomotopy, "distlda": _fit_distlda, "lda": _fit_lda,
           "gensim": _fit_gensim}[lib]
    importlib.import_module(LIBRARY_MODULES[lib])     # import footprint is not the model's
    rss_before = current_rss_mb()
    extra = (options,) if options else ()
    result = fit(train, files, num_topics, iterations, alpha, eta, seed, *extra)
    result.update(n_tokens=n_tokens(train), rss_before_mb=rss_before)
    return result


def _fit_tomotopy(train, files, num_topics, iterations, alpha, eta, seed, options=None):
    import tomotopy as tp

    workers = int((options or {}).get("workers", 1))
    # One worker: NONE (as fast as DEFAULT, see README). More: tomotopy's own choice unless
    # options["parallel"] names a ParallelScheme member.
    scheme = tp.ParallelScheme.NONE if workers == 1 else tp.ParallelScheme.DEFAULT
    if workers > 1 and (options or {}).get("parallel"):
        scheme = tp.ParallelScheme[options["parallel"].upper()]

    vocab = load_vocab(files.vocab)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    mdl = tp.LDAModel(k=num_topics, alpha=alpha, eta=eta, seed=seed)
    mdl.optim_interval = 0                             # keep alpha fixed (default re-fits it)
    # Streamed, so no list of string documents inflates tomotopy's memory; the conversion
    # is part of the fixed cost that cancels out of the throughput.
    for words in csr_to_word_docs(train, vocab):
        mdl.add_doc(words)
    if workers == 1:
        mdl.train(iterations, workers=workers, parallel=scheme)
    else:
        import warnings

        with warnings.catch_warnings():        # "may differ even with fixed seed": known
            warnings.simplefilter("ignore", RuntimeWarning)
            mdl.train(iterations, workers=workers, parallel=scheme)
    seconds, cpu, peak = time.perf_counter() - wall0, time.process_time() - cpu0, peak_rss_mb()
    notes = [f"tomotopy isa={tp.isa}"]
    if workers != 1:
        notes.append(f"tomotopy workers={workers} parallel={scheme.name}")
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak,
            "counts": tomotopy_counts(mdl, vocab),
            "alpha": np.asarray(mdl.alpha, dtype=np.float64), "notes": notes}


def tomotopy_counts(mdl, vocab):
    """Word-topic counts of a trained tomotopy model, over the full vocabulary.

    ``get_topic_word_dist(k, normalize=False)`` returns ``n_kw + eta`` over
    ``mdl.used_vocabs``; words tomotopy never saw keep count 0.

    Returns
    -------
    ndarray of shape (K, len(vocab)), dtype int32
    """
    word_id = {w: i for i, w in enumerate(vocab)}
    cols = np.fromiter((word_id[w] for w in mdl.used_vocabs), dtype=np.int64)
    counts = np.zeros((mdl.k, len(vocab)), dtype=np.int32)
    for k in range(mdl.k):
        raw = np.asarray(mdl.get_topic_word_dist(k, normalize=False), dtype=np.float64)
        counts[k, cols] = np.rint(raw - mdl.eta)
    return counts


def _fit_distlda(train, files, num_topics, iterations, alpha, eta, seed, options=None):
    from distlda.models import LdaModel

    kwargs = dict(num_topics=num_topics, alpha=alpha, eta=eta, iterations=iterations,
                  random_state=seed, distributed=False)
    notes = []
    accepted = inspect.signature(LdaModel).parameters
    # One sampling thread; no periodic log-likelihood during training (tomotopy has none).
    # `options` (bench_peers.py: workers, sampler, mh_steps) override, under the same rule.
    for key, value in {**DISTLDA_OPTIONS, **(options or {})}.items():
        if key in accepted:
            kwargs[key] = value
        else:
            notes.append(f"LdaModel takes no {key!r}")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    lda = LdaModel(train, **kwargs)
    seconds, cpu, peak = time.perf_counter() - wall0, time.process_time() - cpu0, peak_rss_mb()
    counts = np.asarray(lda.sstats).astype(np.int32)
    own = np.asarray(lda.get_topics(), dtype=np.float64)
    gap = float(np.abs(own - phi_from_counts(counts, eta)).max())
    if gap > 1e-6:
        notes.append(f"get_topics() differs from (sstats+eta)/(n_k+V*eta) by {gap:.2e}")
    if int(counts.sum(dtype=np.int64)) != n_tokens(train):
        notes.append(f"sstats sum {int(counts.sum(dtype=np.int64))} != tokens {n_tokens(train)}")
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak, "counts": counts,
            "alpha": np.asarray(lda.alpha, dtype=np.float64), "notes": notes}


def _fit_lda(train, files, num_topics, iterations, alpha, eta, seed, options=None):
    """The ``lda`` package (plain collapsed Gibbs in Cython, one thread)."""
    import logging

    import lda

    logging.getLogger("lda").setLevel(logging.ERROR)      # "all zero column": unused words
    wall0, cpu0 = time.perf_counter(), time.process_time()
    # refresh > n_iter: its log-likelihood is computed only before the first and after the
    # last sweep, a fixed cost that cancels out of the long-minus-short throughput.
    mdl = lda.LDA(n_topics=num_topics, n_iter=iterations, alpha=alpha, eta=eta,
                  random_state=seed, refresh=iterations + 1)
    mdl.fit(train)
    seconds, cpu, peak = time.perf_counter() - wall0, time.process_time() - cpu0, peak_rss_mb()
    counts = np.asarray(mdl.nzw_, dtype=np.int32)
    notes = ["lda: topic assignments initialised as token_index % K (not random), "
             "~1000 pre-drawn uniforms reshuffled every sweep"]
    gap = float(np.abs(mdl.topic_word_ - phi_from_counts(counts, eta)).max())
    if gap > 1e-6:
        notes.append(f"lda: topic_word_ differs from (nzw+eta)/(n_k+V*eta) by {gap:.2e}")
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak, "counts": counts,
            "alpha": np.full(num_topics, float(alpha)), "notes": notes}


class TreeRssSampler:
    """Peak of the summed RSS of this process and all its descendants, sampled.

    For libraries that train in worker processes (gensim's ``LdaMulticore``), whose memory
    ``VmHWM`` of the main process misses. A daemon thread polls every `interval` seconds with
    psutil; pages shared between the processes count once per process.

    Use as a context manager; ``peak_mb`` holds the result (0.0 without psutil).
    """

    def __init__(self, interval=0.05):
        import threading

        self.interval, self.peak_mb, self.ok = interval, 0.0, True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, psutil, me):
        total = 0
        try:
            procs = [me] + me.children(recursive=True)
        except psutil.Error:
            return
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:                      # exited between listing and reading
                pass
        self.peak_mb = max(self.peak_mb, total / 2**20)

    def _run(self):
        try:
            import psutil  # once: no import while the library forks
        except ImportError:
            self.ok = False
            return
        me = psutil.Process()
        while not self._stop.is_set():
            self._sample(psutil, me)
            self._stop.wait(self.interval)
        self._sample(psutil, me)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def _children_cpu_seconds():
    """CPU seconds (user + system) of this process's terminated, waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _fit_gensim(train, files, num_topics, iterations, alpha, eta, seed, options=None):
    """gensim ``LdaMulticore`` (online variational Bayes): `iterations` are passes.

    ``workers`` E-step processes plus the main process (which reads the corpus and does the
    M-step). CPU time includes the workers (they are joined when training ends); peak RSS is
    the larger of the main process's ``VmHWM`` and the sampled sum over all processes.
    """
    import logging

    from gensim.matutils import Sparse2Corpus
    from gensim.models import LdaMulticore

    logging.getLogger("gensim").setLevel(logging.WARNING)
    workers = int((options or {}).get("workers", 1))
    corpus = Sparse2Corpus(train, documents_columns=False)
    id2word = dict(enumerate(load_vocab(files.vocab)))
    wall0, cpu0, child0 = time.perf_counter(), time.process_time(), _children_cpu_seconds()
    with TreeRssSampler() as tree:
        mdl = LdaMulticore(corpus, num_topics=num_topics, id2word=id2word, workers=workers,
                           passes=iterations, alpha=alpha, eta=eta, random_state=seed,
                           eval_every=None)
    seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0 + _children_cpu_seconds() - child0
    peak = max(peak_rss_mb(), tree.peak_mb)
    notes = [f"gensim: LdaMulticore workers={workers} (+ the main process), chunksize="
             f"{mdl.chunksize}, iterations={mdl.iterations} per document; peak RSS = "
             "sampled sum over main + worker processes"]
    if not tree.ok:
        notes.append("gensim: psutil missing, peak RSS is the main process only")
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak,
            "phi": np.asarray(mdl.get_topics(), dtype=np.float32),
            "alpha": np.asarray(mdl.alpha, dtype=np.float64), "notes": notes}


# ----------------------------------------------------------------------------- quality
def phi_from_counts(counts, eta):
    """Posterior-mean topic-word matrix ``(n_kw + eta) / (n_k + V * eta)``.

    Parameters
    ----------
    counts : ndarray of shape (K, V)
        Word-topic counts.
    eta : float
        Symmetric topic-word Dirichlet parameter.

    Returns
    -------
    ndarray of shape (K, V), dtype float64
        Rows sum to 1.
    """
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + eta) / (counts.sum(axis=1, keepdims=True) + counts.shape[1] * eta)


def word_loglik_per_token(counts, eta):
    """Collapsed ``log p(w | z) / N`` of a Gibbs state (Griffiths & Steyvers 2004, eq. 2).

    Needs only the word-topic counts, so it is computed identically for every library.

    Parameters
    ----------
    counts : ndarray of shape (K, V)
    eta : float

    Returns
    -------
    float
    """
    counts = np.asarray(counts)
    K, V = counts.shape
    nz = counts[counts > 0].astype(np.float64)
    n_k = counts.sum(axis=1, dtype=np.int64).astype(np.float64)
    total = (K * gammaln(V * eta) - gammaln(n_k + V * eta).sum()
             + (gammaln(nz + eta) - gammaln(eta)).sum())
    return float(total / n_k.sum())


def _split_alternating(csr):
    """Expand each document's tokens (word-id order) and split them alternately.

    Returns
    -------
    obs_doc, obs_word, held_doc, held_word : ndarray of int64
        Document index and word id of every observed (even position) and held-out
        (odd position) token.
    """
    counts = np.asarray(csr.data, dtype=np.int64)
    words = np.repeat(csr.indices.astype(np.int64), counts)
    tok_per_doc = np.asarray(csr.sum(axis=1, dtype=np.int64)).ravel()
    docs = np.repeat(np.arange(csr.shape[0]), tok_per_doc)
    starts = np.concatenate(([0], np.cumsum(tok_per_doc)[:-1]))
    position = np.arange(words.size) - starts[docs]
    held = position % 2 == 1
    return docs[~held], words[~held], docs[held], words[held]


def _reference_doc_completion(phi, alpha, csr, iterations=50, burn_in=None, random_state=0):
    """Held-out log-likelihood per token by document completion (numpy reference).

    Each document's tokens (expanded in word-id order) are split alternately into an
    observed half (even positions) and a held-out half (odd positions). Topic
    assignments of the observed half are Gibbs-sampled with `phi` fixed; the estimate
    ``theta_d = (n_dk + alpha) / (n_d + sum(alpha))`` is averaged over the sweeps after
    `burn_in`; the score is ``sum log(theta_d @ phi[:, w])`` over held-out tokens,
    divided by their number.

    Documents are independent given `phi`, so one sweep visits token position ``j`` of
    all documents at once (documents sorted by length, active ones form a prefix).

    Parameters
    ----------
    phi : ndarray of shape (K, V)
        Topic-word distributions, rows sum to 1.
    alpha : float or ndarray of shape (K,)
        Document-topic Dirichlet parameter.
    csr : scipy.sparse.csr_matrix of shape (n_docs, V)
        Held-out documents (counts).
    iterations : int
        Gibbs sweeps over the observed halves.
    burn_in : int or None
        Sweeps discarded before averaging theta; default ``iterations // 2``.
    random_state : int or numpy.random.Generator

    Returns
    -------
    float
        Log-likelihood per held-out token (natural log).
    """
    rng = np.random.default_rng(random_state)
    phi_t = np.ascontiguousarray(np.asarray(phi, dtype=np.float64).T)     # V x K
    K = phi_t.shape[1]
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (K,)).copy()
    burn_in = iterations // 2 if burn_in is None else burn_in
    obs_doc, obs_word, held_doc, held_word = _split_alternating(sp.csr_matrix(csr))
    if held_word.size == 0:
        raise ValueError("held-out documents have no token to predict")

    # Pad observed tokens into a (docs x max_len) matrix, longest documents first.
    n_obs = np.bincount(obs_doc, minlength=csr.shape[0])
    order = np.argsort(-n_obs, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    lengths = n_obs[order]
    starts = np.concatenate(([0], np.cumsum(n_obs)[:-1]))
    pos = np.arange(obs_doc.size) - starts[obs_doc]
    width = int(lengths[0]) if lengths.size else 0
    W = np.zeros((order.size, width), dtype=np.int64)
    W[rank[obs_doc], pos] = obs_word
    Z = rng.integers(K, size=W.shape)
    active = np.array([(lengths > j).sum() for j in range(width)], dtype=np.int64)
    ndk = np.zeros((order.size, K), dtype=np.float64)
    np.add.at(ndk, (rank[obs_doc], Z[rank[obs_doc], pos]), 1)

    theta_sum = np.zeros_like(ndk)
    denom = (lengths + alpha.sum())[:, None]
    for sweep in range(iterations):
        for j in range(width):
            m = active[j]
            rows = np.arange(m)
            z_old, w = Z[:m, j], W[:m, j]
            ndk[rows, z_old] -= 1
            cum = np.cumsum((ndk[:m] + alpha) * phi_t[w], axis=1)
            u = rng.random(m) * cum[:, -1]
            z_new = np.minimum((cum < u[:, None]).sum(axis=1), K - 1)
            ndk[rows, z_new] += 1
            Z[:m, j] = z_new
        if sweep >= burn_in:
            theta_sum += (ndk + alpha) / denom
    theta = theta_sum / max(iterations - burn_in, 1)

    total = 0.0
    held_rank = rank[held_doc]
    for s in range(0, held_word.size, 65536):                 # bounded memory
        r, w = held_rank[s:s + 65536], held_word[s:s + 65536]
        total += np.log(np.einsum("ik,ik->i", theta[r], phi_t[w])).sum()
    return float(total / held_word.size)


def get_evaluator(kind="auto"):
    """Pick the held-out evaluator shared by all libraries.

    Parameters
    ----------
    kind : {"auto", "library", "reference"}
        ``auto`` uses ``distlda.evaluation.heldout_loglik`` when it imports, else
        :func:`_reference_doc_completion`; ``library`` raises if it does not import.

    Returns
    -------
    name : str
    evaluate : callable ``(phi, alpha, csr, iterations, random_state) -> float``
    """
    reference = ("benchmarks.common._reference_doc_completion", _reference_doc_completion)
    if kind == "reference":
        return reference
    try:
        from distlda.evaluation import heldout_loglik
    except Exception as exc:                       # not written yet, or broken mid-edit
        if kind == "library":
            raise
        return (f"{reference[0]} (distlda.evaluation unavailable: {type(exc).__name__})",
                reference[1])
    return "distlda.evaluation.heldout_loglik", heldout_loglik


# ----------------------------------------------------------------------------- reporting
def log(msg):
    """Progress line on stderr with a timestamp (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def format_table(headers, rows, title=None):
    """Render rows as an aligned plain-text table (numbers right-, text left-aligned).

    Parameters
    ----------
    headers : list of str
    rows : list of list
        Cells already formatted as strings.
    title : str or None

    Returns
    -------
    str
    """
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def line(cells):
        out = []
        for cell, width in zip(cells, widths):
            cell = str(cell)
            numeric = cell[:1].isdigit() or cell[:1] in "+-." or cell in ("nan", "n/a")
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    parts = ([title] if title else []) + [line(headers), rule] + [line(r) for r in rows]
    return "\n".join(parts)


def environment_summary():
    """A few lines describing the machine and the software versions measured."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    for mod in ("tomotopy", "numba"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} missing")
    rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "no commit"
    dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "distlda"],
                           capture_output=True, text=True).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"host: {platform.node()}  cpu: {cpu}  cores: {os.cpu_count()}  load avg: {load}",
            "versions: " + ", ".join(versions),
            f"distlda: git {rev}{' + uncommitted changes' if dirty else ''}"]


def add_model_args(p, full: dict, quick: dict) -> None:
    """Options every benchmark shares: priors, seed, held-out evaluation, shared/ location.

    ``full`` and ``quick`` give the ``eval_iters`` and ``heldout_docs`` defaults shown in help.
    """
    p.add_argument("--alpha", type=float, default=0.1,
                   help="symmetric document-topic prior, every library and K (default 0.1)")
    p.add_argument("--eta", type=float, default=0.01, help="topic-word prior (default 0.01)")
    p.add_argument("--seed", type=int, default=42, help="training and evaluation seed")
    p.add_argument("--evaluator", choices=("auto", "library", "reference"), default="auto",
                   help="held-out evaluator: distlda.evaluation if present (auto), or the numpy "
                        "reference in benchmarks/common.py")
    p.add_argument("--eval-iters", type=int, help="fold-in sweeps of the document completion "
                   f"(default {full['eval_iters']}; quick: {quick['eval_iters']})")
    p.add_argument("--heldout-docs", type=int, help="evaluate on a seeded sample of this many "
                   f"held-out documents, 0 = all (default {full['heldout_docs']}; "
                   f"quick: {quick['heldout_docs']})")
    p.add_argument("--shared", help="team shared/ directory (default $DISTLDA_SHARED or "
                                    "../shared next to the repository)")


def fill_defaults(args, full: dict, quick: dict):
    """Options left unset (None) take their ``quick`` value with ``--quick``, else ``full``."""
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def split_list(text, kind):
    """``"a, b"`` -> ``[kind("a"), kind("b")]`` (for comma-list options)."""
    return [kind(x.strip()) for x in str(text).split(",") if x.strip()]
