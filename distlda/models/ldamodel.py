"""LdaModel: collapsed Gibbs LDA with gensim's API, trained in-process or on a Pyro5 cluster."""

from __future__ import annotations

import logging
import math
import numbers
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import smart_open

from distlda import __version__
from distlda.gibbs import kernels as K_
from distlda.gibbs.chunks import MAX_DOCS, MAX_TOKENS, Chunk, iter_chunks
from distlda.gibbs.local import LocalExecutor, available_cores
from distlda.gibbs.state import GibbsState, check_sizes, max_terms_for
from distlda.models import persistence as _file

logger = logging.getLogger(__name__)

#: Accepted range of every prior value (each alpha_k and eta). Inside it no product or sum the
#: samplers form can overflow or underflow float64 (the largest, alpha_k * eta and
#: (n_dk + alpha_k)(n_k + V eta), stay below 1e210; the smallest, alpha_k eta / (n_k + V eta)
#: with n_k < 2**31, above 1e-210), whatever the corpus within the token and vocabulary
#: limits. Outside it the constructor raises ValueError naming the parameter.
PRIOR_MIN = 1e-100
PRIOR_MAX = 1e100


class LdaModel:
    """Latent Dirichlet Allocation trained by sparse collapsed Gibbs sampling.

    Training starts in the constructor when a corpus is given, like gensim's ``LdaModel``.

    Parameters
    ----------
    corpus : iterable of list of (int, int), or scipy.sparse matrix, optional
        Bag-of-words documents (any re-iterable gensim corpus), or a documents x words
        sparse count matrix. It is streamed once; the tokens are kept in memory as int32.
    num_topics : int
        Number of topics K >= 1.
    id2word : mapping of int to str, or sequence of str, optional
        Vocabulary (gensim or distlda ``Dictionary``, dict, list). It fixes the number of
        terms V; without it V is one more than the largest word id seen (or the matrix width).
    distributed : bool or None
        None: use the cluster if a dispatcher is registered with the Pyro5 name server, else
        train in-process. True: the cluster or a clear error. False: never touch the network.
    chunksize : int
        Documents per chunk, the unit of work handed to threads and cluster workers.
    alpha : {"symmetric", "asymmetric", "auto"}, float or array-like of shape (num_topics,)
        Document-topic Dirichlet prior; "symmetric" is 1/K per topic, "asymmetric" is gensim's
        1/(k + sqrt(K)) normalised, "auto" starts at 1/K and is learned from the data every
        ``optimize_interval`` sweeps (Minka's fixed point, as MALLET's ``--optimize-interval``).
        Every value must lie in [``PRIOR_MIN``, ``PRIOR_MAX``] = [1e-100, 1e100].
    eta : float or "symmetric"
        Topic-word Dirichlet prior (a scalar); "symmetric" is 1/K. None means 0.01. It must
        lie in [1e-100, 1e100].
    iterations : int
        Gibbs sweeps over the whole corpus.
    random_state : int, numpy Generator or RandomState, optional
        Makes training and inference reproducible (for a fixed number of ``workers``).
    ns_conf : dict, optional
        Pyro5 name server location for distributed mode, e.g. ``dict(host=..., port=...)``.
    eval_every : int
        Log the model's log-likelihood per token every this many sweeps (0: never).
    workers : int, optional
        Threads for in-process training (default: all cores this process may use).
    minimum_probability : float
        Topics below this probability are left out of ``get_document_topics`` results.
    inference_iterations : int
        Fold-in sweeps used to infer topics of new documents.
    sampler : {"auto", "sparse", "mh"}
        "sparse": exact SparseLDA Gibbs, O(K_d + K_w) per token, best mixing per sweep.
        "mh": WarpLDA-style Metropolis-Hastings, O(1) per token, much faster sweeps at large K
        but more sweeps to the same quality. "auto" (default) picks "mh" for K >= 600, or
        K >= 200 with short documents (measured crossovers, see docs/performance.rst).
    mh_steps : int, optional
        Metropolis-Hastings steps per token and phase with ``sampler="mh"`` (default 2).
    optimize_interval, optimize_burnin : int
        With ``alpha="auto"``: re-estimate alpha every ``optimize_interval`` sweeps, from
        sweep ``optimize_burnin`` on.

    Raises
    ------
    ValueError
        A parameter out of its range (named in the message); a corpus beyond a size limit:
        more than ``MAX_TOKENS`` tokens, a word id or ``id2word`` beyond ``MAX_TERMS``, more than
        ``MAX_TOPICS`` topics, or a V x K count table larger than this machine's memory. Sizes
        are checked before anything of that size is allocated.
    TypeError
        A corpus that is not iterable.

    Attributes
    ----------
    alpha : ndarray of shape (num_topics,)
    eta : float
    num_terms : int
    sstats : ndarray of shape (num_topics, num_terms), int32
        Word-topic counts of the Gibbs state; they sum to the number of tokens trained on.

    Examples
    --------
    >>> from distlda.models import LdaModel
    >>> corpus = [[(0, 2), (1, 1)], [(1, 3), (2, 1)]]
    >>> lda = LdaModel(corpus, num_topics=2, iterations=10, random_state=1, distributed=False)
    >>> int(lda.sstats.sum())
    7
    """

    def __init__(self, corpus=None, num_topics: int = 100, id2word=None,
                 distributed: bool | None = None, chunksize: int = 2000,
                 alpha="symmetric", eta=0.01, iterations: int = 200,
                 random_state=None, ns_conf: dict | None = None, eval_every: int = 10,
                 workers: int | None = None, minimum_probability: float = 0.01,
                 inference_iterations: int = 50, sampler: str = "auto",
                 mh_steps: int | None = None, optimize_interval: int = 10,
                 optimize_burnin: int = 20):
        self.num_topics = _check_int("num_topics", num_topics, 1)
        check_sizes(self.num_topics, 0)  # K alone, before anything of size K is allocated
        self.chunksize = _check_int("chunksize", chunksize, 1)
        self.iterations = _check_int("iterations", iterations, 0)
        self.eval_every = _check_int("eval_every", eval_every, 0)
        self.inference_iterations = _check_int("inference_iterations", inference_iterations, 1)
        self.workers = available_cores() if workers is None else _check_int("workers", workers, 1)
        if sampler not in ("auto", "sparse", "mh"):
            raise ValueError(f"Invalid 'sampler' parameter: {sampler!r} (use 'auto', 'sparse' or 'mh')")
        self.sampler = sampler
        self.mh_steps = None if mh_steps is None else _check_int("mh_steps", mh_steps, 1)
        if distributed not in (None, True, False):
            raise ValueError(f"Invalid 'distributed' parameter: {distributed!r} "
                             f"(use None, True or False)")
        self.distributed = distributed
        self.ns_conf = dict(ns_conf or {})
        self.minimum_probability = _check_prob("minimum_probability", minimum_probability)
        self.optimize_alpha = isinstance(alpha, str) and alpha == "auto"
        self.optimize_interval = _check_int("optimize_interval", optimize_interval, 1)
        self.optimize_burnin = _check_int("optimize_burnin", optimize_burnin, 0)
        self.alpha = _resolve_alpha("symmetric" if self.optimize_alpha else alpha, self.num_topics)
        self.eta = _resolve_eta(eta, self.num_topics)
        self.random_state = random_state
        self._rng = _resolve_rng(random_state)
        self._infer_seed = int(self._rng.integers(2 ** 32))
        self.id2word = _resolve_id2word(id2word)
        self.num_terms = (max(self.id2word) + 1) if self.id2word else 0
        self._fixed_vocab = id2word is not None
        self._state = GibbsState(self.num_topics, self.num_terms, self.alpha, self.eta)
        self._infer_cache = None
        self.executor_info = None
        self._sweeps_done = 0
        if corpus is not None:
            self.update(corpus)

    # ------------------------------------------------------------------ training
    def update(self, corpus, iterations: int | None = None) -> None:
        """Add documents to the model and run ``iterations`` sweeps over all its documents.

        Parameters
        ----------
        corpus : iterable of list of (int, int), or scipy.sparse matrix
            New documents; word ids must be within the model's vocabulary when ``id2word``
            was given.
        iterations : int, optional
            Sweeps to run (default: the model's ``iterations``).
        """
        iterations = self.iterations if iterations is None else _check_int("iterations", iterations, 0)
        vocab = self.num_terms if self._fixed_vocab else None
        if not self._fixed_vocab:
            # Declared widths (a matrix's, a reader's header) before any token is expanded.
            shape = getattr(corpus, "shape", None)
            declared = [int(shape[1])] if shape is not None and len(shape) == 2 else []
            declared.append(int(getattr(corpus, "num_terms", 0) or 0))
            check_sizes(self.num_topics, max(declared))
        shape = getattr(corpus, "shape", None)
        declared_docs = int(shape[0]) if shape is not None and len(shape) == 2 else \
            int(getattr(corpus, "num_docs", 0) or 0)
        docs_left = MAX_DOCS - self._state.num_docs
        if declared_docs > docs_left:
            raise ValueError(f"the corpus declares {declared_docs} documents, more than the "
                             f"{docs_left} this model can still take (at most {MAX_DOCS}): "
                             f"train on fewer documents or several models")
        self._infer_cache = None
        new_chunks = list(iter_chunks(corpus, vocab, self.chunksize,
                                      max_tokens=MAX_TOKENS - self._state.num_tokens,
                                      max_terms=max_terms_for(self.num_topics),
                                      max_docs=docs_left))
        n_docs = sum(c.num_docs for c in new_chunks)
        n_tokens = sum(c.num_tokens for c in new_chunks)
        if n_docs == 0:
            raise ValueError("corpus is empty: it has no documents")
        if n_tokens == 0:
            raise ValueError(f"corpus has {n_docs} documents but no tokens (all counts are 0)")
        if not self._fixed_vocab:
            # V: the widest of the largest id used, a matrix's width, a reader's num_terms.
            width = max((max(c.width, int(c.words.max()) + 1 if c.num_tokens else 0)
                         for c in new_chunks), default=0)
            shape = getattr(corpus, "shape", None)
            if shape is not None and len(shape) == 2:
                width = max(width, int(shape[1]))
            width = max(width, int(getattr(corpus, "num_terms", 0) or 0))
            if width > self.num_terms:
                self._state.grow_vocabulary(width)
                self.num_terms = width
        for c in new_chunks:
            self._state.add_chunk(c, int(self._rng.integers(2 ** 32)))
        logger.info("training LDA: %d topics, %d documents, %d tokens (%d new), %d terms, "
                    "%d chunks, %d sweeps", self.num_topics, self._state.num_docs,
                    self._state.num_tokens, n_tokens, self.num_terms, len(self._state.chunks),
                    iterations)
        self._train(iterations)

    def _executor(self):
        """The cluster if there is one (and we may use it), else this process's threads."""
        from distlda.cluster import client as _client
        ex = _client.choose_executor(self.distributed, self.ns_conf, self.workers)
        if ex is None:
            ex = LocalExecutor(self.workers)
        # "auto" is resolved once here, so every thread and cluster worker runs the same sampler.
        ex.sampler = self._state.resolve_sampler(self.sampler)
        ex.mh_steps = self.mh_steps
        return ex

    def _train(self, iterations: int) -> None:
        self._infer_cache = None  # the counts inference reads are about to change
        if iterations == 0:
            return
        executor = self._executor()
        self.executor_info = executor.describe()
        n_tokens = self._state.num_tokens
        bar = _progress(iterations)
        last = dict(t=time.perf_counter(), it=-1, t_sweep=time.perf_counter())
        report_every = self.eval_every or 10

        def on_sweep(it: int, loglik=None, histograms=None) -> None:
            """Log each sweep at DEBUG; every ``eval_every`` sweeps, rate and LL at INFO.

            ``loglik`` (per token, or a function returning it) and ``histograms`` (a function
            returning the document-topic count histograms) are passed by executors whose
            Gibbs state lives elsewhere.
            """
            now = time.perf_counter()
            rate = n_tokens / max(now - last["t_sweep"], 1e-9)
            last["t_sweep"] = now
            logger.debug("sweep %d/%d: %.0f tokens/s", it + 1, iterations, rate)
            self._sweeps_done += 1
            if (self.optimize_alpha and self._sweeps_done >= self.optimize_burnin
                    and self._sweeps_done % self.optimize_interval == 0):
                self._learn_alpha(histograms)
            if (it + 1) % report_every == 0 or it + 1 == iterations:
                avg = n_tokens * (it - last["it"]) / max(now - last["t"], 1e-9)
                if self.eval_every:
                    if loglik is None:
                        loglik = self.log_likelihood_per_token()
                    elif callable(loglik):  # computed where the data is, only when needed
                        loglik = loglik()
                    logger.info("sweep %d/%d: %.0f tokens/s, log-likelihood %.4f per token",
                                it + 1, iterations, avg, loglik)
                else:
                    logger.info("sweep %d/%d: %.0f tokens/s", it + 1, iterations, avg)
                # the evaluation's own time is not charged to the next interval's rate
                last.update(t=time.perf_counter(), it=it, t_sweep=time.perf_counter())
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{rate / 1e6:.2f}M tok/s")

        from distlda.cluster.client import DispatcherLost
        try:
            try:
                executor.run(self._state, iterations, self._rng, on_sweep)
            except DispatcherLost as e:
                if self.distributed is not None:  # True: the caller asked for the cluster
                    raise
                # Auto mode: the model holds the last checkpoint; finish in this process.
                kept = e.sweeps_kept
                left = iterations - kept
                logger.warning("%s; training the other %d sweeps in-process", e, left)
                local = LocalExecutor(self.workers)
                local.sampler, local.mh_steps = executor.sampler, executor.mh_steps
                self.executor_info = f"{self.executor_info}, then {local.describe()}"
                local.run(self._state, left, self._rng,
                          lambda it, **kw: on_sweep(kept + it, **kw))
        finally:
            self._infer_cache = None
            if bar is not None:
                bar.close()

    def _learn_alpha(self, histograms=None) -> None:
        from distlda.gibbs.hyper import count_histograms, optimize_alpha
        hist = (histograms() if histograms is not None
                else count_histograms(self._state.chunks, self.num_topics))
        self.alpha = np.clip(optimize_alpha(self.alpha, hist), PRIOR_MIN, PRIOR_MAX)
        self._infer_cache = None
        self._state.alpha = self.alpha  # executors read the prior from the state each sweep
        logger.info("alpha re-estimated: sum %.4f, min %.4g, max %.4g",
                    self.alpha.sum(), self.alpha.min(), self.alpha.max())

    def log_likelihood_per_token(self) -> float:
        """Joint log p(words, topic assignments) of the Gibbs state, per token."""
        return self._state.log_likelihood() / max(self._state.num_tokens, 1)

    # ------------------------------------------------------------------ topics
    @property
    def sstats(self) -> np.ndarray:
        """Word-topic counts, shape (num_topics, num_terms), int32 (a copy)."""
        return np.ascontiguousarray(self._state.nwk.T)

    @property
    def num_docs(self) -> int:
        """Documents trained on."""
        return self._state.num_docs

    @property
    def num_tokens(self) -> int:
        """Tokens trained on (== ``sstats.sum()``)."""
        return self._state.num_tokens

    def get_topics(self) -> np.ndarray:
        """Topic-word distributions, shape (num_topics, num_terms), rows summing to 1."""
        nwk = self._state.nwk.T.astype(np.float64)
        return (nwk + self.eta) / (self._state.nk[:, None] + self.eta * self.num_terms)

    def _check_topic(self, topicid) -> int:
        if not isinstance(topicid, numbers.Integral) or not 0 <= topicid < self.num_topics:
            raise ValueError(f"topic id must be an integer in [0, {self.num_topics}), got {topicid!r}")
        return int(topicid)

    def get_topic_terms(self, topicid: int, topn: int = 10) -> list[tuple[int, float]]:
        """The ``topn`` most probable word ids of a topic, as (word_id, probability)."""
        topicid = self._check_topic(topicid)
        row = (self._state.nwk[:, topicid] + self.eta) / (self._state.nk[topicid] + self.eta * self.num_terms)
        topn = min(_check_int("topn", topn, 0), self.num_terms)
        best = np.argsort(-row, kind="stable")[:topn]
        return [(int(i), float(row[i])) for i in best]

    def _word(self, i: int) -> str:
        return self.id2word.get(i, str(i)) if self.id2word else str(i)

    def show_topic(self, topicid: int, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` most probable words of a topic, as (word, probability)."""
        return [(self._word(i), p) for i, p in self.get_topic_terms(topicid, topn)]

    def show_topics(self, num_topics: int = 10, num_words: int = 10, log: bool = False,
                    formatted: bool = True):
        """Several topics, the ones holding the most tokens first.

        Parameters
        ----------
        num_topics : int
            How many topics; negative or >= K means all, in topic id order.
        num_words : int
        log : bool
            Also log each topic at INFO level.
        formatted : bool
            Each topic as a ``'0.051*"word" + ...'`` string (gensim's format) or as a list of
            (word, probability).

        Returns
        -------
        list of (int, str) or list of (int, list of (str, float))
        """
        if num_topics < 0 or num_topics >= self.num_topics:
            chosen = range(self.num_topics)
        else:
            chosen = np.argsort(-self._state.nk, kind="stable")[:num_topics]
        shown = []
        for k in chosen:
            words = self.show_topic(int(k), num_words)
            topic = " + ".join(f'{p:.3f}*"{w}"' for w, p in words) if formatted else words
            shown.append((int(k), topic))
            if log:
                logger.info("topic #%d (%d tokens): %s", k, self._state.nk[k],
                            topic if formatted else words)
        return shown

    def print_topics(self, num_topics: int = 20, num_words: int = 10):
        """``show_topics(num_topics, num_words, log=True)``, gensim's alias."""
        return self.show_topics(num_topics=num_topics, num_words=num_words, log=True)

    # ------------------------------------------------------------------ inference
    def inference(self, corpus, iterations: int | None = None) -> np.ndarray:
        """Topic distributions of documents by Gibbs fold-in with the topics held fixed.

        Each document is folded in on its own, with a random stream seeded from the model's
        inference seed and the document's *content* (the multiset of its word ids; the order
        of its (word_id, count) pairs does not matter): the same document gets the same
        answer from the same model in any batch, at any position, with any number of threads,
        through ``lda[bow]``, :meth:`get_document_topics` or this method.

        What fold-in reads from the model (the counts and ``1 / (n_k + V eta)``) is kept
        between calls, built on the first call after training and dropped when the model
        trains, is updated or learns alpha, so a call costs time and memory in proportion to
        its documents (times K), not to the vocabulary.

        Parameters
        ----------
        corpus : iterable of bag-of-words documents or scipy.sparse matrix
        iterations : int, optional
            Fold-in sweeps (default ``inference_iterations``); the first half is burn-in.

        Returns
        -------
        ndarray of shape (n_docs, num_topics), float64
            Rows sum to 1.

        Raises
        ------
        ValueError
            A malformed document or a word id outside the model's vocabulary.
        """
        iterations = self.inference_iterations if iterations is None else _check_int("iterations", iterations, 1)
        nwk, inv, alpha = self._inference_tables()
        chunks = list(iter_chunks(corpus, self.num_terms, self.chunksize))
        fallbacks = np.zeros(len(chunks), np.int64)  # one counter per chunk (thread-safe)

        def fold(i):
            c = chunks[i]
            return K_.foldin(c.words, c.doc_ptr, nwk, inv, self.eta, alpha, iterations,
                             iterations // 2, self._infer_seed, fallbacks[i:i + 1])

        threads = min(self.workers, len(chunks))
        if threads > 1:  # fold-in is nogil; per-document seeds make the split irrelevant
            with ThreadPoolExecutor(threads) as pool:
                rows = list(pool.map(fold, range(len(chunks))))
        else:
            rows = [fold(i) for i in range(len(chunks))]
        if fallbacks.any():  # cannot happen within the prior range: say so if it does
            logger.warning("inference: %d fold-in draws had a non-finite topic mass and fell "
                           "back to a uniform topic", int(fallbacks.sum()))
        return np.vstack(rows) if rows else np.zeros((0, self.num_topics))

    def _inference_tables(self):
        """(nwk, 1 / (n_k + V eta), alpha) for :func:`~distlda.gibbs.kernels.foldin`, cached.

        The cache is dropped whenever training changes the counts or alpha; it is also
        rebuilt if ``alpha`` or the state was replaced by assignment.
        """
        cache = self._infer_cache
        st = self._state
        if cache is None or cache[0] is not st.nwk or cache[3] is not self.alpha:
            alpha = np.ascontiguousarray(self.alpha, dtype=np.float64)
            inv = 1.0 / (st.nk + self.eta * self.num_terms)
            cache = self._infer_cache = (st.nwk, inv, alpha, self.alpha)
        return cache[:3]

    def get_document_topics(self, bow, minimum_probability: float | None = None):
        """Topic distribution of one document as [(topic_id, probability), ...].

        Topics below ``minimum_probability`` (default: the model's) are left out.
        """
        if minimum_probability is None:
            minimum_probability = self.minimum_probability
        minimum_probability = max(float(minimum_probability), 1e-8)
        theta = self.inference([bow])[0]
        return [(k, float(p)) for k, p in enumerate(theta) if p >= minimum_probability]

    def __getitem__(self, bow):
        """Topics of one document, or a list of them for a corpus (gensim's ``lda[...]``)."""
        if _is_single_doc(bow):
            return self.get_document_topics(bow)
        return [self.get_document_topics(doc) for doc in bow]

    def log_perplexity(self, corpus, iterations: int | None = None) -> float:
        """Held-out log-likelihood per token of ``corpus`` by document completion.

        Not gensim's variational bound: each document's tokens are split in halves, its topic
        mixture is folded in on one half and the other half is scored
        (:func:`distlda.evaluation.heldout_loglik`). Higher is better; perplexity is
        ``exp(-value)``.
        """
        from distlda.evaluation import heldout_loglik
        iterations = self.inference_iterations if iterations is None else iterations
        ll = heldout_loglik(self.get_topics(), self.alpha, corpus, iterations=iterations,
                            random_state=self._infer_seed, chunksize=self.chunksize)
        logger.info("%.3f per-token held-out log-likelihood (document completion), "
                    "perplexity %.1f", ll, math.exp(-ll))
        return ll

    # ------------------------------------------------------------------ persistence
    def save(self, fname: str) -> None:
        """Save the whole model, Gibbs state included, to a local path or smart_open URI.

        The file is a NumPy ``.npz`` archive (arrays plus one JSON metadata entry) in format
        version :data:`distlda.models.persistence.FORMAT_VERSION`, and is loaded without
        unpickling anything, so a model file cannot run code.
        """
        st = self._state
        meta = dict(format=_file.FORMAT, format_version=_file.FORMAT_VERSION,
                    distlda_version=__version__,
                    num_topics=self.num_topics, num_terms=self.num_terms, eta=self.eta,
                    chunksize=self.chunksize, iterations=self.iterations,
                    eval_every=self.eval_every, workers=self.workers,
                    minimum_probability=self.minimum_probability,
                    inference_iterations=self.inference_iterations,
                    sampler=self.sampler, mh_steps=self.mh_steps,
                    optimize_alpha=self.optimize_alpha, optimize_interval=self.optimize_interval,
                    optimize_burnin=self.optimize_burnin, sweeps_done=self._sweeps_done,
                    distributed=self.distributed, ns_conf=self.ns_conf,
                    fixed_vocab=self._fixed_vocab, infer_seed=self._infer_seed,
                    rng_state=self._rng.bit_generator.state,
                    id2word=[[int(i), str(w)] for i, w in self.id2word.items()] if self.id2word else None,
                    num_docs=st.num_docs, num_tokens=st.num_tokens)
        arrays = dict(
            alpha=np.asarray(self.alpha, np.float64), nwk=st.nwk, nk=st.nk,
            words=_concat([c.words for c in st.chunks], np.int32),
            topics=_concat([c.topics for c in st.chunks], np.int32),
            doc_lens=_concat([np.diff(c.doc_ptr) for c in st.chunks], np.int64),
            chunk_docs=np.array([c.num_docs for c in st.chunks], np.int64))
        data = _file.write_archive(meta, arrays)
        with smart_open.open(fname, "wb") as f:
            f.write(data)
        logger.info("saved LdaModel to %s", fname)

    @classmethod
    def load(cls, fname: str) -> "LdaModel":
        """Load a model written by :meth:`save` (local path or smart_open URI).

        Files of every format version in
        :data:`distlda.models.persistence.SUPPORTED_VERSIONS` load; fields an older version
        lacks take the defaults documented in :mod:`distlda.models.persistence`.

        Raises
        ------
        ValueError
            (:class:`~distlda.models.persistence.ModelFileError`) naming ``fname`` and the
            problem, for any file that is damaged (cut short, a changed byte, a missing
            array or field, inconsistent counts), not a distlda model file, or of an
            unsupported format version.
        OSError
            The file cannot be opened (e.g. it does not exist).
        """
        with smart_open.open(fname, "rb") as f:
            data = f.read()
        meta, arrays = _file.read_archive(data, fname)
        try:
            return cls._from_saved(meta, arrays)
        except ValueError as e:
            raise _file.ModelFileError(f"{fname}: damaged model file: {e}") from None

    @classmethod
    def _from_saved(cls, meta: dict, arrays: dict) -> "LdaModel":
        """The model of a checked :func:`~distlda.models.persistence.read_archive` result;
        ValueError when the parts do not fit together."""
        self = cls.__new__(cls)
        for key in ("num_topics", "num_terms", "chunksize", "iterations", "eval_every",
                    "workers", "minimum_probability", "inference_iterations", "distributed",
                    "ns_conf", "optimize_alpha", "optimize_interval", "optimize_burnin",
                    "sampler", "mh_steps"):
            setattr(self, key, meta[key])
        K, V = self.num_topics, self.num_terms
        check_sizes(K, V)
        self.eta = _resolve_eta(float(meta["eta"]), K)
        self._fixed_vocab = meta["fixed_vocab"]
        self._infer_seed = meta["infer_seed"]
        self._sweeps_done = meta["sweeps_done"]
        self.random_state = None
        self._rng = np.random.default_rng()
        try:
            self._rng.bit_generator.state = meta["rng_state"]
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"metadata field 'rng_state' is not a PCG64 state ({e!r})") from None
        self.id2word = {int(i): w for i, w in meta["id2word"]} if meta["id2word"] is not None else {}
        if self.id2word and max(self.id2word) >= V:
            raise ValueError(f"id2word has word id {max(self.id2word)}, beyond num_terms={V}")
        a = arrays
        if a["alpha"].shape != (K,):
            raise ValueError(f"alpha has shape {a['alpha'].shape}, expected ({K},)")
        self.alpha = _resolve_alpha(a["alpha"], K)
        if a["nwk"].shape != (V, K) or a["nk"].shape != (K,):
            raise ValueError(f"counts of shape {a['nwk'].shape} and {a['nk'].shape}, expected "
                             f"({V}, {K}) and ({K},)")
        words, topics, doc_lens, chunk_docs = a["words"], a["topics"], a["doc_lens"], a["chunk_docs"]
        N = words.shape[0]
        if topics.shape[0] != N or N > MAX_TOKENS:
            raise ValueError(f"{N} words but {topics.shape[0]} topics")
        if N and (words.min() < 0 or words.max() >= V or topics.min() < 0 or topics.max() >= K):
            raise ValueError(f"word ids outside [0, {V}) or topics outside [0, {K})")
        if (doc_lens < 0).any() or int(doc_lens.sum()) != N:
            raise ValueError(f"document lengths do not add up to the {N} tokens")
        if (chunk_docs < 0).any() or int(chunk_docs.sum()) != doc_lens.shape[0]:
            raise ValueError(f"chunk sizes do not add up to the {doc_lens.shape[0]} documents")
        for key, value in (("num_docs", doc_lens.shape[0]), ("num_tokens", N)):
            if meta[key] is not None and meta[key] != value:
                raise ValueError(f"the metadata says {key}={meta[key]}, the arrays hold {value}")
        self.executor_info = None
        self._infer_cache = None
        st = GibbsState(K, V, self.alpha, self.eta)
        st.nwk, st.nk = a["nwk"], a["nk"]
        tok, doc = 0, 0
        for nd in chunk_docs:
            ptr = np.concatenate(([0], np.cumsum(doc_lens[doc:doc + nd]))).astype(np.int64)
            n = int(ptr[-1])
            st.chunks.append(Chunk(words=words[tok:tok + n].copy(), doc_ptr=ptr,
                                   topics=topics[tok:tok + n].copy()))
            tok += n
            doc += nd
        nwk, nk = st.recount()  # the exactness invariant: the counts are the assignments'
        if not (np.array_equal(nwk, st.nwk) and np.array_equal(nk, st.nk)):
            raise ValueError("the word-topic counts differ from the counts of the saved topic "
                             "assignments")
        self._state = st
        return self

    def __repr__(self) -> str:
        return (f"LdaModel<num_terms={self.num_terms}, num_topics={self.num_topics}, "
                f"docs={self.num_docs}, tokens={self.num_tokens}>")

    def __str__(self) -> str:
        return self.__repr__()


# ---------------------------------------------------------------------- helpers
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"Invalid {name!r} parameter: {value!r} (an integer >= {minimum} is required)")
    return int(value)


def _check_prob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"Invalid {name!r} parameter: {value!r} (a number in [0, 1] is required)")
    return float(value)


def _resolve_alpha(alpha, num_topics: int) -> np.ndarray:
    if isinstance(alpha, str):
        if alpha == "symmetric":
            return np.full(num_topics, 1.0 / num_topics)
        if alpha == "asymmetric":
            a = 1.0 / (np.arange(num_topics) + np.sqrt(num_topics))
            return a / a.sum()
        raise ValueError(f"Invalid 'alpha' parameter: {alpha!r} (use 'symmetric', 'asymmetric', 'auto', "
                         f"a positive number or {num_topics} positive numbers)")
    if isinstance(alpha, bool):
        raise ValueError(f"Invalid 'alpha' parameter: {alpha!r}")
    try:
        a = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"Invalid 'alpha' parameter: {alpha!r}") from None
    if a.ndim == 0:
        a = np.full(num_topics, float(a))
    if a.shape != (num_topics,):
        raise ValueError(f"Invalid 'alpha' parameter: shape {a.shape}, expected ({num_topics},)")
    if not np.all((a >= PRIOR_MIN) & (a <= PRIOR_MAX)):  # False for NaN too
        bad = a[~((a >= PRIOR_MIN) & (a <= PRIOR_MAX))][0]
        raise ValueError(f"Invalid 'alpha' parameter: {float(bad)!r} (every value must be a finite number "
                         f"in [{PRIOR_MIN:g}, {PRIOR_MAX:g}], where the sampler's float64 "
                         f"arithmetic cannot overflow)")
    return np.ascontiguousarray(a)


def _resolve_eta(eta, num_topics: int) -> float:
    if eta is None:
        return 0.01
    if isinstance(eta, str):
        if eta == "symmetric":
            return 1.0 / num_topics
        raise ValueError(f"Invalid 'eta' parameter: {eta!r} (use a positive number or 'symmetric')")
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
        raise ValueError(f"Invalid 'eta' parameter: {eta!r} (a positive scalar is required; "
                         f"per-word eta is not supported)")
    if not PRIOR_MIN <= eta <= PRIOR_MAX:  # False for NaN too
        raise ValueError(f"Invalid 'eta' parameter: {eta!r} (must be a finite number in "
                         f"[{PRIOR_MIN:g}, {PRIOR_MAX:g}], where the sampler's float64 "
                         f"arithmetic cannot overflow)")
    return float(eta)


def _resolve_rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state.integers(2 ** 63))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2 ** 31))
    if random_state is None or (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)):
        return np.random.default_rng(random_state)
    raise ValueError(f"Invalid 'random_state' parameter: {random_state!r} "
                     f"(use None, an int or a numpy Generator)")


def _resolve_id2word(id2word) -> dict:
    if id2word is None:
        return {}
    if hasattr(id2word, "items"):
        items = id2word.items()
    elif isinstance(id2word, (list, tuple)):
        items = enumerate(id2word)
    else:
        raise ValueError(f"Invalid 'id2word' parameter: {type(id2word).__name__} "
                         f"(use a Dictionary, a dict of id -> word, or a list of words)")
    out = {}
    for i, w in items:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0:
            raise ValueError(f"Invalid 'id2word' parameter: word id {i!r} is not a non-negative integer")
        out[int(i)] = str(w)
    if not out:
        raise ValueError("Invalid 'id2word' parameter: the vocabulary is empty")
    return out


def _is_single_doc(obj) -> bool:
    """True for one bag-of-words document (a list of (id, count) pairs), as gensim decides."""
    if not isinstance(obj, (list, tuple)):
        return False
    if len(obj) == 0:
        return True
    first = obj[0]
    return (isinstance(first, (tuple, list)) and len(first) == 2
            and all(isinstance(x, numbers.Number) for x in first))


def _concat(arrays, dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)


def _progress(total: int):
    """A tqdm bar on interactive terminals, None otherwise (logs and CI stay clean)."""
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="Gibbs sweeps", unit="sweep", leave=False)
