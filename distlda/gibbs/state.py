"""The Gibbs state (token assignments and their counts) and the rule that keeps it exact.

Invariant: ``nwk`` and ``nk`` are, at every moment outside a commit, exactly the counts of the
committed topic assignments of all chunks. Sweeps never touch the global counts: whoever sweeps
(the serial loop, a thread, a cluster worker) works on its own copy or slice and hands back the
chunk's new topics; :meth:`GibbsState.commit` then swaps the old assignments' counts for the
new ones. A sweep that never comes back (a killed worker) therefore changes nothing, and a
re-sent chunk starts again from its committed topics: nothing is lost or counted twice.
"""

from __future__ import annotations

import os

import numpy as np

from distlda.gibbs import kernels as K_
from distlda.gibbs import sampling
from distlda.gibbs.chunks import MAX_TERMS, MAX_TOKENS, MAX_TOPICS, Chunk
from distlda.params import DEFAULT_ETA, _check_prior_range, _resolve_alpha


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (a large default where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 1 << 40


def max_terms_for(num_topics: int) -> int:
    """The largest vocabulary whose int32 word-topic table of ``num_topics`` columns fits in
    this machine's memory (and int32 word ids)."""
    return max(1, min(MAX_TERMS, memory_bytes() // (4 * max(int(num_topics), 1))))


def check_sizes(num_topics: int, num_terms: int) -> None:
    """Raise ValueError unless K and V are within their limits and the dense ``V x K`` int32
    table fits in this machine's memory; called before that table is allocated.

    Raises
    ------
    ValueError
        The message gives the limit, the value and what to do.
    """
    if num_topics > MAX_TOPICS:
        raise ValueError(f"num_topics={num_topics} is more than the {MAX_TOPICS} topics supported "
                         f"(per-thread float64[K] scratch rows): use fewer topics")
    if num_terms > MAX_TERMS:
        raise ValueError(f"a vocabulary of {num_terms} words is more than the {MAX_TERMS} "
                         f"supported (int32 word ids): renumber the words compactly "
                         f"(Dictionary.compactify) or filter the vocabulary")
    need, have = 4 * int(num_topics) * int(num_terms), memory_bytes()
    if need > have:
        raise ValueError(f"the word-topic table of {num_terms} words x {num_topics} topics needs "
                         f"{need / 2**30:.1f} GiB of int32 counts, more than this machine's "
                         f"{have / 2**30:.1f} GiB: use fewer topics or a smaller vocabulary "
                         f"(Dictionary.filter_extremes), or renumber word ids compactly")


class GibbsState:
    """Token assignments in chunks plus the word-topic counts they imply.

    Parameters
    ----------
    num_topics, num_terms : int
    alpha : ndarray of shape (num_topics,), optional
        Document-topic prior (default: 1/K each).
    beta : float, or ndarray of shape (num_terms,) or (num_topics, num_terms)
        Topic-word prior: one value (the sparse and MH samplers' case), one per word, or one
        per topic and word (swept exactly by :func:`~distlda.gibbs.kernels.sweep_eta`);
        default :data:`~distlda.params.DEFAULT_ETA`.

    Attributes
    ----------
    chunks : list of Chunk
    nwk : ndarray of shape (num_terms, num_topics), int32
        Word-topic counts, one row per word.
    nk : ndarray of shape (num_topics,), int32
        Tokens per topic.
    beta : float
        The prior's value when it is one value; for a non-uniform prior its mean (only for
        messages; the samplers read ``eta_kw``).
    eta_kw : ndarray of shape (num_terms, 1) or (num_terms, num_topics), float64, or None
        A non-uniform prior, one row per word (None: ``beta`` everywhere).
    eta_sum : ndarray of shape (num_topics,), float64, or None
        With ``eta_kw``: sum over the vocabulary of each topic's prior.
    version : int
        Bumped by every change to the counts, the prior or the vocabulary (:meth:`touch`):
        what is computed from the state is cached under it (:meth:`memo`).
    sweeps_done : int
        Sweeps the owner has run on this state (a model's training loop counts them).
    shards : ShardAssignments or None
        A state trained on a cluster from a shard set holds no chunk: its assignments are in
        the shard set's checkpoints (:mod:`distlda.gibbs.assignments`), and the counts are
        theirs.
    """

    def __init__(self, num_topics: int, num_terms: int, alpha: np.ndarray | None = None,
                 beta=DEFAULT_ETA):
        check_sizes(num_topics, num_terms)  # before anything of size K or V is allocated
        self.version = 0
        self.sweeps_done = 0
        self._memo: dict = {}
        self._num_topics = int(num_topics)
        self._num_terms = int(num_terms)
        self.alpha = np.full(self.num_topics, 1.0 / self.num_topics) if alpha is None else alpha
        self.set_beta(beta)
        self.chunks: list[Chunk] = []
        self.shards = None  # a ShardAssignments: the assignments kept with a shard set
        self.nwk = np.zeros((self.num_terms, self.num_topics), np.int32)
        self.nk = np.zeros(self.num_topics, np.int32)

    @classmethod
    def restore(cls, alpha: np.ndarray, beta, nwk: np.ndarray, nk: np.ndarray,
                chunks: list[Chunk], sweeps_done: int = 0) -> "GibbsState":
        """A state of saved parts; ValueError unless the counts are the assignments'."""
        st = cls(nwk.shape[1], nwk.shape[0], alpha, beta)
        st.nwk, st.nk, st.chunks, st.sweeps_done = nwk, nk, list(chunks), sweeps_done
        recount = st.recount()  # the exactness invariant: the counts are the assignments'
        if not (np.array_equal(recount[0], nwk) and np.array_equal(recount[1], nk)):
            raise ValueError("the word-topic counts differ from the counts of the saved topic "
                             "assignments")
        return st

    def touch(self) -> None:
        """Say that the counts, the prior or the vocabulary changed (whoever changes them in
        place, as the executors' sweeps do, calls it): cached values are stale."""
        self.version += 1
        self._memo.clear()

    def memo(self, name: str, build):
        """``build()``, computed once per :attr:`version` and kept under ``name``."""
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    @property
    def alpha(self) -> np.ndarray:
        """The document-topic prior, shape (num_topics,), float64 (read each sweep)."""
        return self._alpha

    @alpha.setter
    def alpha(self, value) -> None:
        # the samplers read alpha[k] for every topic: a short or out-of-range prior never
        # reaches them (the constructor's rule and messages)
        self._alpha = _resolve_alpha(value, self.num_topics)
        self.touch()

    @property
    def num_topics(self) -> int:
        """K, fixed when the state is made."""
        return self._num_topics

    @property
    def num_terms(self) -> int:
        """V: the rows of ``nwk`` (it grows only by :meth:`grow_vocabulary`)."""
        return self._num_terms

    def set_beta(self, beta) -> None:
        """Set the topic-word prior (a float, or a (V,) or (K, V) array; see the class).

        Raises
        ------
        ValueError
            A value outside [PRIOR_MIN, PRIOR_MAX] or an array of another shape.
        """
        try:
            b = np.asarray(beta, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid 'eta' parameter: {beta!r:.60} (a number or an array of "
                             f"numbers is required)") from None
        if b.ndim and b.shape not in ((self.num_terms,), (self.num_topics, self.num_terms)):
            raise ValueError(f"topic-word prior of shape {b.shape}, expected ({self.num_terms},) "
                             f"or ({self.num_topics}, {self.num_terms})")
        _check_prior_range("eta", b.reshape(-1))
        self.touch()
        self.eta_kw = self.eta_sum = None
        if b.ndim == 0:
            self.beta = float(b)
            return
        self.beta = float(b.mean())
        self.eta_kw = np.ascontiguousarray(b.reshape(-1, self.num_terms).T)
        self.eta_sum = (np.full(self.num_topics, b.sum()) if b.ndim == 1
                        else np.ascontiguousarray(b.sum(axis=1)))

    @property
    def vbeta(self) -> float:
        return self.beta * self.num_terms

    @property
    def num_tokens(self) -> int:
        held = self.shards.num_tokens if self.shards is not None else 0
        return held + sum(c.num_tokens for c in self.chunks)

    @property
    def num_docs(self) -> int:
        held = self.shards.num_docs if self.shards is not None else 0
        return held + sum(c.num_docs for c in self.chunks)

    def add_chunk(self, chunk: Chunk, seed: int) -> None:
        """Give ``chunk`` uniform random topics and add its counts."""
        if self.num_tokens + chunk.num_tokens > MAX_TOKENS:
            raise ValueError(f"the model holds at most {MAX_TOKENS} tokens (int32 counts), it "
                             f"has {self.num_tokens} and {chunk.num_tokens} more came: train "
                             f"on fewer documents or several models")
        K_.init_topics(chunk.topics, self.num_topics, seed)
        K_.count_assignments(chunk.words, chunk.topics, self.nwk, self.nk, 1)
        self.chunks.append(chunk)
        self.touch()

    def commit(self, index: int, new_topics: np.ndarray) -> None:
        """Replace chunk ``index``'s committed topics by ``new_topics``, moving the counts."""
        chunk = self.chunks[index]
        new_topics = np.asarray(new_topics, dtype=np.int32)
        if new_topics.shape != chunk.topics.shape:
            raise ValueError(f"chunk {index}: got {new_topics.shape[0]} topics for "
                             f"{chunk.num_tokens} tokens")
        if new_topics.size and (new_topics.min() < 0 or new_topics.max() >= self.num_topics):
            raise ValueError(f"chunk {index}: topic ids outside [0, {self.num_topics})")
        K_.count_assignments(chunk.words, chunk.topics, self.nwk, self.nk, -1)
        K_.count_assignments(chunk.words, new_topics, self.nwk, self.nk, 1)
        chunk.topics = np.ascontiguousarray(new_topics)
        self.touch()

    def recount(self) -> tuple[np.ndarray, np.ndarray]:
        """Counts recomputed from the assignments alone (for checks and tests; a shard set's
        are read back shard by shard)."""
        nwk = np.zeros_like(self.nwk)
        nk = np.zeros_like(self.nk)
        for c in self.chunks:
            K_.count_assignments(c.words, c.topics, nwk, nk, 1)
        if self.shards is not None:
            for _, words, _, z in self.shards.iter_shards(self.num_topics):
                K_.count_assignments(np.asarray(words, np.int64), z, nwk, nk, 1)
        return nwk, nk

    def log_likelihood(self) -> float:
        """Joint log p(w, z) of the collapsed model (as MALLET reports it)."""
        if self.eta_kw is None:
            ll = K_.loglik_words(self.nwk, self.nk, self.beta, self.num_terms)
        else:
            ll = K_.loglik_words_eta(self.nwk, self.nk, self.eta_kw, self.eta_sum)
        for c in self.chunks:
            ll += K_.loglik_docs(c.topics, c.doc_ptr, self.alpha)
        if self.shards is not None:  # read back shard by shard
            for _, _, ptr, z in self.shards.iter_shards(self.num_topics):
                ll += K_.loglik_docs(z, ptr, self.alpha)
        return float(ll)

    def resolve_sampler(self, sampler: str) -> str:
        """``sampler``, with "auto" replaced by the choice for this K and document length;
        "sparse" (the exact kernels) whenever the prior is non-uniform."""
        if self.eta_kw is not None:
            if sampler == "mh":
                raise ValueError("the mh sampler supports only a scalar eta: use "
                                 "sampler='sparse' or 'auto' with a per-word or seeded eta")
            return "sparse"
        return sampling.resolve(sampler, self.num_topics, self.num_tokens / max(self.num_docs, 1))

    def grow_vocabulary(self, num_terms: int) -> None:
        """Widen ``nwk`` to ``num_terms`` words (new words have zero counts)."""
        if num_terms > self.num_terms:
            if self.eta_kw is not None:
                raise ValueError(f"word id {num_terms - 1} is beyond the {self.num_terms} words "
                                 f"of the per-word eta: give eta one value per word")
            check_sizes(self.num_topics, num_terms)
            nwk = np.zeros((num_terms, self.num_topics), np.int32)
            nwk[: self.num_terms] = self.nwk
            self.nwk = nwk
            self._num_terms = int(num_terms)
            self.touch()

    # ------------------------------------------------------------- gensim's LdaState, read
    # What gensim's consumers (pyLDAvis, gensim's own tools) read of ``lda.state``.
    @property
    def numdocs(self) -> int:
        """gensim's name of :attr:`num_docs`."""
        return self.num_docs

    @property
    def sstats(self) -> np.ndarray:
        """Word-topic counts as gensim's expected counts: (num_topics, num_terms), float64."""
        return self.nwk.T.astype(np.float64)

    @property
    def eta(self) -> np.ndarray:
        """The topic-word prior in gensim's shape: (num_terms,), or (num_topics, num_terms)
        for a topics x words prior (a copy)."""
        if self.eta_kw is None:
            return np.full(self.num_terms, self.beta)
        return self.eta_kw[:, 0].copy() if self.eta_kw.shape[1] == 1 else self.eta_kw.T.copy()

    def get_lambda(self) -> np.ndarray:
        """``eta + sstats``: the Dirichlet parameters of the topics, shape (K, V)."""
        return self.eta + self.sstats

    def get_Elogbeta(self) -> np.ndarray:
        """E[log beta] under Dirichlet(lambda) per topic, shape (K, V), as gensim's."""
        from scipy.special import psi
        lam = self.get_lambda()
        return psi(lam) - psi(lam.sum(axis=1))[:, None]

