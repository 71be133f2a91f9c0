"""The one sampler entry point: every executor sweeps through :func:`sweep`.

The serial model (on the global counts), each thread of the in-process executor (on the
shared counts, its own vocabulary block) and each cluster worker (on its model slice) call
:func:`sweep`; they differ only in which counts they pass and who merges the topic totals.
Here also live the two rules they must all apply alike: which sampler "auto" means
(:func:`resolve`) and how a chunk's seed changes from one step of a sweep to the next
(:func:`step_seeds`); the 1-worker cluster equals the 1-thread chain bit for bit because
both use them.
"""

from __future__ import annotations

import logging

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


def sweep(words_list, topics_list, docptr_list, nwk, nk, alpha, beta, vbeta, seeds,
          sampler: str = "sparse", mh_steps: int | None = None, *, ranges=None,
          word_lists=None, pool=None, threads: int = 1, fallbacks=None, eta_kw=None,
          eta_sum=None) -> int | None:
    """Resample tokens of several chunks in turn against ``nwk``/``nk`` (updated in place).

    Parameters
    ----------
    words_list, topics_list, docptr_list : lists of ndarray
        Per chunk: int32 word ids (rows of ``nwk``), int32 topics (updated in place), int64
        document offsets.
    nwk : ndarray of shape (rows, K), int32
        Word-topic counts: all words, or a worker's model slice (``words`` renumbered to its
        rows; ``vbeta`` is still beta times the full vocabulary).
    nk : ndarray of shape (K,), int32
    alpha : ndarray of shape (K,), float64
    beta, vbeta : float
    seeds : sequence of int
        One per chunk.
    sampler : {"sparse", "dense", "mh"}
        Exact "sparse" (:func:`~distlda.gibbs.kernels.sweep_sparse`) and "dense" (its namesake);
        "mh" (:func:`distlda.gibbs.mh.sweep_chunks_mh`, whole documents, chunks swept jointly).
    mh_steps : int, optional
        MH steps per token and phase (default :data:`distlda.gibbs.mh.DEFAULT_MH_STEPS`).
    ranges : list of (lo, hi), optional
        Exact samplers only: per chunk, int64 token ranges ``[lo[d], hi[d])`` to resample (a
        vocabulary block, :mod:`distlda.gibbs.blocks`); default every token.
    word_lists : tuple, optional
        Sparse only: the per-word topic lists over ``nwk`` (built here when None).
    pool, threads
        MH only: split each phase over ``threads`` threads of ``pool``.
    fallbacks : ndarray of shape (1,), int64, optional
        Exact samplers only: counts the draws whose topic mass was not finite (check mode).
    eta_kw, eta_sum : ndarray, optional
        Exact only: a non-uniform prior (:class:`~distlda.gibbs.state.GibbsState`'s), swept
        by :func:`~distlda.gibbs.kernels.sweep_eta`. "auto" must be resolved first.

    Returns
    -------
    int or None
        Tokens whose topic changed (exact samplers), None for MH (not counted).
    """
    if sampler == "mh":
        if ranges is not None:
            raise ValueError("the mh sampler sweeps whole documents (no vocabulary blocks)")
        _mh.sweep_chunks_mh(words_list, topics_list, docptr_list, nwk, nk, alpha, beta, vbeta,
                            seeds, _mh.DEFAULT_MH_STEPS if mh_steps is None else mh_steps,
                            pool=pool, threads=threads)
        return None
    if sampler not in EXACT:
        raise ValueError(f"unknown sampler {sampler!r}")
    ranges = ranges or [(p[:-1], p[1:]) for p in docptr_list]
    if eta_kw is not None:
        return _sweep_eta(words_list, topics_list, docptr_list, ranges, nwk, nk, alpha, eta_kw,
                          eta_sum, seeds, fallbacks)
    if sampler == "dense":
        return _sweep_dense(words_list, topics_list, docptr_list, ranges, nwk, nk, alpha, beta,
                            vbeta, seeds, fallbacks)
    return _sweep_sparse(words_list, topics_list, docptr_list, ranges, nwk, nk, alpha, beta,
                         vbeta, seeds, word_lists, fallbacks)


def _sweep_sparse(words_list, topics_list, docptr_list, ranges, nwk, nk, alpha, beta, vbeta,
                  seeds, word_lists, fallbacks) -> int:
    """:func:`sweep` with one eta: each chunk through SparseLDA's kernel."""
    if word_lists is None:
        local_counts = np.zeros(nwk.shape[0], np.int64)
        for w in words_list:
            local_counts += np.bincount(w, minlength=nwk.shape[0])
        word_lists = K_.build_word_lists(nwk, local_counts)
    return _per_chunk(K_.sweep_sparse, words_list, topics_list, docptr_list, ranges, seeds,
                      (nwk, nk, *word_lists, alpha, beta, vbeta), fallbacks)


def _sweep_eta(words_list, topics_list, docptr_list, ranges, nwk, nk, alpha, eta_kw, eta_sum,
               seeds, fallbacks) -> int:
    """:func:`sweep` with a non-uniform prior: each chunk through the exact O(K) kernel."""
    return _per_chunk(K_.sweep_eta, words_list, topics_list, docptr_list, ranges, seeds,
                      (nwk, nk, alpha, eta_kw, eta_sum), fallbacks)


def _sweep_dense(words_list, topics_list, docptr_list, ranges, nwk, nk, alpha, beta, vbeta,
                 seeds, fallbacks) -> int:
    """:func:`sweep` with the dense sampler: each chunk through its O(K) vectorized kernel."""
    return _per_chunk(K_.sweep_dense, words_list, topics_list, docptr_list, ranges, seeds,
                      (nwk, nk, alpha, beta, vbeta), fallbacks)


def _per_chunk(kernel, words_list, topics_list, docptr_list, ranges, seeds, counts,
               fallbacks) -> int:
    """``kernel(words, topics, doc_ptr, lo, hi, *counts, seed, fallbacks)`` chunk by chunk;
    the total of tokens moved."""
    return sum(kernel(words, topics, doc_ptr, lo, hi, *counts, int(seed), fallbacks)
               for words, topics, doc_ptr, (lo, hi), seed in zip(
                   words_list, topics_list, docptr_list, ranges, seeds))
