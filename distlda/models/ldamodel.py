"""LdaModel: collapsed Gibbs LDA with gensim's API, trained in-process or on a Pyro5 cluster."""

from __future__ import annotations

import logging
import numbers
from typing import Callable, Sequence

import numpy as np

from distlda import training
from distlda.gensim_compat import GensimCompatMixin, sweeps_for, warn_vb_only
from distlda.gibbs import kernels as K_
from distlda.gibbs.local import LocalExecutor, available_cores
from distlda.gibbs.state import GibbsState
from distlda.inference import InferenceMixin
from distlda.interop import GensimInteropMixin
from distlda.monitor import SweepStats, check_callbacks, note_first_compile
from distlda.params import (
    PARAM,
    PARAMS,
    PRIOR_MAX,  # noqa: F401 (named by the constructor's docs; imported from here)
    PRIOR_MIN,  # noqa: F401
    Integer,
    ModelSpec,
    _resolve_eta,
    _resolve_id2word,
    _resolve_rng,
    refuse_auto,
)
from distlda.topics import TopicsMixin
from distlda.vocabulary import Vocabulary

logger = logging.getLogger(__name__)
#: The constructor's defaults: the parameter table's.
_D = {p.name: p.default for p in PARAMS}


class _Setting:
    """A setting of :attr:`LdaModel.spec` as a model attribute: assigning one checks it by its
    rule (:data:`distlda.params.PARAMS`) and gives the model a new spec."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name
        self.__doc__ = f"``spec.{name}`` (assignable: checked by its rule)."

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj.spec, self.name)

    def __set__(self, obj, value) -> None:
        obj._spec = obj.spec.replace(**{self.name: value})


class LdaModel(GensimCompatMixin, TopicsMixin, InferenceMixin, GensimInteropMixin):
    """Latent Dirichlet Allocation trained by collapsed Gibbs sampling (exact or MH).

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
    alpha : {"symmetric", "asymmetric", "auto"}, None, float or array-like of shape (num_topics,)
        Document-topic Dirichlet prior; "symmetric" (or None, as in gensim) is 1/K per topic, "asymmetric" is gensim's
        1/(k + sqrt(K)) normalised, "auto" starts at 1/K and is learned from the data every
        ``optimize_interval`` sweeps (Minka's fixed point, as MALLET's ``--optimize-interval``).
        Every value must lie in [``PRIOR_MIN``, ``PRIOR_MAX``] = [1e-100, 1e100].
    eta : None, {"symmetric", "auto"}, float, array-like of shape (num_terms,) or (num_topics, num_terms)
        Topic-word Dirichlet prior, every value in [1e-100, 1e100]. None (default) is 0.01,
        the usual choice for collapsed Gibbs (gensim's default is 1/K; a small eta gives
        sparser topics and faster sweeps); "symmetric" is 1/K; "auto" starts at 1/K and
        learns one symmetric value every ``optimize_interval`` sweeps (Minka's fixed point;
        gensim learns a per-word vector). A vector gives each word its prior, a matrix each
        topic and word (seeded topics: a large value for a topic's seed words); both fix the
        vocabulary to their length and are sampled exactly by an O(K)-per-token kernel,
        in-process only. ``lda.eta`` is gensim's array (see :attr:`eta`).
    iterations : int
        Gibbs sweeps over the whole corpus (with ``passes``: see there).
    random_state : int, numpy Generator or RandomState, optional
        Makes training and inference reproducible (for a fixed number of ``workers``).
    ns_conf : dict, optional
        Pyro5 name server location for distributed mode, e.g. ``dict(host=..., port=...)``.
    eval_every : int or None
        Log the model's log-likelihood per token every this many sweeps (0 or None: never).
    workers : int, optional
        Threads for in-process training (default: all cores this process may use).
    minimum_probability : float
        Topics below this probability are left out of ``get_document_topics`` results.
    inference_iterations : int
        Fold-in sweeps used to infer topics of new documents.
    sampler : {"auto", "dense", "sparse", "mh"}
        "dense": exact collapsed Gibbs, O(K) per token in vector instructions (about 70 ns a
        token at K=100), the fastest to a given quality below K=1000 on real corpora.
        "sparse": exact SparseLDA Gibbs, O(K_d + K_w) per token. Both mix best per sweep.
        "mh": WarpLDA-style Metropolis-Hastings, O(1) per token, much faster sweeps at large K
        but more sweeps to the same quality. "auto" (default) picks "dense" below K=1000 and
        "mh" from there (measured by time to quality:
        :func:`distlda.gibbs.sampling.choose_sampler`).
    mh_steps : int, optional
        Metropolis-Hastings steps per token and phase with ``sampler="mh"`` (default 2).
    optimize_interval, optimize_burnin : int
        With ``alpha="auto"``: re-estimate alpha every ``optimize_interval`` sweeps, from
        sweep ``optimize_burnin`` on.
    callbacks : sequence of callable, optional
        Each is called as ``callback(model, stats)`` after every sweep of every training
        (:class:`SweepStats`), in the process that trains; an exception it raises stops the
        training and propagates. Also settable later as the ``callbacks`` attribute. On a
        cluster the client's copy of the state is brought up to date before they run (the
        topics of every token travel back each sweep: about 2 bytes per token).
    progress : bool or None
        Show a tqdm progress bar (sweeps, tokens/s, latest log-likelihood) on stderr. None
        (default): only when stderr is a terminal. Log lines are routed through the bar, so
        the two never interleave.
    passes : int, optional
        gensim's passes over the corpus. The model runs ``max(passes, iterations)`` sweeps
        (logged once), and evaluates gensim ``Metric`` callbacks ``passes`` times, evenly
        spread (gensim: after each pass).
    minimum_phi_value, per_word_topics : float, bool
        Defaults of :meth:`get_document_topics` (``per_word_topics`` for ``lda[bow]``), as gensim.
    dtype : {np.float64, np.float32, np.float16}
        Type of the probabilities returned by the gensim methods (gensim's default is
        float32; the sampler computes in float64, the default here).
    update_every, decay, offset, gamma_threshold
        gensim's variational-Bayes settings: accepted and ignored, with one warning naming
        those given.
    tls : str or path, optional
        A folder made by ``python -m distlda certs`` (its ``ca.pem`` and ``client.pem``):
        connect to the cluster with mutual TLS. Default ``$DISTLDA_TLS``; without either,
        plain connections. An unusable folder raises ValueError (``TLSError``).

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
    spec : ModelSpec
        The settings, resolved once (frozen; the settings are also attributes, assignable).
    state : GibbsState
        The Gibbs state: assignments, counts, alpha, eta, K and V (it also reads as gensim's
        ``lda.state``: ``sstats``, ``numdocs``, ``get_lambda()``).
    alpha : ndarray of shape (num_topics,)
    eta : ndarray of shape (num_terms,) or (num_topics, num_terms)
    num_terms : int
    sstats : ndarray of shape (num_topics, num_terms), int32
        Word-topic counts of the Gibbs state; they sum to the number of tokens trained on.
    history : list of SweepStats
        One entry per sweep run by this object (not saved by :meth:`save`).

    Examples
    --------
    >>> from distlda.models import LdaModel
    >>> corpus = [[(0, 2), (1, 1)], [(1, 3), (2, 1)]]
    >>> lda = LdaModel(corpus, num_topics=2, iterations=10, random_state=1, distributed=False)
    >>> int(lda.sstats.sum())
    7
    """

    chunksize = _Setting()
    iterations = _Setting()
    passes = _Setting()
    eval_every = _Setting()
    minimum_probability = _Setting()
    minimum_phi_value = _Setting()
    per_word_topics = _Setting()
    dtype = _Setting()
    inference_iterations = _Setting()
    workers = _Setting()
    sampler = _Setting()
    mh_steps = _Setting()
    distributed = _Setting()
    ns_conf = _Setting()
    tls = _Setting()
    checkpoint = _Setting()
    checkpoint_every = _Setting()
    progress = _Setting()
    optimize_alpha = _Setting()
    optimize_eta = _Setting()
    optimize_interval = _Setting()
    optimize_burnin = _Setting()

    def __init__(self, corpus=None, num_topics: int = _D["num_topics"], id2word=None,
                 distributed: bool | None = _D["distributed"], chunksize: int = _D["chunksize"],
                 passes: int | None = _D["passes"], update_every=None, alpha=_D["alpha"],
                 eta=_D["eta"], decay=None, offset=None,
                 eval_every: int | None = _D["eval_every"], iterations: int = _D["iterations"],
                 gamma_threshold=None, minimum_probability: float = _D["minimum_probability"],
                 random_state=_D["random_state"], ns_conf: dict | None = _D["ns_conf"],
                 minimum_phi_value: float = _D["minimum_phi_value"],
                 per_word_topics: bool = _D["per_word_topics"],
                 callbacks: Sequence[Callable] | None = None, dtype=_D["dtype"], *,
                 workers: int | None = _D["workers"],
                 inference_iterations: int = _D["inference_iterations"],
                 sampler: str = _D["sampler"], mh_steps: int | None = _D["mh_steps"],
                 optimize_interval: int = _D["optimize_interval"],
                 optimize_burnin: int = _D["optimize_burnin"],
                 progress: bool | None = _D["progress"], tls=_D["tls"],
                 checkpoint=_D["checkpoint"], checkpoint_every=_D["checkpoint_every"]):
        # the positional order is gensim's, so that gensim code runs unchanged; distlda's own
        # settings are keyword-only
        warn_vb_only(dict(update_every=update_every, decay=decay, offset=offset,
                          gamma_threshold=gamma_threshold))
        K = PARAM["num_topics"].resolve(num_topics)
        rng = _resolve_rng(random_state)
        vocab = _resolve_id2word(id2word)
        V = (max(vocab) + 1) if vocab else 0
        eta_width = 0 if eta is None or isinstance(eta, (str, numbers.Real)) else np.shape(eta)[-1]
        sweeps = sweeps_for(passes, PARAM["iterations"].resolve(iterations))
        spec = ModelSpec.resolve(  # each setting checked by its rule
            chunksize=chunksize, iterations=sweeps, passes=passes, eval_every=eval_every,
            minimum_phi_value=minimum_phi_value, per_word_topics=per_word_topics, dtype=dtype,
            inference_iterations=inference_iterations,
            workers=available_cores() if workers is None else workers, sampler=sampler,
            mh_steps=mh_steps, distributed=distributed, ns_conf=ns_conf, tls=tls,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            minimum_probability=minimum_probability, optimize_interval=optimize_interval,
            optimize_burnin=optimize_burnin, progress=progress,
            optimize_alpha=isinstance(alpha, str) and alpha == "auto",
            optimize_eta=isinstance(eta, str) and eta == "auto",
            fixed_vocab=id2word is not None or eta_width > 0,
            infer_seed=int(rng.integers(2 ** 32)))
        state = GibbsState(K, V or eta_width)  # checks K and V before anything of their size
        state.alpha = "symmetric" if spec.optimize_alpha else alpha  # checked by the state
        state.set_beta(_resolve_eta(eta, K, V or None))
        if state.eta_kw is not None:
            state.resolve_sampler(spec.sampler)  # the mh sampler refuses a non-uniform eta
        self._assemble(spec, state, vocab, rng)
        self._in_process_only()  # distributed=True with what the cluster cannot run: now
        self.random_state = random_state
        self.callbacks = callbacks
        if corpus is not None:
            self.update(corpus)

    def _assemble(self, spec: ModelSpec, state: GibbsState, id2word: Vocabulary,
                  rng: np.random.Generator) -> None:
        """What every model is made of; the one place that sets it (``__init__``,
        :meth:`from_state`)."""
        self._spec = spec
        self._state = state
        self._rng = rng
        self.id2word = id2word
        self.random_state = None
        self.executor_info: str | None = None

    @classmethod
    def from_state(cls, spec: ModelSpec, state: GibbsState, id2word=None,
                   rng: np.random.Generator | None = None) -> "LdaModel":
        """A model of settings ``spec`` holding the Gibbs state ``state`` (what :meth:`load`
        builds from a file).

        Parameters
        ----------
        spec : ModelSpec
        state : GibbsState
        id2word : Vocabulary, optional
            Word ids must be below ``state.num_terms``.
        rng : numpy Generator, optional
            The random stream training goes on with (default: a fresh one).

        Raises
        ------
        ValueError
            A vocabulary wider than the state (a spec the state cannot run, such as the mh
            sampler with a per-word eta, fails when it trains, as it always did).
        """
        vocab = id2word if isinstance(id2word, Vocabulary) else _resolve_id2word(id2word)
        vocab.check_width(state.num_terms)
        self = cls.__new__(cls)
        self._assemble(spec, state, vocab, np.random.default_rng() if rng is None else rng)
        return self

    # ------------------------------------------------------------------ spec and state
    @property
    def spec(self) -> ModelSpec:
        """The model's settings, resolved once (:class:`~distlda.params.ModelSpec`)."""
        return self._spec

    @property
    def state(self) -> GibbsState:
        """The Gibbs state: assignments, counts and the priors; also gensim's ``lda.state``
        (``sstats`` as float K x V, ``numdocs``, ``eta``, ``get_lambda()``,
        ``get_Elogbeta()``)."""
        return self._state

    @state.setter
    def state(self, value) -> None:
        raise AttributeError("a Gibbs model's state is its topic assignments, which counts "
                             "cannot replace: copy the whole model (copy.deepcopy(lda)) instead")

    @property
    def rng(self) -> np.random.Generator:
        """The random stream training draws from (saved with the model)."""
        return self._rng

    @property
    def num_topics(self) -> int:
        """K, the number of topics."""
        return self._state.num_topics

    @property
    def num_terms(self) -> int:
        """V, the vocabulary size (0 before a corpus or ``id2word`` fixed it)."""
        return self._state.num_terms

    @property
    def alpha(self) -> np.ndarray:
        """The document-topic prior, shape (num_topics,); assign any form the constructor
        takes."""
        return self._state.alpha

    @alpha.setter
    def alpha(self, value) -> None:
        refuse_auto("alpha", value)
        self._state.alpha = value  # the state checks it by the constructor's rule

    # ------------------------------------------------------------------ training
    def update(self, corpus=None, iterations: int | None = None, *, passes: int | None = None,
               eval_every: int | None = None, chunksize: int | None = None, decay=None,
               offset=None, update_every=None, gamma_threshold=None,
               chunks_as_numpy=False) -> None:
        """Add documents to the model and run ``iterations`` sweeps over all its documents.

        Parameters
        ----------
        corpus : iterable of list of (int, int), or scipy.sparse matrix, optional
            New documents; word ids must be within the model's vocabulary when ``id2word``
            was given. None or an empty corpus adds nothing and only runs the sweeps (as
            :meth:`train`).
        iterations : int, optional
            Sweeps to run (default: the model's ``iterations``).
        passes, eval_every, chunksize : int, optional
            gensim's keywords: ``passes`` as in the constructor (``max(passes, iterations)``
            sweeps); ``eval_every`` and ``chunksize`` replace the model's settings.
        decay, offset, update_every, gamma_threshold, chunks_as_numpy
            gensim's variational-Bayes settings: ignored, with one warning.

        Raises
        ------
        ValueError
            If the corpus is malformed (the message names the document), or if the model
            would hold no tokens at all.
        """
        warn_vb_only(dict(decay=decay, offset=offset, update_every=update_every,
                          gamma_threshold=gamma_threshold, chunks_as_numpy=chunks_as_numpy))
        if eval_every is not None:
            self.eval_every = eval_every
        if chunksize is not None:
            self.chunksize = chunksize
        iterations = sweeps_for(passes, self._sweeps(iterations))
        if corpus is None:
            self.train(iterations)
            return
        executor, held = training.take_in(self, corpus, iterations, self._executor)
        if held:  # as a shard set that the cluster's workers read themselves
            self._train(iterations, executor)
            return
        new_chunks = training.chunks_of(self, corpus)
        n_docs = sum(c.num_docs for c in new_chunks)
        n_tokens = sum(c.num_tokens for c in new_chunks)
        if n_docs == 0 and self._state.num_tokens:
            self.train(iterations)  # update([]): nothing to add, keep sampling
            return
        if n_docs == 0:
            raise ValueError("corpus is empty: it has no documents")
        if n_tokens == 0:
            raise ValueError(f"corpus has {n_docs} documents but no tokens (all counts are 0)")
        note_first_compile(K_)
        training.widen_vocabulary(self, corpus, new_chunks)
        for c in new_chunks:
            self._state.add_chunk(c, int(self._rng.integers(2 ** 32)))
        logger.info("training LDA: %d topics, %d documents, %d tokens (%d new), %d terms, "
                    "%d chunks, %d sweeps", self.num_topics, self._state.num_docs,
                    self._state.num_tokens, n_tokens, self.num_terms, len(self._state.chunks),
                    iterations)
        self._train(iterations, executor)

    def train(self, iterations: int | None = None) -> None:
        """Run more Gibbs sweeps over the documents the model holds, adding none.

        Continues the chain exactly where it stopped: ``LdaModel(corpus, iterations=n)``
        followed by ``train(m)`` gives the same state as ``iterations=n + m`` would with the
        same ``random_state`` (with ``sampler="sparse"``, also across :meth:`save` and
        :meth:`load`).

        Parameters
        ----------
        iterations : int, optional
            Sweeps to run (default: the model's ``iterations``).

        Raises
        ------
        ValueError
            If the model holds no documents yet (train it on a corpus first).
        """
        iterations = self._sweeps(iterations)
        if self._state.num_tokens == 0:
            raise ValueError("the model holds no documents yet: give it a corpus first "
                             "(LdaModel(corpus, ...) or update(corpus))")
        note_first_compile(K_)
        logger.info("training LDA: %d more sweeps over %d documents, %d tokens, %d topics",
                    iterations, self._state.num_docs, self._state.num_tokens, self.num_topics)
        self._train(iterations)

    def _in_process_only(self) -> str | None:
        """Why this model cannot train on the cluster (None: it can); raises ValueError for
        ``distributed=True``. The cluster samples one scalar, fixed eta."""
        why = ("a per-word or topics x words eta" if self._state.eta_kw is not None
               else "eta='auto' (learned)" if self.optimize_eta else None)
        if why and self.distributed:
            raise ValueError(f"distributed=True: the cluster supports only a fixed scalar eta, "
                             f"and this model has {why}: use distributed=False")
        return why

    def _executor(self):
        """The cluster if there is one (and we may use it), else this process's threads."""
        why = self._in_process_only()
        if why and self.distributed is None and not self.__dict__.get("_said_in_process"):
            logger.info("training in-process, not on a cluster: the cluster supports only a "
                        "fixed scalar eta, and this model has %s", why)
            self._said_in_process = True
        ex = None
        if self.distributed is False:  # the cluster's modules are not even imported
            logger.info("serial: training in-process with %d thread(s)", self.workers)
        elif not why:
            from distlda.cluster import client as _client
            ex = _client.choose_executor(self.distributed, self.ns_conf, self.workers, self.tls)
        if ex is None:
            # the MH proposals of one train() call are the next call's first (one chain)
            ex = LocalExecutor(self.workers, workspace=self._mh_memory())
        return ex

    def _mh_memory(self):
        """The MH sampler's working memory of this model's in-process training."""
        from distlda.gibbs import mh
        return self.__dict__.setdefault("_mh_workspace", mh.Workspace())

    def _train(self, iterations: int, executor=None) -> None:
        if iterations == 0:
            return
        executor = executor or self._executor()
        # "auto" is resolved once here (for the documents now held), so every thread and
        # cluster worker runs the same sampler.
        executor.sampler = self._state.resolve_sampler(self.sampler)
        executor.mh_steps = self.mh_steps
        self.executor_info = executor.describe()
        training.train(self, executor, iterations)

    def _sweeps(self, iterations: int | None) -> int:
        """``iterations`` checked, or the model's own."""
        if iterations is None:
            return self.iterations
        return PARAM["iterations"].resolve(iterations)

    def log_likelihood_per_token(self) -> float:
        """Joint log p(words, topic assignments) of the Gibbs state, per token."""
        return self._state.log_likelihood() / max(self._state.num_tokens, 1)

    @property
    def callbacks(self) -> list:
        """Functions called as ``callback(model, stats)`` after every sweep (see ``__init__``)."""
        return self.__dict__.setdefault("_callbacks", [])

    @callbacks.setter
    def callbacks(self, value) -> None:
        self.__dict__["_callbacks"] = check_callbacks(value)

    @property
    def history(self) -> list[SweepStats]:
        """One :class:`SweepStats` per sweep this object has run, oldest first.

        Kept in memory only: :meth:`save` does not write it, so a loaded model starts with an
        empty history.
        """
        return self.__dict__.setdefault("_history", [])

    def summary(self, topn: int = 10) -> str:
        """A text report of the model: data, priors, sampler, sweeps, fit and topics.

        Parameters
        ----------
        topn : int
            Words shown per topic.

        Returns
        -------
        str
            Several lines; ``print(lda.summary())`` shows it. Topics are listed largest
            first, with their share of the tokens.
        """
        from distlda import report
        return report.summary(self, Integer(0).check("topn", topn))

    def plot_convergence(self, path: str) -> None:
        """Plot log-likelihood and speed per sweep from :attr:`history` to an image file.

        Parameters
        ----------
        path : str
            Local path or smart_open URI; the format comes from the extension (``.png``,
            ``.svg``, ``.pdf``...; none: PNG).

        Raises
        ------
        ImportError
            If matplotlib is not installed (``pip install "distlda[plot]"``).
        ValueError
            If no sweep was recorded (a loaded model has no history).
        """
        from distlda import report
        report.plot_convergence(self, path)

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

    def __repr__(self) -> str:
        return (f"LdaModel<num_terms={self.num_terms}, num_topics={self.num_topics}, "
                f"docs={self.num_docs}, tokens={self.num_tokens}>")

    def __str__(self) -> str:
        return self.__repr__()
