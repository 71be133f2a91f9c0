"""The sample corpus bundled with distlda (docstrings of the Python standard library)."""

from __future__ import annotations

import importlib.resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dictionary import Dictionary
    from .textcorpus import TextCorpus

__all__ = ["SAMPLE_CORPUS_FILE", "load_sample", "sample_corpus_path"]

#: File name of the bundled corpus inside ``distlda/data/``; see ``distlda/data/README.rst``.
SAMPLE_CORPUS_FILE = "stdlib-docstrings.txt.gz"


def sample_corpus_path() -> str:
    """Return the filesystem path of the bundled sample corpus.

    A gzip'd UTF-8 text file, one document per line: the module, class and function
    docstrings of the CPython 3.11 standard library (PSF licence, see
    ``distlda/data/README.rst``). Read it with :class:`~distlda.corpora.TextCorpus`.

    Examples
    --------
    >>> from distlda.corpora import TextCorpus, sample_corpus_path
    >>> corpus = TextCorpus(sample_corpus_path())              # doctest: +SKIP
    """
    # distlda is installed as plain files (setuptools package data), so the resource has a
    # real path that stays valid after this call; as_file() would only be needed for zips.
    path = importlib.resources.files("distlda") / "data" / SAMPLE_CORPUS_FILE
    if not path.is_file():
        raise FileNotFoundError(2, "bundled sample corpus missing (broken install?)", str(path))
    return str(path)


def load_sample(no_below: int = 5, no_above: float = 0.5,
                keep_n: int | None = 100000) -> "tuple[TextCorpus, Dictionary]":
    """Return the bundled sample corpus and its vocabulary, ready for :class:`LdaModel`.

    Parameters
    ----------
    no_below, no_above, keep_n
        Vocabulary filters, as in :class:`~distlda.corpora.TextCorpus`.

    Returns
    -------
    corpus : TextCorpus
        3658 documents (one per docstring), streamed as bag-of-words lists.
    dictionary : Dictionary
        Its word <-> id mapping (``corpus.dictionary``), the model's ``id2word``.

    Examples
    --------
    >>> from distlda.corpora import load_sample
    >>> corpus, dictionary = load_sample()
    >>> len(corpus), len(dictionary)
    (3658, 2440)
    """
    from .textcorpus import TextCorpus
    corpus = TextCorpus(sample_corpus_path(), no_below=no_below, no_above=no_above, keep_n=keep_n)
    return corpus, corpus.dictionary
