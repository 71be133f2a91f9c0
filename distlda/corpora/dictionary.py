"""A gensim-compatible mapping between words and integer ids, with document statistics."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Iterable, Iterator

import smart_open

__all__ = ["Dictionary"]


class Dictionary:
    """Mapping between tokens and integer ids, in the manner of ``gensim.corpora.Dictionary``.

    Ids are assigned in order of first appearance (the new tokens of one document in sorted
    order, exactly as gensim does), and :meth:`compactify` keeps the relative order of the
    surviving ids, so the same input gives the same ids here and in gensim.

    Parameters
    ----------
    documents : iterable of list of str, optional
        Tokenised documents to add right away (see :meth:`add_documents`).
    prune_at : int or None, default 2000000
        Passed to :meth:`add_documents`.

    Attributes
    ----------
    token2id : dict of str -> int
        Token to id.
    id2token : dict of int -> str
        Id to token (kept in sync with ``token2id``).
    dfs : dict of int -> int
        Document frequency: in how many documents each id occurs.
    cfs : dict of int -> int
        Collection frequency: how many times each id occurs in all documents.
    num_docs : int
        Number of documents processed.
    num_pos : int
        Number of tokens processed (corpus positions).
    num_nnz : int
        Sum over documents of the number of distinct ids.

    Examples
    --------
    >>> d = Dictionary([["socket", "file", "socket"], ["file", "thread"]])
    >>> d.token2id
    {'file': 0, 'socket': 1, 'thread': 2}
    >>> d.doc2bow(["thread", "socket", "socket", "unknown"])
    [(1, 2), (2, 1)]
    """

    def __init__(self, documents: Iterable[list[str]] | None = None,
                 prune_at: int | None = 2000000):
        self.token2id: dict[str, int] = {}
        self.id2token: dict[int, str] = {}
        self.dfs: dict[int, int] = {}
        self.cfs: dict[int, int] = {}
        self.num_docs = 0
        self.num_pos = 0
        self.num_nnz = 0
        if documents is not None:
            self.add_documents(documents, prune_at=prune_at)

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, tokenid: int) -> str:
        return self.id2token[tokenid]

    def __len__(self) -> int:
        return len(self.token2id)

    def __iter__(self) -> Iterator[int]:
        """Iterate over ids, like a dict (and like gensim)."""
        return iter(self.keys())

    def __contains__(self, tokenid: object) -> bool:
        return tokenid in self.id2token

    def keys(self) -> list[int]:
        """All ids, in increasing order."""
        return sorted(self.id2token)

    def values(self) -> list[str]:
        """All tokens, in id order."""
        return [self.id2token[i] for i in self.keys()]

    def items(self) -> list[tuple[int, str]]:
        """``(id, token)`` pairs, in id order."""
        return [(i, self.id2token[i]) for i in self.keys()]

    def get(self, tokenid: int, default: str | None = None) -> str | None:
        return self.id2token.get(tokenid, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dictionary):
            return NotImplemented
        return self.token2id == other.token2id and self.dfs == other.dfs

    def __repr__(self) -> str:
        some = ", ".join(self.id2token[i] for i in self.keys()[:5])
        more = ", ..." if len(self) > 5 else ""
        return f"Dictionary<{len(self)} unique tokens: [{some}{more}]>"

    # ------------------------------------------------------------------ building
    def doc2bow(self, document: list[str], allow_update: bool = False, return_missing: bool = False
                ) -> list[tuple[int, int]] | tuple[list[tuple[int, int]], dict[str, int]]:
        """Convert a list of tokens into a bag-of-words ``[(id, count), ...]`` sorted by id.

        Parameters
        ----------
        document : list of str
            The tokens of one document (not a single string).
        allow_update : bool, default False
            Add unknown tokens with new ids and update the document statistics.
        return_missing : bool, default False
            Also return a dict ``{token: count}`` of tokens that are not in the dictionary.

        Returns
        -------
        list of (int, int), or (list of (int, int), dict of str -> int)
        """
        if isinstance(document, str):
            raise TypeError("doc2bow expects a list of tokens, not a single string")
        counts = Counter(document)
        token2id = self.token2id
        if allow_update:
            # New tokens of one document are numbered in sorted order, as gensim does, so
            # the same input gives the same ids in both libraries.
            for w in sorted(w for w in counts if w not in token2id):
                new_id = len(token2id)
                token2id[w] = new_id
                self.id2token[new_id] = w
        bow = sorted((token2id[w], c) for w, c in counts.items() if w in token2id)
        if allow_update:
            self.num_docs += 1
            self.num_pos += sum(counts.values())
            self.num_nnz += len(bow)
            dfs, cfs = self.dfs, self.cfs
            for i, c in bow:
                dfs[i] = dfs.get(i, 0) + 1
                cfs[i] = cfs.get(i, 0) + c
        if return_missing:
            return bow, {w: c for w, c in counts.items() if w not in token2id}
        return bow

    def add_documents(self, documents: Iterable[list[str]], prune_at: int | None = 2000000) -> None:
        """Add tokenised documents, assigning ids to new tokens and updating the statistics.

        Parameters
        ----------
        documents : iterable of list of str
        prune_at : int or None, default 2000000
            Keep memory bounded: whenever the dictionary grows beyond ``prune_at`` tokens,
            keep only the ``prune_at`` most document-frequent ones. ``None`` never prunes.
        """
        for doc in documents:
            if prune_at is not None and len(self) > prune_at:
                self.filter_extremes(no_below=0, no_above=1.0, keep_n=prune_at)
            self.doc2bow(doc, allow_update=True)

    @classmethod
    def from_vocab(cls, words: Iterable[str]) -> "Dictionary":
        """Build a dictionary where ``words[i]`` gets id ``i`` (no document statistics).

        Raises
        ------
        ValueError
            If a word occurs twice.
        """
        d = cls()
        for i, w in enumerate(words):
            if w in d.token2id:
                raise ValueError(f"duplicate word {w!r} at position {i} (first at "
                                 f"{d.token2id[w]})")
            d.token2id[w] = i
            d.id2token[i] = w
        return d

    @classmethod
    def from_vocab_file(cls, fname: str | os.PathLike) -> "Dictionary":
        """Read a vocabulary with one word per line (line ``i`` = id ``i``) via smart_open.

        This is the layout of ``vocab.NAME.txt`` (UCI) and ``NAME.vocab`` files. A trailing
        empty line is ignored; an empty line elsewhere or a repeated word is an error.
        """
        path = os.fspath(fname)
        if "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(2, "vocabulary file not found", path)
        with smart_open.open(path, "r", encoding="utf-8") as f:
            words = f.read().split("\n")
        while words and not words[-1].strip():
            words.pop()
        d = cls()
        for lineno, w in enumerate(words, start=1):
            w = w.strip()
            if not w:
                raise ValueError(f"{path} line {lineno}: empty word")
            if w in d.token2id:
                raise ValueError(f"{path} line {lineno}: duplicate word {w!r} (first on line "
                                 f"{d.token2id[w] + 1})")
            d.token2id[w] = lineno - 1
            d.id2token[lineno - 1] = w
        return d

    @classmethod
    def from_corpus(cls, corpus: Iterable, id2word: dict | None = None) -> "Dictionary":
        """Build a dictionary (with statistics) from a bag-of-words corpus, like gensim.

        Tokens are ``id2word[id]`` when given, else the string form of the id.
        """
        d = cls()
        max_id = -1
        for bow in corpus:
            d.num_docs += 1
            d.num_nnz += len(bow)
            for i, c in bow:
                i = int(i)
                max_id = max(max_id, i)
                d.num_pos += c
                d.dfs[i] = d.dfs.get(i, 0) + 1
                d.cfs[i] = d.cfs.get(i, 0) + c
        ids = range(max_id + 1) if id2word is None else sorted(id2word)
        for i in ids:
            w = str(i) if id2word is None else id2word[i]
            d.token2id[w] = i
            d.id2token[i] = w
        return d

    # ------------------------------------------------------------------ filtering
    def filter_extremes(self, no_below: int = 5, no_above: float = 0.5,
                        keep_n: int | None = 100000, keep_tokens: Iterable[str] | None = None) -> None:
        """Keep tokens in at least ``no_below`` and at most ``no_above`` (fraction) documents.

        Of those, keep the ``keep_n`` with the highest document frequency (all if None;
        ties keep the lower id). Ids are then compactified. Same semantics as gensim.

        Parameters
        ----------
        no_below : int, default 5
            Minimum document frequency (absolute).
        no_above : float, default 0.5
            Maximum document frequency, as a fraction of ``num_docs``.
        keep_n : int or None, default 100000
        keep_tokens : iterable of str, optional
            Tokens kept regardless of their frequency.
        """
        no_above_abs = int(no_above * self.num_docs)
        keep = {self.token2id[w] for w in keep_tokens or () if w in self.token2id}
        good = [i for i in self.keys()
                if no_below <= self.dfs.get(i, 0) <= no_above_abs or i in keep]
        # Stable sort, ties keep id order; kept tokens rank first (as in gensim).
        good.sort(key=lambda i: self.num_docs if i in keep else self.dfs.get(i, 0), reverse=True)
        if keep_n is not None:
            good = good[:keep_n]
        self.filter_tokens(good_ids=good)

    def filter_n_most_frequent(self, remove_n: int) -> None:
        """Remove the ``remove_n`` tokens with the highest document frequency."""
        ids = sorted(self.keys(), key=lambda i: self.dfs.get(i, 0), reverse=True)
        self.filter_tokens(bad_ids=ids[:remove_n])

    def filter_tokens(self, bad_ids: Iterable[int] | None = None,
                      good_ids: Iterable[int] | None = None) -> None:
        """Remove ``bad_ids`` and/or keep only ``good_ids``, then :meth:`compactify`."""
        if bad_ids is not None:
            bad = set(bad_ids)
            self.token2id = {w: i for w, i in self.token2id.items() if i not in bad}
        if good_ids is not None:
            good = set(good_ids)
            self.token2id = {w: i for w, i in self.token2id.items() if i in good}
        live = set(self.token2id.values())
        self.dfs = {i: n for i, n in self.dfs.items() if i in live}
        self.cfs = {i: n for i, n in self.cfs.items() if i in live}
        self.compactify()

    def compactify(self) -> None:
        """Renumber ids to ``0 .. len - 1``, keeping their relative order."""
        idmap = {old: new for new, old in enumerate(sorted(self.token2id.values()))}
        self.token2id = {w: idmap[i] for w, i in sorted(self.token2id.items(), key=lambda t: t[1])}
        self.id2token = {i: w for w, i in self.token2id.items()}
        self.dfs = {idmap[i]: n for i, n in self.dfs.items() if i in idmap}
        self.cfs = {idmap[i]: n for i, n in self.cfs.items() if i in idmap}

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        """The ``n`` most frequent tokens with their collection frequency (all if None)."""
        ranked = sorted(self.cfs.items(), key=lambda t: t[1], reverse=True)[:n]
        return [(self.id2token[i], c) for i, c in ranked]

    # ------------------------------------------------------------------ persistence
    def save_as_text(self, fname: str | os.PathLike, sort_by_word: bool = True) -> None:
        """Save as text, readable by :meth:`load_from_text` and by gensim.

        The first line is ``num_docs``; then one ``id<TAB>word<TAB>document_frequency`` line
        per token, sorted by word (or by decreasing frequency if ``sort_by_word=False``).
        Collection frequencies are not saved.
        """
        if sort_by_word:
            entries = sorted(self.token2id.items())
        else:
            entries = sorted(self.token2id.items(), key=lambda t: (-self.dfs.get(t[1], 0), t[0]))
        with smart_open.open(os.fspath(fname), "w", encoding="utf-8") as f:
            f.write(f"{self.num_docs}\n")
            for w, i in entries:
                if "\t" in w or "\n" in w:
                    raise ValueError(f"cannot save token {w!r} as text: it contains a tab or newline")
                f.write(f"{i}\t{w}\t{self.dfs.get(i, 0)}\n")

    @classmethod
    def load_from_text(cls, fname: str | os.PathLike) -> "Dictionary":
        """Load a dictionary written by :meth:`save_as_text` (or by gensim's).

        A first line holding a single integer is read as ``num_docs`` (gensim >= 1.0 files);
        files without it load too.
        """
        path = os.fspath(fname)
        if "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(2, "dictionary file not found", path)
        d = cls()
        try:
            return cls._read_text(d, path)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a UTF-8 text dictionary (a pickled gensim "
                             f"Dictionary converts with gensim's save_as_text)") from None

    @staticmethod
    def _read_text(d: "Dictionary", path: str) -> "Dictionary":
        with smart_open.open(path, "r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.rstrip("\n")
                if lineno == 1 and line.strip().isdigit():
                    d.num_docs = int(line)
                    continue
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 3:
                    raise ValueError(f"{path} line {lineno}: expected 'id<TAB>word<TAB>"
                                     f"document_frequency', got {line[:80]!r}")
                try:
                    i, df = int(parts[0]), int(parts[2])
                except ValueError:
                    raise ValueError(f"{path} line {lineno}: id and document frequency must be "
                                     f"integers, got {line[:80]!r}") from None
                w = parts[1]
                if w in d.token2id or i in d.id2token:
                    raise ValueError(f"{path} line {lineno}: duplicate word or id in {line[:80]!r}")
                d.token2id[w] = i
                d.id2token[i] = w
                d.dfs[i] = df
        return d

    def save(self, fname: str | os.PathLike) -> None:
        """Save to ``fname`` (local path or smart_open URI; ``.gz`` compresses) as JSON.

        Everything is kept: ids, tokens, document and collection frequencies and the
        counters. The file is JSON, not a pickle, so loading it cannot run code; it is read
        by :meth:`load` (gensim reads :meth:`save_as_text` files instead).
        """
        data = {"format": _FORMAT, "version": 1, "num_docs": self.num_docs,
                "num_pos": self.num_pos, "num_nnz": self.num_nnz,
                "tokens": [[i, w, self.dfs.get(i, 0), self.cfs.get(i, 0)]
                           for w, i in sorted(self.token2id.items(), key=lambda t: t[1])]}
        with smart_open.open(os.fspath(fname), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)

    @classmethod
    def load(cls, fname: str | os.PathLike) -> "Dictionary":
        """Load a dictionary saved with :meth:`save` (JSON).

        Raises
        ------
        ValueError
            A pickle file (gensim's ``Dictionary.save`` writes pickles, as distlda did
            before 0.1): it is refused, because unpickling runs code from the file; the
            message says how to convert it with ``save_as_text``. Also a file that is not a
            distlda Dictionary, or a damaged one (the message names the problem).
        FileNotFoundError
            A local ``fname`` that does not exist.
        """
        path = os.fspath(fname)
        if "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(2, "dictionary file not found", path)
        with smart_open.open(path, "rb") as f:
            raw = f.read()
        if raw[:1] == b"\x80":  # every pickle of protocol 2 or later starts so
            raise ValueError(
                f"{path} is a pickle (as gensim's Dictionary.save writes): distlda does not "
                f"unpickle it, because unpickling runs code from the file. Convert it where you "
                f"trust the file: gensim.corpora.Dictionary.load({path!r}).save_as_text("
                f"'dictionary.txt'), then distlda.corpora.Dictionary.load_from_text("
                f"'dictionary.txt') (and .save() it in distlda's JSON format)")
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                raise ValueError("not a distlda Dictionary file")
            if data.get("version") != 1:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            d = cls()
            for i, w, df, cf in data["tokens"]:
                if not (isinstance(i, int) and isinstance(w, str) and isinstance(df, int)
                        and isinstance(cf, int)) or i < 0 or w in d.token2id or i in d.id2token:
                    raise ValueError(f"bad or duplicate entry {[i, w, df, cf]!r}")
                d.token2id[w], d.id2token[i] = i, w
                if df:
                    d.dfs[i] = df
                if cf:
                    d.cfs[i] = cf
            d.num_docs, d.num_pos, d.num_nnz = (int(data[k]) for k in ("num_docs", "num_pos", "num_nnz"))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a valid distlda Dictionary file ({e}); a gensim "
                             f"text file loads with Dictionary.load_from_text") from None
        return d


_FORMAT = "distlda.Dictionary"
