"""Bag-of-words corpus from a plain text file holding one document per line.

Tokenisation (:func:`tokenize`) is deliberately simple and documented, so results are easy to
reproduce elsewhere. It works on text in any script:

1. normalise the line to Unicode NFC (so an accent typed as a combining mark and a
   precomposed letter give the same word) and case-fold it (``str.casefold``: "Straße" and
   "STRASSE" both become ``strasse``);
2. take the maximal runs of word characters (letters, combining marks and digits of any
   script) that start with a letter; ``snake_case`` identifiers are kept whole, surrounding
   underscores dropped (``__init__`` -> ``init``); anything else separates tokens;
3. Chinese and Japanese ideographs (the Unicode Han script) are written without spaces, so
   each one is a token of its own; for Chinese *words*, pass a segmenter as ``tokenizer=``
   (for example ``jieba.lcut``, see :class:`TextCorpus`);
4. drop tokens shorter than ``min_length`` characters (default :data:`MIN_TOKEN_LEN`, 3;
   single Han characters are exempt) and the English stop words in :data:`STOPWORDS`.
"""

from __future__ import annotations

import gzip
import os
import unicodedata
import zlib
from typing import Callable, Collection, Iterator

import regex

from distlda.errors import DistldaError

from ._triplets import CorpusFormatError, open_binary
from .dictionary import Dictionary

__all__ = ["TextCorpus", "VocabularyFilterError", "tokenize", "STOPWORDS", "MIN_TOKEN_LEN"]

# A Han ideograph on its own, or a word: a letter, then letters, marks and digits, with inner
# underscores (snake_case). \p{M} keeps the combining vowel signs of Indic scripts inside words.
TOKEN_RE = regex.compile(r"\p{Han}|(?:(?!\p{Han})\p{L})[\p{L}\p{M}\p{N}--\p{Han}]*"
                         r"(?:_[\p{L}\p{M}\p{N}--\p{Han}]+)*", regex.V1)

#: Shortest token kept by :func:`tokenize` (in characters); single Han ideographs are exempt.
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


def tokenize(text: str, min_length: int = MIN_TOKEN_LEN,
             stopwords: Collection[str] = STOPWORDS) -> list[str]:
    """Split ``text`` into case-folded tokens as described in the module docstring.

    Parameters
    ----------
    text : str
        One document.
    min_length : int, default 3
        Shortest token kept, in characters (a single Han ideograph is always kept).
    stopwords : collection of str, default :data:`STOPWORDS`
        Case-folded tokens to drop (pass ``()`` to keep them all).

    Returns
    -------
    list of str
        The tokens, in text order.

    Examples
    --------
    >>> tokenize("Return the socket's __init__ value; don't use os.get_terminal_size()!")
    ['return', 'socket', 'init', 'value', 'use', 'get_terminal_size']
    >>> tokenize("Le secteur privé était prêt")
    ['secteur', 'privé', 'était', 'prêt']
    >>> tokenize("Москва — столица России")
    ['москва', 'столица', 'россии']
    """
    text = unicodedata.normalize("NFC", text).casefold()
    return [t for t in (m.strip("_") for m in TOKEN_RE.findall(text))
            if (len(t) >= min_length or _is_han(t)) and t not in stopwords]


def _is_han(token: str) -> bool:
    return len(token) == 1 and regex.match(r"\p{Han}", token) is not None


class VocabularyFilterError(DistldaError, ValueError):
    """The vocabulary filters of :class:`TextCorpus` removed every word.

    Attributes
    ----------
    fname : str
    num_docs, num_words : int
        Documents read and distinct words before filtering.
    too_rare, too_common : int
        Words dropped for being in fewer than ``no_below`` documents, or in more than
        ``no_above`` of them.
    no_below, no_above, keep_n
        The filter settings used.
    """

    def __init__(self, fname, num_docs, num_words, too_rare, too_common, no_below, no_above,
                 keep_n, hint: str | None = None):
        self.fname, self.num_docs, self.num_words = fname, num_docs, num_words
        self.too_rare, self.too_common = too_rare, too_common
        self.no_below, self.no_above, self.keep_n = no_below, no_above, keep_n
        super().__init__(self.describe(hint or "relax them, e.g. TextCorpus(..., no_below=1, "
                                               "no_above=1.0)"))

    def describe(self, hint: str) -> str:
        """The message, ending with ``hint`` (how to relax the filters)."""
        if self.num_words == 0:
            return (f"{self.fname}: no words in {self.num_docs} documents after tokenisation "
                    f"(words of at least {MIN_TOKEN_LEN} letters that are not stop words)")
        return (f"{self.fname}: the vocabulary filters removed all {self.num_words} distinct "
                f"words of its {self.num_docs} documents: {self.too_rare} are in fewer than "
                f"no_below={self.no_below} documents, {self.too_common} in more than "
                f"no_above={self.no_above:g} of them (over {int(self.no_above * self.num_docs)} "
                f"documents); {hint}")


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
        Function ``str -> list of str`` applied to each line. Any segmenter fits, e.g.
        ``tokenizer=jieba.lcut`` for Chinese words (jieba is not a dependency of distlda),
        or ``functools.partial(tokenize, min_length=2, stopwords=())``.

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
    CorpusFormatError
        If a line is not valid UTF-8 (the message names the file and line), or a ``.gz``
        file is not gzip data or is truncated.
    VocabularyFilterError
        If the vocabulary filters leave no word (the message gives the counts).

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
            dfs = list(dictionary.dfs.values())
            dictionary.filter_extremes(no_below=no_below, no_above=no_above, keep_n=keep_n)
            if len(dictionary) == 0:
                limit = int(no_above * dictionary.num_docs)
                raise VocabularyFilterError(
                    self.fname, dictionary.num_docs, len(dfs), sum(df < no_below for df in dfs),
                    sum(df > limit for df in dfs if df >= no_below), no_below, no_above, keep_n)
        else:
            open_binary(self.fname).close()  # fail now, not on first iteration, if missing
        self.dictionary = dictionary

    def get_lines(self) -> Iterator[str]:
        """Yield the decoded lines of the file, without the line terminator."""
        lineno = 0
        with open_binary(self.fname) as f:
            try:
                for lineno, raw in enumerate(f, start=1):
                    try:
                        yield raw.rstrip(b"\r\n").decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise CorpusFormatError(f"{self.fname} line {lineno}: not valid UTF-8 "
                                                f"({e}); save the file as UTF-8") from None
            except gzip.BadGzipFile as e:
                raise CorpusFormatError(
                    f"{self.fname}: not a gzip file ({e}); if it is plain text, rename it "
                    f"without the .gz suffix, or compress it with gzip") from None
            except (EOFError, zlib.error) as e:
                raise CorpusFormatError(
                    f"{self.fname}: corrupt or truncated compressed file after line {lineno} "
                    f"({e}); decompress it again or re-create it") from None

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
            yield doc2bow(tokens)  # type: ignore[misc]  # (no return_missing: a plain list)
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
