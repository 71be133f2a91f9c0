"""The model's ``id2word``: a word-id -> word ``dict`` that also answers gensim's ``Dictionary`` calls.

gensim's consumers (``CoherenceModel``, ``pyLDAvis.gensim_models``, ``top_topics``) read
``model.id2word`` as a ``gensim.corpora.Dictionary``: ``id2token``, ``token2id``,
``doc2bow``, ``len``, ``[]``, ``items``, ``keys``. :class:`Vocabulary` is a ``dict``
(so everything that reads it as a mapping keeps working, and it is saved as the same list of
``[id, word]`` pairs) with those attributes added.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

__all__ = ["Vocabulary"]


class Vocabulary(dict):
    """Word id -> word, with gensim ``Dictionary``'s read-only attributes.

    Parameters
    ----------
    items : iterable of (int, str) or mapping of int to str
        The words by id; ids need not be contiguous.
    dfs, cfs : dict of int -> int, optional
        Document and collection frequencies, kept when the vocabulary came from a
        ``Dictionary`` that had them (not saved with the model).
    num_docs : int
        Documents the source ``Dictionary`` had processed (0 when not known).

    Attributes
    ----------
    id2token : Vocabulary
        The vocabulary itself (gensim's ``Dictionary.id2token``).
    token2id : dict of str -> int
        Word -> id; a word listed under several ids maps to the smallest one.

    Examples
    --------
    >>> v = Vocabulary(enumerate(["cat", "dog"]))
    >>> v[1], v.token2id["cat"], len(v)
    ('dog', 0, 2)
    >>> v.doc2bow(["dog", "cat", "dog", "emu"])
    [(0, 1), (1, 2)]
    """

    def __init__(self, items: Iterable = (), dfs: dict | None = None, cfs: dict | None = None,
                 num_docs: int = 0):
        super().__init__(items)
        self.dfs = dict(dfs or {})
        self.cfs = dict(cfs or {})
        self.num_docs = int(num_docs or 0)
        self._token2id: dict[str, int] | None = None
        self._built_for = -1

    @property
    def id2token(self) -> "Vocabulary":
        return self

    @property
    def token2id(self) -> dict[str, int]:
        # Rebuilt when the mapping was changed in place (a user adding a word by hand).
        if self._token2id is None or self._built_for != len(self):
            t2i: dict[str, int] = {}
            for i in sorted(self, reverse=True):
                t2i[self[i]] = i
            self._token2id = dict(sorted(t2i.items(), key=lambda t: t[1]))
            self._built_for = len(self)
        return self._token2id

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self._token2id = None

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self._token2id = None

    @property
    def num_pos(self) -> int:
        """Corpus positions the source ``Dictionary`` processed (from ``cfs``; 0 if unknown)."""
        return sum(self.cfs.values())

    @property
    def num_nnz(self) -> int:
        """Sum of document frequencies (from ``dfs``; 0 if unknown)."""
        return sum(self.dfs.values())

    def check_width(self, num_terms: int) -> None:
        """Raise ValueError when a word id is ``num_terms`` or more (a model of V words)."""
        if self and max(self) >= num_terms:
            raise ValueError(f"id2word has word id {max(self)}, beyond num_terms={num_terms}")

    def doc2bow(self, document: Iterable[str]) -> list[tuple[int, int]]:
        """A tokenised document as sorted (word_id, count) pairs; unknown words are dropped.

        Raises
        ------
        TypeError
            If ``document`` is a single string (gensim's rule: pass a list of tokens).
        """
        if isinstance(document, str):
            raise TypeError("doc2bow expects a list of tokens (e.g. text.split()), not a string")
        t2i = self.token2id
        counts = Counter(t2i[w] for w in document if w in t2i)
        return sorted(counts.items())

    def doc2idx(self, document: Iterable[str], unknown_word_index: int = -1) -> list[int]:
        """The id of each token of ``document`` (``unknown_word_index`` for unknown ones)."""
        if isinstance(document, str):
            raise TypeError("doc2idx expects a list of tokens (e.g. text.split()), not a string")
        t2i = self.token2id
        return [t2i.get(w, unknown_word_index) for w in document]

    def __reduce__(self):
        # pickle (multiprocessing, joblib) keeps the class and the frequencies.
        return (Vocabulary, (list(self.items()), self.dfs, self.cfs, self.num_docs))

    def __repr__(self) -> str:
        head = ", ".join(f"{i}: {w!r}" for i, w in list(self.items())[:5])
        more = ", ..." if len(self) > 5 else ""
        return f"Vocabulary<{len(self)} words: {{{head}{more}}}>"
