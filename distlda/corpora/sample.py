"""The sample corpus bundled with distlda (docstrings of the Python standard library)."""

from __future__ import annotations

import importlib.resources

__all__ = ["SAMPLE_CORPUS_FILE", "sample_corpus_path"]

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
