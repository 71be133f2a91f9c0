"""Streaming corpus readers and the word <-> id :class:`Dictionary`, gensim-style.

Every reader is a re-iterable of bag-of-words documents (lists of ``(word_id, count)`` with
0-based ids) that reopens its file through ``smart_open`` on each pass, so local, ``.gz``,
``.bz2`` and ``s3://`` paths all work. :class:`MmCorpus` and :class:`UciCorpus` also offer
``iter_csr(chunksize)``, a fast path that yields ``scipy.sparse.csr_matrix`` blocks.
:class:`ShardedCorpus` reads (and writes) a corpus cut into shards, in a folder or at any
fsspec URL, for corpora bigger than one machine.
"""

from ._triplets import CorpusFormatError
from .dictionary import Dictionary
from .mmcorpus import MmCorpus
from .sample import load_sample, sample_corpus_path
from .sharded import ShardedCorpus
from .textcorpus import TextCorpus, VocabularyFilterError, tokenize
from .ucicorpus import UciCorpus

__all__ = ["CorpusFormatError", "Dictionary", "MmCorpus", "ShardedCorpus", "TextCorpus", "UciCorpus",
           "VocabularyFilterError", "load_sample", "sample_corpus_path", "tokenize"]
