"""Converting between distlda and gensim models: :meth:`LdaModel.to_gensim` and
:meth:`LdaModel.from_gensim` (attached to :class:`~distlda.models.LdaModel` by
:class:`GensimInteropMixin`).

gensim is imported only when these are called; it is not a dependency of distlda.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GensimInteropMixin", "to_gensim", "from_gensim"]

# Tokens x topics entries of one sampling batch in from_gensim (~64 MB of float64).
_BATCH_ENTRIES = 1 << 23


def _import_gensim():
    try:
        import gensim  # noqa: F401
        from gensim.models import LdaModel as GensimLda
    except ImportError:  # pragma: no cover - gensim is in the test extra
        raise ImportError("to_gensim/from_gensim need gensim: pip install gensim") from None
    return GensimLda


def _gensim_dictionary(vocab):
    """The vocabulary as a ``gensim.corpora.Dictionary`` (a plain dict if words repeat)."""
    from gensim.corpora import Dictionary
    words = dict(vocab)
    if len(set(words.values())) != len(words):
        return words  # gensim's Dictionary cannot hold one word under two ids
    d = Dictionary()
    d.token2id = {w: i for i, w in sorted(words.items())}
    d.id2token = dict(sorted(words.items()))
    d.dfs = dict(getattr(vocab, "dfs", {}) or {})
    d.cfs = dict(getattr(vocab, "cfs", {}) or {})
    d.num_docs = int(getattr(vocab, "num_docs", 0) or 0)
    d.num_pos = sum(d.cfs.values())
    d.num_nnz = sum(d.dfs.values())
    return d


def to_gensim(model, random_state=None):
    """A ``gensim.models.LdaModel`` holding ``model``'s topics, priors and vocabulary.

    gensim's topic-word parameter is ``lambda = eta + sstats``; the Gibbs word-topic counts
    are put in ``sstats``, so ``lambda`` normalised is the Gibbs posterior mean
    ``(n_kw + eta) / (n_k + V eta)``: ``get_topics()`` of both models agree to rounding
    (about 1e-16). ``alpha`` and ``eta`` are gensim's shapes (K and V, or K x V for a
    matrix eta), ``state.numdocs`` the documents trained on, ``id2word`` a gensim
    ``Dictionary`` (a ``gensim.utils.FakeDict`` of ``num_terms`` ids when the model has no
    vocabulary). The gensim model can be trained further with its own ``update``.

    Parameters
    ----------
    model : distlda.models.LdaModel
    random_state : int, optional
        Seed of the gensim model's own random state (its inference uses it).

    Returns
    -------
    gensim.models.LdaModel

    Raises
    ------
    ImportError
        If gensim is not installed.
    ValueError
        If the model holds no vocabulary size yet (train it first).
    """
    GensimLda = _import_gensim()
    from gensim.utils import FakeDict
    if model.num_terms == 0:
        raise ValueError("the model has no vocabulary yet (num_terms == 0): train it first")
    V, K = model.num_terms, model.num_topics
    id2word = _gensim_dictionary(model.id2word) if model.id2word else FakeDict(V)
    eta = np.asarray(model.eta, dtype=np.float64)
    eta_arg = float(eta) if eta.ndim == 0 else eta.copy()
    g = GensimLda(num_topics=K, id2word=id2word, alpha=np.array(model.alpha, dtype=np.float64),
                  eta=eta_arg, dtype=np.float64, random_state=random_state)
    g.state.sstats[...] = model.sstats  # K x V word-topic counts, as float64
    g.state.numdocs = model.num_docs
    g.sync_state()
    return g


def _token_topics(gamma_tok: np.ndarray, phi_tok: np.ndarray, rng) -> np.ndarray:
    """One draw per row of p(k) proportional to ``gamma_tok * phi_tok`` (rows: tokens)."""
    p = gamma_tok * phi_tok
    cum = np.cumsum(p, axis=1)
    u = rng.random(p.shape[0]) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), p.shape[1] - 1).astype(np.int32)


def _seed_chunk(state, index: int, gensim_model, phi: np.ndarray, rng) -> None:
    """Draw chunk ``index``'s topics from gensim's per-token posterior and commit them."""
    chunk = state.chunks[index]
    doc_of = np.repeat(np.arange(chunk.num_docs), np.diff(chunk.doc_ptr))
    bows = []
    for d in range(chunk.num_docs):
        ids, counts = np.unique(chunk.words[chunk.doc_ptr[d]:chunk.doc_ptr[d + 1]],
                                return_counts=True)
        bows.append(list(zip(ids.tolist(), counts.tolist())))
    gamma, _ = gensim_model.inference(bows)
    topics = np.empty(chunk.num_tokens, np.int32)
    step = max(1, _BATCH_ENTRIES // phi.shape[0])
    for s in range(0, chunk.num_tokens, step):
        e = min(s + step, chunk.num_tokens)
        topics[s:e] = _token_topics(gamma[doc_of[s:e]], phi[:, chunk.words[s:e]].T, rng)
    state.commit(index, topics)


def from_gensim(cls, gensim_model, corpus, random_state=None, **kwargs):
    """A distlda model whose Gibbs state starts from a trained gensim model.

    Each token of ``corpus`` gets a topic drawn from gensim's own per-token posterior,
    ``p(k | d, w)`` proportional to ``gamma_dk * phi_kw`` (gamma from gensim's
    ``inference`` on the document, phi from its ``get_topics()``), so the Gibbs counts start
    as a sample of gensim's solution instead of uniform noise. The cost is one gensim E-step
    over the corpus plus O(tokens x K) for the draws. No sweep is run unless
    ``iterations`` is given; call ``train(n)`` to go on sampling.

    Parameters
    ----------
    gensim_model : gensim.models.LdaModel
    corpus : bag-of-words corpus or scipy.sparse matrix
        The documents to hold (usually those the gensim model was trained on).
    random_state : int, optional
        Seeds the draws and the distlda model.
    **kwargs
        Other :class:`~distlda.models.LdaModel` parameters (``iterations`` defaults to 0,
        ``distributed`` to False). ``num_topics``, ``id2word``, ``alpha`` and ``eta`` come
        from the gensim model (a constant eta as a scalar).

    Returns
    -------
    distlda.models.LdaModel

    Raises
    ------
    TypeError
        ``gensim_model`` is not a trained gensim LdaModel.
    ValueError
        A corpus with word ids outside gensim's vocabulary, or no tokens.
    """
    if not all(hasattr(gensim_model, a) for a in ("get_topics", "num_topics", "alpha", "eta")):
        raise TypeError(f"from_gensim expects a trained gensim LdaModel, got "
                        f"{type(gensim_model).__name__}")
    iterations = kwargs.pop("iterations", 0)
    if iterations:  # the sweeps run now are also those of a later update()
        kwargs["iterations"] = iterations
    kwargs.setdefault("distributed", False)
    eta = np.asarray(gensim_model.eta, dtype=np.float64)
    if eta.size and np.all(eta == eta.flat[0]):
        eta = float(eta.flat[0])
    phi = gensim_model.get_topics().astype(np.float64)  # K x V
    id2word = gensim_model.id2word
    if id2word is None or type(id2word).__name__ == "FakeDict":
        id2word = [str(i) for i in range(phi.shape[1])]
    model = cls(None, num_topics=gensim_model.num_topics, id2word=id2word,
                alpha=np.asarray(gensim_model.alpha, dtype=np.float64), eta=eta,
                random_state=random_state, **kwargs)
    model.update(corpus, iterations=0)  # chunks with uniform topics, checked against V
    rng = np.random.default_rng(random_state)
    for index in range(len(model.state.chunks)):
        _seed_chunk(model.state, index, gensim_model, phi, rng)  # commits: the state changes
    if iterations:
        model.train(iterations)
    return model


class GensimInteropMixin:
    """``to_gensim`` and ``from_gensim`` on :class:`~distlda.models.LdaModel`."""

    def to_gensim(self, random_state=None):
        """This model as a ``gensim.models.LdaModel``; see :func:`distlda.interop.to_gensim`."""
        return to_gensim(self, random_state)

    @classmethod
    def from_gensim(cls, gensim_model, corpus, random_state=None, **kwargs):
        """A model seeded from a gensim one; see :func:`distlda.interop.from_gensim`."""
        return from_gensim(cls, gensim_model, corpus, random_state, **kwargs)
