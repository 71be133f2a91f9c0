"""Topics of new documents: Gibbs fold-in with the topics held fixed, and held-out scoring.

:class:`InferenceMixin` holds what :class:`distlda.models.LdaModel` offers on documents it was
not trained on (``fold_in``, ``inference``, ``lda[bow]``, ``log_perplexity``; gensim's
``get_document_topics`` is in :mod:`distlda.gensim_compat`); it reads the model's ``state``,
``spec`` and public attributes, never a private one. What fold-in reads is cached on the state
(:meth:`~distlda.gibbs.state.GibbsState.memo`), so it is rebuilt whenever the state changes.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from distlda.gibbs import kernels as K_
from distlda.gibbs.chunks import count_matrix, iter_chunks
from distlda.params import Integer, _is_single_doc

logger = logging.getLogger("distlda.models.ldamodel")


def _count_matrix(model, corpus) -> "sp.csr_matrix":
    """The corpus as a documents x num_terms CSR count matrix (streamed once, checked)."""
    return count_matrix(iter_chunks(corpus, model.num_terms, model.chunksize), "words",
                        model.num_terms)


def inference_tables(model):
    """(nwk, 1 / (n_k + V eta), alpha, eta) for :func:`~distlda.gibbs.kernels.foldin`,
    cached on the state until it changes. With a non-uniform eta: (p(word | topic) as
    V x K float64, ones, alpha, 0)."""
    st = model.state

    def build():
        alpha = np.ascontiguousarray(st.alpha, dtype=np.float64)
        if st.eta_kw is None:
            return st.nwk, 1.0 / (st.nk + st.beta * st.num_terms), alpha, st.beta
        # no single offset: fold in against the topic-word probabilities
        table = np.ascontiguousarray(model.get_topics().T)
        return table, np.ones(st.num_topics), alpha, 0.0

    return st.memo("foldin", build)


class InferenceMixin:
    """Fold-in of new documents (see the module docstring)."""

    # ------------------------------------------------------------------ inference
    def fold_in(self, corpus, iterations: int | None = None) -> np.ndarray:
        """Topic distributions of documents by Gibbs fold-in with the topics held fixed.

        Each document is folded in on its own, with a random stream seeded from the model's
        inference seed and the document's *content* (the multiset of its word ids; the order
        of its (word_id, count) pairs does not matter): the same document gets the same
        answer from the same model in any batch, at any position, with any number of threads,
        through ``lda[bow]``, :meth:`get_document_topics`, :meth:`inference` or this method.

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
        iterations = (self.inference_iterations if iterations is None
                      else Integer(1).check("iterations", iterations))
        nwk, inv, alpha, offset = inference_tables(self)
        chunks = list(iter_chunks(corpus, self.num_terms, self.chunksize))
        fallbacks = np.zeros(len(chunks), np.int64)  # one counter per chunk (thread-safe)

        def fold(i):
            c = chunks[i]
            return K_.foldin(c.words, c.doc_ptr, nwk, inv, offset, alpha, iterations,
                             iterations // 2, self.spec.infer_seed, fallbacks[i:i + 1])

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

    def inference(self, chunk, collect_sstats: bool = False, *, iterations: int | None = None):
        """gensim's ``inference``: (gamma, sstats) of a chunk of documents, from Gibbs fold-in.

        gensim returns the variational Dirichlet parameters of each document and, when asked,
        the expected word-topic counts of the chunk. Their nearest Gibbs analogues are computed
        from :meth:`fold_in` (same answers, same seeding):

        - ``gamma[d, k] = alpha_k + E[n_dk]``, the document's expected topic counts under the
          fold-in's post-burn-in samples plus the prior, i.e. ``theta_d * (N_d + sum(alpha))``,
          so ``gamma / gamma.sum(1)`` is :meth:`fold_in`'s theta, as in gensim's normalisation;
        - ``sstats[k, w] = sum_d n_dw * p(k | d, w)`` with ``p(k | d, w)`` proportional to
          ``theta_dk * phi_kw`` (:meth:`get_topics`): the expected assignments of the chunk's
          tokens, summing to its number of tokens.

        Parameters
        ----------
        chunk : iterable of documents, or scipy.sparse matrix
            Bag-of-words documents (or sparse rows / count arrays); one document alone is
            taken as a chunk of one.
        collect_sstats : bool
            Also return ``sstats``; otherwise the second element is None.
        iterations : int, optional
            Fold-in sweeps (default ``inference_iterations``).

        Returns
        -------
        gamma : ndarray of shape (n_docs, num_topics), float64
        sstats : ndarray of shape (num_topics, num_terms), float64, or None

        Raises
        ------
        ValueError
            A malformed document or a word id outside the model's vocabulary.
        """
        if _is_single_doc(chunk) and not (isinstance(chunk, list) and not chunk):
            chunk = [chunk]
        X = _count_matrix(self, chunk)
        theta = self.fold_in(X, iterations)
        lengths = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        gamma = theta * (lengths + float(np.sum(self.alpha)))[:, None]
        if not collect_sstats:
            return gamma, None
        phi = self.get_topics()
        # ratio[d, w] = n_dw / sum_k theta_dk phi_kw on the non-zeros only: O(nnz K + K V).
        coo = X.tocoo()
        denom = np.einsum("ik,ki->i", theta[coo.row], phi[:, coo.col])
        ratio = sp.csr_matrix((coo.data / denom, (coo.row, coo.col)), shape=X.shape)
        sstats = np.asarray((ratio.T @ theta).T) * phi
        return gamma, sstats

    def __getitem__(self, bow):
        """Topics of one document, or a list of them for a corpus (gensim's ``lda[...]``)."""
        if _is_single_doc(bow):
            return self.get_document_topics(bow, per_word_topics=self.per_word_topics)
        return [self.get_document_topics(doc, per_word_topics=self.per_word_topics) for doc in bow]

    def log_perplexity(self, chunk, total_docs=None, iterations: int | None = None) -> float:
        """Held-out log-likelihood per token of the corpus ``chunk`` by document completion.

        Not gensim's variational bound: each document's tokens are split in halves, its topic
        mixture is folded in on one half and the other half is scored
        (:func:`distlda.evaluation.heldout_loglik`). Higher is better; perplexity is
        ``exp(-value)``. ``total_docs`` (gensim: scales the bound of a subsample) is
        not used: the value is per token already.
        """
        from distlda.evaluation import heldout_loglik
        iterations = self.inference_iterations if iterations is None else iterations
        ll = heldout_loglik(self.get_topics(), self.alpha, chunk, iterations=iterations,
                            random_state=self.spec.infer_seed, chunksize=self.chunksize)
        logger.info("%.3f per-token held-out log-likelihood (document completion), "
                    "perplexity %.1f", ll, math.exp(-ll))
        return ll

