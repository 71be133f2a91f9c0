"""Reading a trained model's topics: gensim's topic API, and the training documents' mixtures.

:class:`TopicsMixin` holds the read-only views of the Gibbs state that
:class:`distlda.models.LdaModel` offers (topic-word distributions, top words, document-topic
counts); it reads the model's ``state`` (:class:`distlda.gibbs.state.GibbsState`) and public
attributes (``num_topics``, ``num_terms``, ``alpha``, ``id2word``, ``dtype``), never a private
one.
"""

from __future__ import annotations

import logging
import numbers
from typing import Iterator

import numpy as np
import scipy.sparse as sp

from distlda.gibbs.chunks import count_matrix
from distlda.params import Integer

logger = logging.getLogger("distlda.models.ldamodel")


def topic_row(state, topicid: int) -> np.ndarray:
    """Row ``topicid`` of :meth:`TopicsMixin.get_topics`, computed alone (O(V))."""
    counts = state.nwk[:, topicid]
    if state.eta_kw is None:
        return (counts + state.beta) / (state.nk[topicid] + state.vbeta)
    col = state.eta_kw[:, topicid if state.eta_kw.shape[1] > 1 else 0]
    return (counts + col) / (state.nk[topicid] + state.eta_sum[topicid])


def _check_topic(topicid, num_topics: int) -> int:
    if not isinstance(topicid, numbers.Integral) or not 0 <= topicid < num_topics:
        raise ValueError(f"topic id must be an integer in [0, {num_topics}), got {topicid!r}")
    return int(topicid)


class TopicsMixin:
    """Topic and document-topic views of a Gibbs state (see the module docstring)."""

    def get_topics(self) -> np.ndarray:
        """Topic-word distributions: ``(n_kw + eta_kw) / (n_k + sum_w eta_kw)``.

        Returns
        -------
        ndarray of shape (num_topics, num_terms), float64
            Rows sum to 1 (the posterior mean of each topic given the Gibbs sample).
        """
        st = self.state
        nwk = st.nwk.T.astype(np.float64)
        if st.eta_kw is None:
            return (nwk + st.beta) / (st.nk[:, None] + st.beta * st.num_terms)
        return (nwk + st.eta_kw.T) / (st.nk + st.eta_sum)[:, None]

    def get_topic_terms(self, topicid: int, topn: int = 10) -> list[tuple[int, float]]:
        """The ``topn`` most probable word ids of a topic, as (word_id, probability).

        Returns
        -------
        list of (int, numpy float)
            Most probable first; the probabilities are numpy scalars of the model's ``dtype``
            (float64 by default, gensim's float32 when ``dtype=np.float32`` was given).
        """
        topicid = _check_topic(topicid, self.num_topics)
        row = topic_row(self.state, topicid)
        topn = min(Integer(0).check("topn", topn), self.num_terms)
        best = np.argsort(-row, kind="stable")[:topn]
        return [(int(i), self.dtype(row[i])) for i in best]

    def show_topic(self, topicid: int, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` most probable words of a topic, as (word, probability)."""
        return [(self.id2word.get(i, str(i)), p) for i, p in self.get_topic_terms(topicid, topn)]

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
            chosen = np.argsort(-self.state.nk, kind="stable")[:num_topics]
        shown = []
        for k in chosen:
            words = self.show_topic(int(k), num_words)
            topic = " + ".join(f'{p:.3f}*"{w}"' for w, p in words) if formatted else words
            shown.append((int(k), topic))
            if log:
                logger.info("topic #%d (%d tokens): %s", k, self.state.nk[k],
                            topic if formatted else words)
        return shown

    def print_topics(self, num_topics: int = 20, num_words: int = 10):
        """``show_topics(num_topics, num_words, log=True)``, gensim's alias."""
        return self.show_topics(num_topics=num_topics, num_words=num_words, log=True)

    # ------------------------------------------------------------------ training documents
    def document_topic_counts(self) -> "sp.csr_matrix":
        """Tokens of each training document assigned to each topic, from the Gibbs state.

        Returns
        -------
        scipy.sparse.csr_matrix of shape (num_docs, num_topics), int64
            Row ``d`` is document ``d`` of the training corpora in the order they were given
            (the constructor's corpus first, then each :meth:`update`'s); it sums to the
            document's length.
        """
        blocks = list(self.iter_document_topic_counts())
        if not blocks:
            return sp.csr_matrix((0, self.num_topics), dtype=np.int64)
        return sp.vstack(blocks, format="csr")

    def iter_document_topic_counts(self) -> Iterator[sp.csr_matrix]:
        """:meth:`document_topic_counts` in blocks of consecutive documents (a chunk, or a
        shard read back from its checkpoint), in bounded memory.

        Raises
        ------
        CorpusFormatError, CheckpointError
            The shard set or a checkpoint that holds the assignments changed or is gone.
        """
        st = self.state
        if st.shards is not None:
            from distlda.corpora.checkpoints import doc_topic_counts
            corpus = st.shards.open()
            for i in range(st.shards.num_shards):
                yield doc_topic_counts(corpus, i, st.shards.topics(i, self.num_topics),
                                       self.num_topics).astype(np.int64)
        for c in st.chunks:
            yield count_matrix([c], "topics", self.num_topics)

    def iter_document_topics(self) -> Iterator[np.ndarray]:
        """:meth:`document_topics` in blocks of consecutive documents (float64 arrays of
        shape (block documents, num_topics)), in bounded memory: how a shard set's topic
        mixtures are written out."""
        for counts in self.iter_document_topic_counts():
            theta = counts.toarray().astype(np.float64) + self.alpha[None, :]
            yield theta / theta.sum(axis=1, keepdims=True)

    def document_topics(self) -> np.ndarray:
        """Topic mixtures of the training documents, read from the Gibbs counts (no inference).

        ``theta[d, k] = (n_dk + alpha_k) / (N_d + sum(alpha))``, the posterior mean given the
        current sample, as MALLET's ``--output-doc-topics`` writes it. For new documents use
        :meth:`inference` or ``lda[bow]``.

        Returns
        -------
        ndarray of shape (num_docs, num_topics), float64
            Rows sum to 1; row ``d`` is training document ``d`` (see
            :meth:`document_topic_counts` for the order). A document with no tokens gets
            ``alpha / sum(alpha)``.
        """
        blocks = list(self.iter_document_topics())
        return (np.vstack(blocks) if blocks
                else np.zeros((0, self.num_topics), np.float64))

