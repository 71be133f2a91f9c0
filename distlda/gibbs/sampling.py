"""The one sampler entry point: every executor sweeps through :func:`sweep`.

The serial model (on the global counts), each thread of the in-process executor (on the
shared counts, its own vocabulary block) and each cluster worker (on its model slice) call
:func:`sweep`; they differ only in which counts they pass and who merges the topic totals.
In the manner of scikit-learn's ``_update_doc_distribution``, :func:`sweep` takes the data
slice (:class:`Tokens`), the counts it updates in place, the prior (:class:`Prior`) and one
options record per sampler (:class:`SparseOptions`, :class:`DenseOptions`, :class:`MhOptions`);
working memory that outlives a sweep (the MH sampler's :class:`~distlda.gibbs.mh.Workspace`,
the sparse sampler's word lists) belongs to the caller and travels in the options.
Here also live the two rules they must all apply alike: which sampler "auto" means
(:func:`resolve`) and how a chunk's seed changes from one step of a sweep to the next
(:func:`step_seeds`); the 1-worker cluster equals the 1-thread chain bit for bit because
both use them.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np

from distlda import config
from distlda import params as _params
from distlda.gibbs import kernels as K_
from distlda.gibbs import mh as _mh

logger = logging.getLogger("distlda.sampler")

#: The samplers :func:`sweep` runs.
SAMPLERS = _params.SAMPLERS
#: The exact ones: they sweep vocabulary blocks (threads, cluster workers) and mix alike.
EXACT = ("sparse", "dense")
#: Added to a chunk's seed once per step of a sweep (the golden ratio, so steps decorrelate).
STEP_SEED = 0x9E3779B9


#: ``DISTLDA_CHECK=1``: executors count fallback draws (and workers verify their slices).
check_mode = config.check_mode


def report_fallbacks(fallbacks, where: str) -> None:
    """Warn once a sweep when check mode counted fallback draws (never within the prior range)."""
    if fallbacks is not None and fallbacks[0]:
        logger.warning("%s: %d draws had a non-finite topic mass and fell back to a uniform "
                       "topic", where, int(fallbacks[0]))
        fallbacks[0] = 0


#: ``sampler="auto"`` takes "mh" from this many topics on, "dense" below (see
#: :func:`choose_sampler`).
AUTO_MH_MIN_TOPICS = 1000


def choose_sampler(num_topics: int, mean_doc_length: float) -> str:
    """The sampler that reaches the better model in the same time: what ``sampler="auto"`` is.

    The exact dense sampler (:func:`~distlda.gibbs.kernels.sweep_dense`) costs O(K) a token in
    vector instructions; it mixes as well per sweep as any exact Gibbs sampler (SparseLDA,
    tomotopy). The MH sampler costs O(1) a token at any K, but needs 2-3x the sweeps. Measured
    by time to quality, not throughput: held-out log-likelihood per token (document
    completion) after 6 s and after 30 s of sampling, one thread, same start, ``python
    benchmarks/bench_mh.py --corpus C --topics 300,500,1000 --samplers dense,mh2 --budget 6``
    (and ``--topics 500,700 --budget 30``), dense / mh, the better in bold (one AMD EPYC
    Zen 1 core, float32 dense draw):

    ========  =========================  ======================  ========================
    K, s      synth-small (150 tok/doc)  debdesc (37 tok/doc)    kerneldoc (720 tok/doc)
    ========  =========================  ======================  ========================
    300, 6    **-9.175** / -9.455        **-7.098** / -7.394     **-6.908** / -7.000
    500, 6    -9.499 / **-9.458**        **-7.199** / -7.426     **-6.837** / -6.943
    500, 30   -9.081 / **-9.051**        **-6.899** / -6.970     **-6.698** / -6.750
    700, 30   -9.164 / **-9.111**        **-6.958** / -7.018     **-6.657** / -6.701
    1000, 6   -9.535 / **-9.494**        **-7.488** / -7.507     **-6.819** / -6.850
    ========  =========================  ======================  ========================

    The crossover is not one K for every corpus: on the two real corpora dense wins at every K
    measured, up to 1000, by 0.02-0.3 nats; on synth-small MH wins from K=500 by 0.03-0.05
    (there dense runs at 1.9M tokens/s at K=500 against 4.7M on debdesc: its 20,000 words
    have no Zipf head, so the count rows it reads most likely miss the cache). Document length
    does not decide it (debdesc and kerneldoc agree). The rule follows the real corpora up to
    K=1000 and keeps "mh" from there, where it was measured against tomotopy
    (benchmarks/bench_quality.py at K=1000, 6.9-8.8x its throughput) and where dense's lead at
    6 s is the smallest and shrinks with the budget. Below K=200 dense
    wins by more still (1.5-2.6x tomotopy's throughput at K=50-200, where SparseLDA is
    0.7-1.1x). SparseLDA ("sparse") is never the automatic choice: dense beats it at every K
    up to 500 (2x at K=100 to 1.5x at K=500, same chain); it stays for users who want exact
    sampling at large K, and it (with :func:`~distlda.gibbs.kernels.sweep_eta`) serves the
    non-uniform priors. ``mean_doc_length`` is an argument so that a future rule whose choice
    depends on it can say so here.

    Parameters
    ----------
    num_topics : int
    mean_doc_length : float
        Tokens per document (not used by the current rule, see above).

    Returns
    -------
    str
        "dense" or "mh".
    """
    return "mh" if num_topics >= AUTO_MH_MIN_TOPICS else "dense"


def resolve(sampler: str, num_topics: int, mean_doc_length: float) -> str:
    """``sampler`` with "auto" replaced by the measured choice for K and document length
    (:func:`choose_sampler`).

    Raises
    ------
    ValueError
        For a name other than "auto", "sparse", "dense" or "mh".
    """
    if sampler == "auto":
        return choose_sampler(num_topics, mean_doc_length)
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r} (use 'auto', 'sparse', 'dense' or 'mh')")
    return sampler


def step_seeds(seeds: np.ndarray, step: int) -> np.ndarray:
    """The chunks' seeds for step ``step`` of a sweep: ``(seed + step * STEP_SEED) mod 2**32``.

    Returns uint32 array of the shape of ``seeds``.
    """
    s = np.asarray(seeds).astype(np.uint64)
    return ((s + np.uint64(step) * np.uint64(STEP_SEED)) % np.uint64(2 ** 32)).astype(np.uint32)


@dataclass(frozen=True, eq=False)  # the records hold arrays: compared by identity
class Tokens:
    """The data slice a sweep resamples: per chunk, its tokens in document order.

    Attributes
    ----------
    words : sequence of ndarray, int32
        Word ids, rows of the ``nwk`` swept against.
    topics : sequence of ndarray, int32
        Topics, updated in place.
    doc_ptr : sequence of ndarray, int64
        Document offsets.
    ranges : sequence of (lo, hi), optional
        Exact samplers only: per chunk, int64 token ranges ``[lo[d], hi[d])`` to resample (a
        vocabulary block, :mod:`distlda.gibbs.blocks`); None: every token.
    """

    words: Sequence[np.ndarray]
    topics: Sequence[np.ndarray]
    doc_ptr: Sequence[np.ndarray]
    ranges: Sequence[tuple[np.ndarray, np.ndarray]] | None = None

    @classmethod
    def of(cls, chunks: Iterable, ranges=None) -> Tokens:
        """The tokens of ``chunks`` (anything with ``words``, ``topics``, ``doc_ptr``)."""
        chunks = list(chunks)
        return cls([c.words for c in chunks], [c.topics for c in chunks],
                   [c.doc_ptr for c in chunks], ranges)


@dataclass(frozen=True, eq=False)
class Prior:
    """The Dirichlet priors a sweep samples under.

    Attributes
    ----------
    alpha : ndarray of shape (K,), float64
    beta : float
        The topic-word prior (its mean when ``eta_kw`` is given, for messages only).
    vbeta : float
        ``beta`` times the *full* vocabulary (also on a worker's model slice).
    eta_kw, eta_sum : ndarray, optional
        A non-uniform topic-word prior (:class:`~distlda.gibbs.state.GibbsState`'s), swept by
        :func:`~distlda.gibbs.kernels.sweep_eta` with either exact sampler.
    """

    alpha: np.ndarray
    beta: float
    vbeta: float
    eta_kw: np.ndarray | None = None
    eta_sum: np.ndarray | None = None

    @classmethod
    def of(cls, state) -> Prior:
        """The prior of a :class:`~distlda.gibbs.state.GibbsState` as it is now."""
        return cls(state.alpha, state.beta, state.vbeta, state.eta_kw, state.eta_sum)


@dataclass(frozen=True, eq=False)
class SparseOptions:
    """SparseLDA (:func:`~distlda.gibbs.kernels.sweep_sparse`).

    Attributes
    ----------
    word_lists : tuple, optional
        The per-word topic lists over ``nwk`` (:func:`~distlda.gibbs.kernels.build_word_lists`;
        kept exact by the kernel, so a caller keeps them across sweeps); built when None.
    fallbacks : ndarray of shape (1,), int64, optional
        Check mode: counts the draws whose topic mass was not finite (:func:`report_fallbacks`).
    """

    word_lists: tuple | None = None
    fallbacks: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class DenseOptions:
    """The dense O(K) sampler (:func:`~distlda.gibbs.kernels.sweep_dense`).

    Attributes
    ----------
    fallbacks : ndarray of shape (1,), int64, optional
        As :attr:`SparseOptions.fallbacks`.
    """

    fallbacks: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class MhOptions:
    """Metropolis-Hastings (:func:`distlda.gibbs.mh.sweep_chunks_mh`: whole documents, the
    chunks swept jointly).

    Attributes
    ----------
    mh_steps : int, optional
        MH steps per token and phase (default :data:`distlda.gibbs.mh.DEFAULT_MH_STEPS`).
    workspace : distlda.gibbs.mh.Workspace, optional
        The sampler's working memory, owned by the caller and kept across the sweeps of the
        same chunks (None: a fresh one, which draws fresh proposals; see
        :class:`~distlda.gibbs.mh.Workspace`).
    pool : concurrent.futures.Executor, optional
    threads : int
        With ``threads > 1``, each phase is split over that many threads of ``pool``.
    """

    mh_steps: int | None = None
    workspace: _mh.Workspace | None = None
    pool: Executor | None = None
    threads: int = 1


#: One options record per sampler: its type says which sampler :func:`sweep` runs.
Options = Union[SparseOptions, DenseOptions, MhOptions]


def sweep(tokens: Tokens, nwk: np.ndarray, nk: np.ndarray, prior: Prior, options: Options,
          seeds) -> int | None:
    """Resample ``tokens`` chunk by chunk against ``nwk``/``nk`` (updated in place).

    Parameters
    ----------
    tokens : Tokens
        The chunks (their topics are updated in place) and, for the exact samplers, the token
        ranges to resample.
    nwk : ndarray of shape (rows, K), int32
        Word-topic counts: all words, or a worker's model slice (``tokens.words`` renumbered
        to its rows; ``prior.vbeta`` is still beta times the full vocabulary).
    nk : ndarray of shape (K,), int32
    prior : Prior
    options : SparseOptions, DenseOptions or MhOptions
        The sampler and its knobs ("auto" is resolved before: :func:`resolve`). A non-uniform
        prior is swept exactly by :func:`~distlda.gibbs.kernels.sweep_eta` with either exact
        sampler's options.
    seeds : sequence of int
        One per chunk.

    Returns
    -------
    int or None
        Tokens whose topic changed (exact samplers), None for MH (not counted).
    """
    if isinstance(options, MhOptions):
        if tokens.ranges is not None:
            raise ValueError("the mh sampler sweeps whole documents (no vocabulary blocks)")
        _mh.sweep_chunks_mh(tokens, nwk, nk, prior, options, seeds)
        return None
    if not isinstance(options, (SparseOptions, DenseOptions)):
        raise TypeError(f"unknown sampler options {options!r}")
    ranges = (tokens.ranges if tokens.ranges is not None
              else [(p[:-1], p[1:]) for p in tokens.doc_ptr])
    fallbacks = options.fallbacks
    if prior.eta_kw is not None:
        counts: tuple = (nwk, nk, prior.alpha, prior.eta_kw, prior.eta_sum)
        return _per_chunk(K_.sweep_eta, tokens, ranges, seeds, counts, fallbacks)
    if isinstance(options, DenseOptions):
        counts = (nwk, nk, prior.alpha, prior.beta, prior.vbeta)
        return _per_chunk(K_.sweep_dense, tokens, ranges, seeds, counts, fallbacks)
    word_lists = options.word_lists
    if word_lists is None:
        local_counts = np.zeros(nwk.shape[0], np.int64)
        for w in tokens.words:
            local_counts += np.bincount(w, minlength=nwk.shape[0])
        word_lists = K_.build_word_lists(nwk, local_counts)
    counts = (nwk, nk, *word_lists, prior.alpha, prior.beta, prior.vbeta)
    return _per_chunk(K_.sweep_sparse, tokens, ranges, seeds, counts, fallbacks)


def _per_chunk(kernel, tokens: Tokens, ranges, seeds, counts: tuple, fallbacks) -> int:
    """``kernel(words, topics, doc_ptr, lo, hi, *counts, seed, fallbacks)`` chunk by chunk;
    the total of tokens moved."""
    return sum(kernel(words, topics, doc_ptr, lo, hi, *counts, int(seed), fallbacks)
               for words, topics, doc_ptr, (lo, hi), seed in zip(
                   tokens.words, tokens.topics, tokens.doc_ptr, ranges, seeds, strict=True))
