"""A scikit-learn estimator for collapsed-Gibbs LDA: :class:`GibbsLDA`.

It wraps :class:`distlda.models.LdaModel` (always ``distributed=False`` unless asked) behind
scikit-learn's estimator API, so it goes behind a ``CountVectorizer`` in a ``Pipeline`` and
into ``GridSearchCV``. scikit-learn is needed only to import this module
(``pip install "distlda[interop]"``).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from distlda.gibbs.local import available_cores

__all__ = ["GibbsLDA"]


#: scikit-learn's variational-Bayes settings, accepted and ignored (with a warning when set).
_VB_DEFAULTS = dict(learning_method="batch", learning_decay=0.7, learning_offset=10.0,
                    batch_size=128, evaluate_every=-1, total_samples=1e6, perp_tol=1e-1,
                    mean_change_tol=1e-3, max_doc_update_iter=100)


class GibbsLDA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Latent Dirichlet Allocation by sparse collapsed Gibbs sampling, as a scikit-learn
    transformer (documents x words counts -> documents x topics mixtures).

    The parameter names follow ``sklearn.decomposition.LatentDirichletAllocation``.

    Parameters
    ----------
    n_components : int, default 10
        Number of topics K.
    doc_topic_prior : float, array-like of shape (n_components,), "symmetric", "asymmetric",
        "auto" or None, default None
        alpha; None is 1/K per topic (as scikit-learn).
    topic_word_prior : float or None, default None
        eta; None is distlda's default (0.01, better than 1/K for Gibbs on large vocabularies).
    max_iter : int, default 200
        Gibbs sweeps over the training documents.
    inference_iterations : int, default 50
        Fold-in sweeps of :meth:`transform` and :meth:`score`.
    sampler : {"auto", "sparse", "dense", "mh"}, default "auto"
        See :class:`~distlda.models.LdaModel`.
    n_jobs : int or None, default None
        Threads for training and fold-in: None is 1, -1 all cores this process may use,
        -2 all but one, and so on (scikit-learn's convention).
    random_state : int, RandomState, Generator or None
        Seeds training and inference; with an int, fitting twice gives the same model
        (for the same ``n_jobs``).
    distributed : bool, default False
        False never touches the network; True trains on a Pyro5 cluster (see
        :doc:`/distributed`); None: a cluster if one is found.
    non_integer : {"error", "round"}, default "error"
        Gibbs sampling needs integer counts. "error" raises ValueError on a non-integer
        count (e.g. tf-idf weights); "round" rounds them to the nearest integer.
    learning_method, learning_decay, learning_offset, batch_size, evaluate_every, \
    total_samples, perp_tol, mean_change_tol, max_doc_update_iter, verbose
        scikit-learn's variational-Bayes settings: accepted so that its code runs
        unchanged, and ignored (``fit`` warns once naming those set to other than
        scikit-learn's defaults); ``max_iter`` sets the number of sweeps.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features), float64
        Topic-word pseudo-counts ``n_kw + eta`` (gensim's lambda); each row normalised is
        the topic's word distribution (``model_.get_topics()``).
    model_ : distlda.models.LdaModel
        The trained model (topics, ``document_topics()`` of the training documents, save...).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a pandas DataFrame (also used as the model's vocabulary).
    n_iter_ : int
        Sweeps run.

    Notes
    -----
    ``fit_transform(X)`` is ``fit(X).transform(X)`` (fold-in with the trained topics), so it
    agrees with ``transform``; the Gibbs mixtures of the training documents themselves are
    ``model_.document_topics()``. ``score`` and ``perplexity`` are held-out measures by
    document completion (:meth:`distlda.models.LdaModel.log_perplexity`), not scikit-learn's
    variational bound.

    ``sklearn.utils.estimator_checks.check_estimator`` (scikit-learn 1.9.1) passes all 48
    checks with ``non_integer="round"`` (their test data are random reals) but one it skips
    itself: ``check_array_api_input``, run only with ``SCIPY_ARRAY_API=1`` (GibbsLDA takes
    numpy and scipy inputs only: its numba kernels need numpy arrays). With the default
    ``non_integer="error"`` the 30 checks feeding such reals get the non-integer
    ValueError, by design.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import CountVectorizer
    >>> from sklearn.pipeline import make_pipeline
    >>> texts = ["socket network bytes", "file path read", "socket send bytes"] * 5
    >>> pipe = make_pipeline(CountVectorizer(), GibbsLDA(n_components=2, max_iter=20,
    ...                                                  random_state=0))
    >>> pipe.fit_transform(texts).shape
    (15, 2)
    """

    def __init__(self, n_components: int = 10, *, doc_topic_prior=None, topic_word_prior=None,
                 max_iter: int = 200, inference_iterations: int = 50, sampler: str = "auto",
                 n_jobs: int | None = None, random_state=None, distributed: bool | None = False,
                 non_integer: str = "error", learning_method: str = "batch",
                 learning_decay: float = 0.7, learning_offset: float = 10.0,
                 batch_size: int = 128, evaluate_every: int = -1, total_samples: float = 1e6,
                 perp_tol: float = 1e-1, mean_change_tol: float = 1e-3,
                 max_doc_update_iter: int = 100, verbose: int = 0):
        # the variational-Bayes settings of scikit-learn's LatentDirichletAllocation are
        # accepted so that its code runs unchanged; a Gibbs sampler has no use for them
        self.learning_method = learning_method
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.batch_size = batch_size
        self.evaluate_every = evaluate_every
        self.total_samples = total_samples
        self.perp_tol = perp_tol
        self.mean_change_tol = mean_change_tol
        self.max_doc_update_iter = max_doc_update_iter
        self.verbose = verbose
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.max_iter = max_iter
        self.inference_iterations = inference_iterations
        self.sampler = sampler
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.distributed = distributed
        self.non_integer = non_integer

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    # ------------------------------------------------------------------ helpers
    def _threads(self) -> int:
        n = self.n_jobs
        if n is None:
            return 1
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n == 0:
            raise ValueError(f"Invalid 'n_jobs' parameter: {n!r} (None, a positive int, or -1 "
                             f"for all cores)")
        return int(n) if n > 0 else max(1, available_cores() + 1 + int(n))

    def _counts(self, X, reset: bool) -> sp.csr_matrix:
        """X validated (finite, non-negative, integer counts) as CSR float64."""
        X = validate_data(self, X, reset=reset, accept_sparse="csr", dtype=np.float64)
        X = sp.csr_matrix(X, dtype=np.float64, copy=True)
        check_non_negative(X, f"{type(self).__name__} (input X)")
        if self.non_integer not in ("error", "round"):
            raise ValueError(f"Invalid 'non_integer' parameter: {self.non_integer!r} "
                             f"(use 'error' or 'round')")
        frac = X.data != np.rint(X.data)
        if frac.any():
            if self.non_integer == "error":
                raise ValueError(f"X holds non-integer counts (e.g. {X.data[frac][0]!r}): Gibbs "
                                 f"LDA needs word counts (CountVectorizer, not tf-idf); pass "
                                 f"non_integer='round' to round them")
            X.data = np.rint(X.data)
            X.eliminate_zeros()
        return X

    # ------------------------------------------------------------------ estimator API
    def fit(self, X, y=None):
        """Train on a documents x words count matrix.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Non-negative integer word counts.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Negative, non-finite or (with ``non_integer="error"``) non-integer counts, no
            tokens at all, or a parameter out of its range (named in the message).
        """
        from distlda.models import LdaModel
        from distlda.params import Integer
        Integer(1).check("n_components", self.n_components)
        changed = sorted(k for k, v in _VB_DEFAULTS.items() if getattr(self, k) != v)
        if changed:
            warnings.warn(f"GibbsLDA ignores {', '.join(changed)}: they tune scikit-learn's "
                          f"variational Bayes, not a Gibbs sampler (max_iter sets the sweeps)",
                          UserWarning, stacklevel=2)
        X = self._counts(X, reset=True)
        alpha = "symmetric" if self.doc_topic_prior is None else self.doc_topic_prior
        names = getattr(self, "feature_names_in_", None)
        self.model_ = LdaModel(
            X, num_topics=self.n_components, id2word=None if names is None else list(names),
            alpha=alpha, eta=self.topic_word_prior, iterations=self.max_iter,
            inference_iterations=self.inference_iterations, sampler=self.sampler,
            workers=self._threads(), random_state=self.random_state,
            distributed=self.distributed, eval_every=0, progress=False)
        self.components_ = self.model_.sstats.astype(np.float64) + self.model_.eta
        self.n_iter_ = self.max_iter
        return self

    def transform(self, X) -> np.ndarray:
        """Topic mixtures of documents by Gibbs fold-in with the trained topics.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components), float64
            Rows sum to 1 (an empty document gets the normalised prior).
        """
        check_is_fitted(self)
        X = self._counts(X, reset=False)
        self.model_.workers = self._threads()
        return self.model_.fold_in(X)

    def score(self, X, y=None) -> float:
        """Held-out log-likelihood per token by document completion (higher is better).

        Returns
        -------
        float
        """
        check_is_fitted(self)
        X = self._counts(X, reset=False)
        if X.sum() == 0:
            raise ValueError("X holds no tokens to score")
        return float(self.model_.log_perplexity(X))

    def perplexity(self, X) -> float:
        """``exp(-score(X))``: held-out perplexity per token (lower is better)."""
        return float(np.exp(-self.score(X)))

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]
