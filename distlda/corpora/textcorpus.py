"""Bag-of-words corpus from a plain text file holding one document per line.

Tokenisation (:func:`tokenize`) is deliberately simple and documented, so results are easy to
reproduce elsewhere:

1. lowercase the line;
2. take the maximal matches of ``[a-z][a-z0-9]*(?:_[a-z0-9]+)*``: ASCII words starting with
   a letter, digits allowed, ``snake_case`` identifiers kept whole, surrounding underscores
   dropped (``__init__`` -> ``init``); anything else separates tokens;
3. drop tokens shorter than 3 characters and the English stop words in :data:`STOPWORDS`.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterator

from ._triplets import open_binary
from .dictionary import Dictionary

__all__ = ["TextCorpus", "tokenize", "STOPWORDS"]

TOKEN_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MIN_TOKEN_LEN = 3

#: English stop words removed by :func:`tokenize`: function words, auxiliaries and the
#: fragments left by splitting contractions on the apostrophe ("don't" -> "don").
STOPWORDS = frozenset("""
a about above across after afterwards again against all almost alone along already also
although always am among amongst an and another any anybody anyhow anyone anything anyway
anywhere are aren around as at be became because become becomes becoming been before
beforehand behind being below beside besides between beyond both but by can cannot could
couldn did didn do does doesn doing don done down due during each either else elsewhere
enough etc even ever every everyone everything everywhere except few for former formerly
from further had hadn has hasn have haven having he hence her here hereafter hereby herein
hers herself him himself his how however i ie if in indeed instead into is isn it its itself
just least less let like ll many may me meanwhile might mine more moreover most mostly much
must mustn my myself namely neither never nevertheless next no nobody none noone nor not
nothing now nowhere of off often on once one only onto or other others otherwise our ours
ourselves out over own per perhaps please quite rather re same shall shan she should
shouldn since so some somehow someone something sometime sometimes somewhere still such than
that the their theirs them themselves then thence there thereafter thereby therefore therein
thereupon these they this those though through throughout thru thus to together too toward
towards under unless until up upon us very via was wasn we well were weren what whatever when
whence whenever where whereafter whereas whereby wherein whereupon wherever whether which
while whither who whoever whole whom whose why will with within without won would wouldn yet
you your yours yourself yourselves ve
""".split())


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lowercase tokens as described in the module docstring.

    Examples
    --------
    >>> tokenize("Return the socket's __init__ value; don't use os.get_terminal_size()!")
    ['return', 'socket', 'init', 'value', 'use', 'get_terminal_size']
    """
    return [t for t in TOKEN_RE.findall(text.lower())
            if len(t) >= MIN_TOKEN_LEN and t not in STOPWORDS]


class TextCorpus:
    """A text file with one document per line, streamed as bag-of-words documents.

    Every line of the file is one document, and document ``i`` of the corpus is line
    ``i + 1`` of the file: a line with no tokens left after tokenisation and dictionary
    filtering yields an empty document ``[]`` rather than being skipped. Lines end at
    ``\\n`` only (a stray ``\\r`` does not start a new document).

    Parameters
    ----------
    fname : str or os.PathLike
        Path or smart_open URI of a UTF-8 text file (``.gz``/``.bz2`` are decompressed).
    dictionary : Dictionary, optional
        Word <-> id mapping to use as is. If None, one pass over the file builds it and
        filters it with ``filter_extremes(no_below, no_above, keep_n)``.
    no_below : int, default 5
        Drop words in fewer than ``no_below`` documents (only when building the dictionary).
    no_above : float, default 0.5
        Drop words in more than this fraction of documents (same). Use ``no_below=1,
        no_above=1.0, keep_n=None`` to keep every token.
    keep_n : int or None, default 100000
        Keep at most this many of the most document-frequent words (same).
    tokenizer : callable, default :func:`tokenize`
        Function ``str -> list of str`` applied to each line.

    Attributes
    ----------
    fname : str
    dictionary : Dictionary
        The mapping used to convert tokens to ids (``id2word`` for a model).
    num_docs : int
        Number of documents (lines) in the file.

    Raises
    ------
    FileNotFoundError
        If a local ``fname`` does not exist.
    ValueError
        If a line is not valid UTF-8 (the message names the file and line).

    Examples
    --------
    >>> from distlda.corpora import TextCorpus, sample_corpus_path
    >>> corpus = TextCorpus(sample_corpus_path())              # doctest: +SKIP
    >>> len(corpus), len(corpus.dictionary)                     # doctest: +SKIP
    """

    def __init__(self, fname: str | os.PathLike, dictionary: Dictionary | None = None,
                 no_below: int = 5, no_above: float = 0.5, keep_n: int | None = 100000,
                 tokenizer: Callable[[str], list[str]] = tokenize):
        self.fname = os.fspath(fname)
        self.tokenizer = tokenizer
        self._num_docs: int | None = None
        if dictionary is None:
            dictionary = Dictionary(self.get_texts())
            self._num_docs = dictionary.num_docs
            dictionary.filter_extremes(no_below=no_below, no_above=no_above, keep_n=keep_n)
        else:
            open_binary(self.fname).close()  # fail now, not on first iteration, if missing
        self.dictionary = dictionary

    def get_lines(self) -> Iterator[str]:
        """Yield the decoded lines of the file, without the line terminator."""
        with open_binary(self.fname) as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    yield raw.rstrip(b"\r\n").decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(f"{self.fname} line {lineno}: not valid UTF-8 ({e})") from None

    def get_texts(self) -> Iterator[list[str]]:
        """Yield each document as its list of tokens (before dictionary filtering)."""
        tok = self.tokenizer
        for line in self.get_lines():
            yield tok(line)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        """Yield each line as a ``[(word_id, count), ...]`` document sorted by id."""
        doc2bow = self.dictionary.doc2bow
        n = 0
        for tokens in self.get_texts():
            n += 1
            yield doc2bow(tokens)
        self._num_docs = n

    @property
    def num_docs(self) -> int:
        if self._num_docs is None:
            self._num_docs = sum(1 for _ in self.get_lines())
        return self._num_docs

    def __len__(self) -> int:
        return self.num_docs

    def __repr__(self) -> str:
        return f"TextCorpus({self.fname!r}: {len(self.dictionary)} terms)"
