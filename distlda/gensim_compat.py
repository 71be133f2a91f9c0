"""gensim's ``LdaModel`` API on a Gibbs model: the keywords and methods gensim code calls.

:class:`GensimCompatMixin` holds what :class:`distlda.models.LdaModel` offers so that code
written for ``gensim.models.LdaModel`` runs unchanged (``eta`` in gensim's shape; ``state``,
the Gibbs state, reads as gensim's ``LdaState``; ``get_document_topics`` with
``per_word_topics``, ``get_term_topics``, ``diff``, ``top_topics``, ``bound``, gensim's
``save``/``load`` keywords); :func:`gensim_keywords` maps the constructor's
variational-Bayes keywords. Each docstring says where a method means something other than in
gensim and why. docs/parity.rst is the table of all of it.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections import defaultdict

import numpy as np
import scipy.sparse as sp

from distlda.inference import inference_tables
from distlda.params import FRACTION, PARAM, _is_single_doc, _resolve_eta, refuse_auto

logger = logging.getLogger("distlda.models.ldamodel")

#: Variational-Bayes keywords of gensim's constructor and ``update`` that have no meaning for
#: a Gibbs sampler: accepted, and ignored with one warning naming the ones given.
VB_ONLY = ("update_every", "decay", "offset", "gamma_threshold", "chunks_as_numpy")

_MMAP = (None, "r", "r+", "w+", "c")
#: ``save(ignore=...)`` names that never are in a model file anyway.
_UNSAVED = {"state", "dispatcher", "callbacks", "history", "metrics", "executor_info"}


def warn_vb_only(given: dict) -> None:
    """One warning naming the variational-Bayes keywords that were given (not None)."""
    named = [f"{k}={v!r}" for k, v in given.items() if v is not None and v is not False]
    if named:
        warnings.warn(f"LdaModel: {', '.join(named)}: gensim's variational-Bayes settings, "
                      f"which a Gibbs sampler ignores", UserWarning,
                      stacklevel=3)


def sweeps_for(passes, iterations: int) -> int:
    """The number of Gibbs sweeps for gensim's ``passes`` and ``iterations``.

    A Gibbs sweep is one pass over the corpus that resamples every token, so each of gensim's
    ``passes`` is at least one sweep; gensim's ``iterations`` (E-step rounds per document per
    pass) is distlda's number of sweeps. The model runs ``max(passes, iterations)`` sweeps and
    logs that choice once.
    """
    if passes is None:
        return iterations
    passes = PARAM["passes"].resolve(passes)
    sweeps = max(passes, iterations)
    logger.info("passes=%d, iterations=%d: %d Gibbs sweeps (a sweep is one pass over the "
                "corpus; distlda runs max(passes, iterations) of them)", passes, iterations,
                sweeps)
    return sweeps


def is_gensim_metric(obj) -> bool:
    """True for a gensim ``callbacks.Metric`` (CoherenceMetric, PerplexityMetric, ...)."""
    return callable(getattr(obj, "get_value", None)) and hasattr(obj, "logger")


class MetricsCallback:
    """Runs gensim ``Metric`` objects through gensim's ``Callback`` once per gensim pass.

    gensim evaluates its callbacks at the end of every pass; here the ``passes`` evaluations
    are spread evenly over the sweeps of a training (at sweeps ``ceil(j * S / passes)``,
    j = 1..passes), and their values are appended to ``model.metrics`` as gensim does.
    """

    def __init__(self, model, metrics: list, sweeps: int, passes: int):
        from gensim.models.callbacks import Callback
        self.callback = Callback(metrics)
        self.callback.set_model(model)
        model.metrics = defaultdict(list)
        passes = max(1, min(passes, sweeps))
        self.at = {math.ceil(j * sweeps / passes) for j in range(1, passes + 1)}
        self.done = 0
        self.epoch = 0

    def __call__(self, model, stats) -> None:
        self.done += 1
        if self.done in self.at:
            for name, value in self.callback.on_epoch_end(self.epoch).items():
                model.metrics[name].append(value)
            self.epoch += 1


def _doc_result(model, bow, theta, table, minimum_probability, minimum_phi_value,
                per_word_topics):
    """gensim's ``get_document_topics`` value of one document from its folded-in ``theta``."""
    dtype = model.dtype
    topics = [(k, dtype(p)) for k, p in enumerate(theta) if p >= minimum_probability]
    if not per_word_topics:
        return topics
    word_topic, word_phi = [], []
    ptable, inv, _, offset = table
    for word_id, weight in bow:
        resp = theta * ((ptable[int(word_id)] + offset) * inv)  # theta_k p(w | k)
        resp *= float(weight) / resp.sum()  # gensim's phis are weighted by the count
        keep = [k for k in range(model.num_topics) if resp[k] >= minimum_phi_value]
        word_phi.append((int(word_id), [(k, dtype(resp[k])) for k in keep]))
        word_topic.append((int(word_id), sorted(keep, key=lambda k: -resp[k])))
    return topics, word_topic, word_phi


def _row_bow(row) -> list:
    """One row of a CSR matrix as a bag of words (a copy, duplicates summed)."""
    row = row.tocsr()
    row.sum_duplicates()
    return [(int(i), float(v)) for i, v in zip(row.indices, row.data) if v]


class TransformedCorpus:
    """A corpus seen through ``get_document_topics`` (gensim's ``TransformedCorpus``).

    Iterating folds the documents in ``chunksize`` at a time; ``len()`` and ``corpus[i]``
    work when the underlying corpus has them.
    """

    def __init__(self, model, corpus, options: dict):
        self.model, self.corpus, self.options = model, corpus, options

    def __len__(self) -> int:
        shape = getattr(self.corpus, "shape", None)
        return int(shape[0]) if shape is not None and len(shape) == 2 else len(self.corpus)

    def __getitem__(self, docno):
        if sp.issparse(self.corpus):
            row = self.corpus[docno].tocsr()
            return next(iter(self._batch([_row_bow(row)])))
        return self.model.get_document_topics(self.corpus[docno], **self.options)

    def __iter__(self):
        if sp.issparse(self.corpus):  # documents x words counts: row batches
            m = self.corpus.tocsr()
            for a in range(0, m.shape[0], self.model.chunksize):
                block = m[a:a + self.model.chunksize]
                yield from self._batch([_row_bow(block[i]) for i in range(block.shape[0])])
            return
        batch: list = []
        for doc in self.corpus:
            batch.append(list(doc))
            if len(batch) >= self.model.chunksize:
                yield from self._batch(batch)
                batch = []
        if batch:
            yield from self._batch(batch)

    def _batch(self, docs):
        theta = self.model.fold_in(docs)
        table = inference_tables(self.model)
        o = self.options
        for bow, row in zip(docs, theta):
            yield _doc_result(self.model, bow, row, table, o["minimum_probability"],
                              o["minimum_phi_value"], o["per_word_topics"])


def _distance_matrix(distance: str, d1, d2, diagonal: bool) -> np.ndarray:
    """Pairwise distances between the rows of d1 and d2 (or row i with row i)."""
    from scipy.special import rel_entr
    pairs = [(i, i) for i in range(len(d1))] if diagonal else \
        [(i, j) for i in range(len(d1)) for j in range(len(d2))]
    out = np.zeros(len(pairs))
    for n, (i, j) in enumerate(pairs):
        if distance == "jaccard":
            union = len(d1[i] | d2[j])
            out[n] = 1.0 - len(d1[i] & d2[j]) / union if union else 0.0
            continue
        p = d1[i] / d1[i].sum()
        q = d2[j] / d2[j].sum()
        if distance == "kullback_leibler":
            out[n] = rel_entr(p, q).sum()
        elif distance == "hellinger":
            out[n] = math.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum())
        else:  # jensen_shannon
            m = 0.5 * (p + q)
            out[n] = 0.5 * (rel_entr(p, m).sum() + rel_entr(q, m).sum())
    return out if diagonal else out.reshape(len(d1), len(d2))


class GensimCompatMixin:
    """gensim's LdaModel methods and attributes on a Gibbs model (see the module docstring)."""

    # ------------------------------------------------------------------ priors
    @property
    def eta(self) -> np.ndarray:
        """The topic-word prior in gensim's shape.

        An ndarray of shape (num_terms,), float64, for a scalar or per-word eta (every topic
        the same prior); of shape (num_topics, num_terms) for a topics x words eta. A copy:
        assign to ``eta`` to change the prior.
        """
        return self.state.eta

    @eta.setter
    def eta(self, value) -> None:
        refuse_auto("eta", value)
        self.state.set_beta(_resolve_eta(value, self.num_topics, self.num_terms))

    def sync_state(self, current_Elogbeta=None) -> None:
        """Nothing to do: gensim caches ``expElogbeta`` from ``state``, and here every
        topic view is read from the Gibbs counts when asked for."""

    @property
    def expElogbeta(self) -> np.ndarray:
        """``exp(state.get_Elogbeta())``, shape (K, V), as gensim's attribute of that name."""
        return np.exp(self.state.get_Elogbeta())

    # ------------------------------------------------------------------ documents
    def get_document_topics(self, bow, minimum_probability: float | None = None,
                            minimum_phi_value: float | None = None,
                            per_word_topics: bool = False):
        """Topic distribution of a document by Gibbs fold-in, with gensim's return shapes.

        Parameters
        ----------
        bow : list of (int, number), or a corpus of them
            One bag-of-words document; anything else iterable is taken as a corpus and a
            lazily transformed corpus is returned (as gensim's ``TransformedCorpus``).
        minimum_probability : float, optional
            Topics below it are left out (default: the model's). 0 means every topic; unlike
            gensim it is not raised to 1e-8.
        minimum_phi_value : float, optional
            With ``per_word_topics``: per-word topic values below it are left out (default:
            the model's ``minimum_phi_value``); 0 keeps all.
        per_word_topics : bool
            Also return, per word, its topics by relevance and its phi values:
            ``theta_k p(w | k)`` normalised over k and multiplied by the word's count (gensim's
            count-weighted phis).

        Returns
        -------
        list of (int, float), or a triple of lists with ``per_word_topics``
            ``(topics, [(word_id, [topic, ...]), ...], [(word_id, [(topic, phi), ...]), ...])``.
            The values are numpy scalars of the model's ``dtype``.
        """
        mp = FRACTION.check("minimum_probability",
                            self.minimum_probability if minimum_probability is None
                            else minimum_probability)
        phi = self.minimum_phi_value if minimum_phi_value is None else minimum_phi_value
        phi = FRACTION.check("minimum_phi_value", phi)
        if not _is_single_doc(bow):
            return TransformedCorpus(self, bow, dict(minimum_probability=mp,
                                                     minimum_phi_value=phi,
                                                     per_word_topics=bool(per_word_topics)))
        theta = self.fold_in([bow])[0]
        return _doc_result(self, bow, theta, inference_tables(self), mp, phi,
                           per_word_topics)

    def get_term_topics(self, word_id, minimum_probability: float | None = None):
        """Topics of a word as [(topic_id, p(word | topic)), ...] in topic order, as gensim's.

        Parameters
        ----------
        word_id : int or str
            A word id, or a word of ``id2word``.
        minimum_probability : float, optional
            Topics where the word's probability is below it are left out (default: the
            model's; 0 keeps every topic).

        Raises
        ------
        KeyError
            A word that is not in the vocabulary.
        """
        mp = FRACTION.check("minimum_probability",
                            self.minimum_probability if minimum_probability is None
                            else minimum_probability)
        if isinstance(word_id, str):
            ids = [i for i, w in self.id2word.items() if w == word_id]
            if not ids:
                raise KeyError(f"word {word_id!r} is not in the model's vocabulary")
            word_id = ids[0]
        if isinstance(word_id, bool) or not isinstance(word_id, numbers.Integral) \
                or not 0 <= word_id < self.num_terms:
            raise KeyError(f"word id {word_id!r} is not in [0, {self.num_terms})")
        table, inv, _, offset = inference_tables(self)
        col = (table[int(word_id)] + offset) * inv
        return [(k, self.dtype(p)) for k, p in enumerate(col) if p >= mp]

    def bound(self, corpus, gamma=None, subsample_ratio: float = 1.0) -> float:
        """An estimate of log p(corpus): the held-out log-likelihood per token
        (:meth:`log_perplexity`, document completion) times the corpus's tokens.

        gensim's is the variational lower bound; ``gamma`` and ``subsample_ratio`` belong to
        it and are not used. gensim's ``PerplexityMetric`` divides this by the token count.
        """
        from distlda.gibbs.chunks import iter_chunks
        tokens = sum(c.num_tokens for c in iter_chunks(corpus, self.num_terms, self.chunksize))
        return self.log_perplexity(corpus) * tokens

    def print_topic(self, topicno: int, topn: int = 10) -> str:
        """One topic as gensim's ``'0.051*"word" + ...'`` string."""
        return " + ".join(f'{p:.3f}*"{w}"' for w, p in self.show_topic(topicno, topn))

    # ------------------------------------------------------------------ comparing topics
    def diff(self, other, distance: str = "kullback_leibler", num_words: int = 100,
             n_ann_terms: int = 10, diagonal: bool = False, annotation: bool = True,
             normed: bool = True):
        """Distances between the topics of this model and ``other``, as gensim's ``diff``.

        Parameters
        ----------
        other : LdaModel, or a gensim topic model
            Anything with ``get_topics()`` and ``show_topic()``.
        distance : {"kullback_leibler", "hellinger", "jaccard", "jensen_shannon"}
            "jaccard" compares the sets of each topic's ``num_words`` top words.
        num_words, n_ann_terms : int
            Top words per topic (for "jaccard" and annotations); words per annotation list.
        diagonal : bool
            Only topic i against topic i (both models need the same number of topics).
        annotation : bool
            Also return, per pair, [common top words, top words of only one of the two].
        normed : bool
            Divide by the largest value (when it is not ~0).

        Returns
        -------
        mdiff : ndarray of shape (K1, K2), or (K,) with ``diagonal``
        annotation : ndarray of lists of the same shape, or None

        Raises
        ------
        ValueError
            An unknown distance, or ``diagonal`` with different numbers of topics.
        """
        kinds = ("kullback_leibler", "hellinger", "jaccard", "jensen_shannon")
        if distance not in kinds:
            raise ValueError(f"Incorrect distance {distance!r}, valid only {', '.join(kinds)}")
        d1, d2 = self.get_topics(), np.asarray(other.get_topics(), dtype=np.float64)
        if d1.shape[1] != d2.shape[1]:
            raise ValueError(f"the models have {d1.shape[1]} and {d2.shape[1]} words: diff "
                             f"compares topics over the same vocabulary")
        if diagonal and d1.shape[0] != d2.shape[0]:
            raise ValueError(f"diagonal=True needs as many topics in both models, not "
                             f"{d1.shape[0]} and {d2.shape[0]}")
        top1 = [[w for w, _ in self.show_topic(k, topn=num_words)] for k in range(len(d1))]
        top2 = [[w for w, _ in other.show_topic(k, topn=num_words)] for k in range(len(d2))]
        sets1, sets2 = [set(t) for t in top1], [set(t) for t in top2]
        z = _distance_matrix(distance, *((sets1, sets2) if distance == "jaccard" else (d1, d2)),
                             diagonal)
        terms = None
        if annotation:
            terms = np.zeros(z.shape, dtype=list)
            for idx in np.ndindex(z.shape):
                i, j = idx[0], idx[0] if diagonal else idx[1]
                pos = [w for w in top1[i] if w in sets2[j]][:n_ann_terms]
                neg = ([w for w in top1[i] if w not in sets2[j]]
                       + [w for w in top2[j] if w not in sets1[i]])[:n_ann_terms]
                terms[idx] = [pos, neg]
        if normed and np.abs(np.max(z)) > 1e-8:
            z = z / np.max(z)
        return z, terms

    def top_topics(self, corpus=None, texts=None, dictionary=None, window_size=None,
                   coherence: str = "u_mass", topn: int = 20, processes: int = -1):
        """Topics sorted by coherence, best first, as gensim's ``top_topics``.

        Coherence is computed by gensim's ``CoherenceModel`` (``pip install gensim``), with
        the same parameters as there: ``corpus`` for "u_mass", ``texts`` for "c_v",
        "c_uci" and "c_npmi"; ``dictionary`` defaults to the model's ``id2word``.

        Returns
        -------
        list of (list of (float, str), float)
            Per topic its ``topn`` (probability, word) pairs and its coherence.

        Raises
        ------
        ImportError
            gensim is not installed.
        """
        try:
            from gensim.models import CoherenceModel
        except ImportError as e:
            raise ImportError("top_topics computes coherence with gensim's CoherenceModel: "
                              "pip install gensim") from e
        cm = CoherenceModel(model=self, corpus=corpus, texts=texts, dictionary=dictionary,
                            window_size=window_size, coherence=coherence, topn=topn,
                            processes=processes)
        scores = cm.get_coherence_per_topic()
        shown = []
        for row in self.get_topics():
            best = np.argsort(-row, kind="stable")[:topn]
            shown.append([(self.dtype(row[i]), self.id2word.get(int(i), str(int(i))))
                          for i in best])
        return sorted(zip(shown, scores), key=lambda t: t[1], reverse=True)

    # ------------------------------------------------------------------ persistence
    def save(self, fname: str, ignore=("state", "dispatcher"), separately=None,
             sep_limit: int = 10 * 1024 ** 2, pickle_protocol: int = 4, *args, **kwargs) -> None:
        """Save the whole model, Gibbs state included, to a local path or smart_open URI.

        The file is a NumPy ``.npz`` archive (arrays plus one JSON metadata entry) in format
        version :data:`distlda.persistence.FORMAT_VERSION`, and is loaded without
        unpickling anything, so a model file cannot run code.

        gensim's keywords are accepted. ``ignore`` (gensim: attributes left out) may name
        "id2word", which saves the model without its vocabulary (as gensim); everything else
        is the Gibbs state, which is the model and cannot be left out: gensim's default
        names and attributes never saved (callbacks, history, metrics) pass silently, other
        names with a warning. ``separately``/``sep_limit`` (gensim: arrays in separate files, for
        ``mmap``) and ``pickle_protocol`` have nothing to act on: one archive, no pickle.
        """
        from distlda import persistence as _file
        names = set([ignore] if isinstance(ignore, str) else ignore or ())
        extra = sorted(names - _UNSAVED - {"id2word"})
        if extra or args or kwargs:
            warnings.warn(f"LdaModel.save writes the whole model: ignore={extra!r} and extra "
                          f"arguments {list(args) + sorted(kwargs)!r} have no effect",
                          UserWarning, stacklevel=2)
        _file.save_model(self, fname, with_id2word="id2word" not in names)

    @classmethod
    def load(cls, fname: str, mmap: str | None = None, *args, **kwargs):
        """Load a model written by :meth:`save` (local path or smart_open URI).

        Files of every format version in :data:`distlda.persistence.SUPPORTED_VERSIONS`
        load; fields an older version lacks take the defaults documented in
        :mod:`distlda.persistence`. ``mmap`` (gensim: memory-map the arrays) is accepted
        with gensim's values (None, "r", "r+", "w+", "c"); the archive is compressed, so
        the arrays are always read into memory.

        Raises
        ------
        ValueError
            (:class:`~distlda.persistence.ModelFileError`) naming ``fname`` and the
            problem, for any file that is damaged (cut short, a changed byte, a missing
            array or field, inconsistent counts), not a distlda model file, or of an
            unsupported format version; also an ``mmap`` value gensim does not take.
        OSError
            The file cannot be opened (e.g. it does not exist).
        """
        from distlda import persistence as _file
        if mmap not in _MMAP:
            raise ValueError(f"Invalid 'mmap' parameter: {mmap!r} (use one of {_MMAP})")
        return _file.load_model(cls, fname)
