"""Tests of distlda.corpora: the streaming readers, the Dictionary and the sample corpus."""

import bz2
import gzip
import os

import numpy as np
import pytest
import scipy.sparse as sp

from distlda.corpora import (
    CorpusFormatError,
    Dictionary,
    MmCorpus,
    TextCorpus,
    UciCorpus,
    _triplets,
    sample_corpus_path,
    tokenize,
)

HEADER = "%%MatrixMarket matrix coordinate real general\n"
DEBDESC_HELDOUT = "/work/shared/corpora/debdesc.heldout.mm.gz"


def write(path, text):
    """Write ``text`` to ``path``, compressed according to the extension."""
    data = text.encode("utf-8")
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    elif str(path).endswith(".bz2"):
        data = bz2.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def random_docs(rng, n_docs, n_terms, p_empty=0.2):
    docs = []
    for _ in range(n_docs):
        if rng.random() < p_empty:
            docs.append([])
            continue
        ids = np.sort(rng.choice(n_terms, size=rng.integers(1, min(n_terms, 12) + 1), replace=False))
        docs.append([(int(i), int(rng.integers(1, 6))) for i in ids])
    return docs


def csr_docs(corpus, chunksize):
    out = []
    for block in corpus.iter_csr(chunksize):
        for i in range(block.shape[0]):
            row = block.getrow(i)
            out.append(list(zip(row.indices.tolist(), row.data.tolist())))
    return out


# ----------------------------------------------------------------------------- MmCorpus
# Rows 2 and 5 are absent (empty documents, one of them trailing); word ids of document 1 are
# out of order and one entry is a duplicate; counts written as floats are integral.
MM_TEXT = HEADER + "% a comment\n5 6 6\n1 4 1\n1 2 2.0\n1 4 2\n3 6 1\n4 1 3\n4 2 1\n"
MM_DOCS = [[(1, 2), (3, 3)], [], [(5, 1)], [(0, 3), (1, 1)], []]


@pytest.mark.parametrize("ext", ["", ".gz", ".bz2"])
def test_mm_roundtrip(tmp_path, ext):
    path = write(tmp_path / f"c.mm{ext}", MM_TEXT)
    corpus = MmCorpus(path)
    assert (corpus.num_docs, corpus.num_terms, corpus.num_nnz, len(corpus)) == (5, 6, 6, 5)
    assert list(corpus) == MM_DOCS
    assert list(corpus) == MM_DOCS  # re-iterable
    assert all(type(i) is int and type(c) is int for doc in corpus for i, c in doc)


def test_mm_gensim_padded_header_and_integer_field(tmp_path):
    # gensim writes a blank placeholder, then overwrites it with the sizes: trailing spaces.
    text = "%%MatrixMarket matrix coordinate integer general\n2 3 2" + " " * 40 + "\n1 1 1\n2 3 4\n"
    assert list(MmCorpus(write(tmp_path / "c.mm", text))) == [[(0, 1)], [(2, 4)]]


@pytest.mark.parametrize("chunksize", [1, 2, 3, 7, 4096])
def test_iter_csr_equals_iter(tmp_path, monkeypatch, chunksize):
    # Tiny text batches so documents straddle batch boundaries.
    monkeypatch.setattr(_triplets, "BLOCK_BYTES", 37)
    rng = np.random.default_rng(0)
    docs = random_docs(rng, 50, 20) + [[], []]
    path = str(tmp_path / "r.mm.gz")
    MmCorpus.serialize(path, docs, num_terms=20)
    corpus = MmCorpus(path)
    assert list(corpus) == docs
    assert csr_docs(corpus, chunksize) == docs
    blocks = list(corpus.iter_csr(chunksize))
    assert sum(b.shape[0] for b in blocks) == corpus.num_docs == 52
    for b in blocks:
        assert sp.isspmatrix_csr(b) and b.shape[1] == 20
        assert b.has_sorted_indices and np.issubdtype(b.data.dtype, np.integer)
    assert all(b.shape[0] == chunksize for b in blocks[:-1])


def test_iter_csr_rejects_bad_chunksize(tmp_path):
    corpus = MmCorpus(write(tmp_path / "c.mm", MM_TEXT))
    with pytest.raises(ValueError, match="chunksize"):
        next(corpus.iter_csr(0))


def test_serialize_roundtrip(tmp_path):
    docs = [[(0, 1), (3, 2)], [], [(1, 5)]]
    path = str(tmp_path / "s.mm")
    assert MmCorpus.serialize(path, docs, num_terms=10) == 3
    corpus = MmCorpus(path)
    assert (corpus.num_docs, corpus.num_terms, corpus.num_nnz) == (3, 10, 3)
    assert list(corpus) == docs
    with pytest.raises(ValueError, match="non-negative integer"):
        MmCorpus.serialize(str(tmp_path / "bad.mm"), [[(0, 1.5)]])


BAD_MM = [
    # (body after the header, expected message fragment)
    ("2 5 2\n1 1 2\n1 3 2.5\n", r"line 4: count must be a non-negative integer, got '2.5'"),
    ("2 5 2\n1 1 2\n1 3 -1\n", r"line 4: count must be a non-negative integer, got '-1'"),
    ("2 5 2\n1 1 x\n1 3 1\n", r"line 3: count must be a non-negative integer, got 'x'"),
    ("2 5 2\n1 0 2\n1 3 1\n", r"line 3: word id must be an integer in 1\.\.5, got '0'"),
    ("2 5 2\n1 1 2\n1 6 1\n", r"line 4: word id must be an integer in 1\.\.5, got '6'"),
    ("2 5 2\n1 1 2\n3 2 1\n", r"line 4: document id must be an integer in 1\.\.2, got '3'"),
    ("2 5 2\n0 1 2\n1 2 1\n", r"line 3: document id must be an integer in 1\.\.2, got '0'"),
    ("2 5 2\n2 1 2\n1 3 1\n", r"line 4: entries must be sorted by document id"),
    ("2 5 2\n1 1 2\n1 3\n", r"line 4: expected 3 fields"),
    ("2 5 3\n1 1 2\n1 3 1\n", r"truncated file: the header declares 3 entries but the file ends after 2 \(at line 4\)"),
    ("2 5 1\n1 1 2\n1 3 1\n", r"more entries than the 1 declared in the header \(2 by line 4\)"),
    ("2 5\n1 1 2\n", r"line 2: malformed size line"),
    ("", r"line 2: truncated file: missing the size line"),
]


@pytest.mark.parametrize("body,message", BAD_MM)
def test_mm_bad_input(tmp_path, body, message):
    path = write(tmp_path / "bad.mm", HEADER + body)
    with pytest.raises(CorpusFormatError, match=message) as info:
        list(MmCorpus(path))
    assert "bad.mm" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_mm_bad_input_found_by_csr_path_in_big_file(tmp_path):
    # The error sits deep in a large batch: the vectorised check finds it, the message
    # still names the exact line.
    lines = [f"{d + 1} {w + 1} 1\n" for d in range(3000) for w in range(3)]
    lines[7000] = lines[7000].replace(" 1\n", " 1.5\n")
    path = write(tmp_path / "big.mm.gz", HEADER + "3000 3 9000\n" + "".join(lines))
    with pytest.raises(CorpusFormatError, match=r"line 7003: count must be a non-negative integer, got '1.5'"):
        for _ in MmCorpus(path).iter_csr():
            pass


@pytest.mark.parametrize("text,message", [
    ("3 5 2\n1 1 1\n", r"line 1: not a Matrix Market file"),
    ("%%MatrixMarket matrix array real general\n2 2\n", r"line 1: unsupported Matrix Market header"),
    ("%%MatrixMarket matrix coordinate real symmetric\n2 2 1\n1 1 1\n", r"unsupported"),
    ("", r"line 1: not a Matrix Market file"),
])
def test_mm_bad_header(tmp_path, text, message):
    with pytest.raises(CorpusFormatError, match=message):
        MmCorpus(write(tmp_path / "h.mm", text))


def test_missing_file_names_path(tmp_path):
    for cls in (MmCorpus, UciCorpus, TextCorpus):
        path = str(tmp_path / "nope.mm.gz")
        with pytest.raises(FileNotFoundError, match="nope.mm.gz"):
            cls(path)


def test_truncated_gzip(tmp_path):
    data = gzip.compress((HEADER + "300 4 1200\n" + "".join(
        f"{d + 1} {w + 1} 1\n" for d in range(300) for w in range(4))).encode())
    path = tmp_path / "t.mm.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CorpusFormatError, match="t.mm.gz: corrupt or truncated compressed file"):
        list(MmCorpus(str(path)))


# ----------------------------------------------------------------------------- UciCorpus
UCI_TEXT = "4\n5\n4\n1 2 3\n1 5 1\n3 1 2\n3 2 1\n"
UCI_DOCS = [[(1, 3), (4, 1)], [], [(0, 2), (1, 1)], []]
VOCAB = "apple\nbanana\ncherry\ndate\nelder\n"


def test_uci_sibling_vocab_and_gz(tmp_path):
    path = write(tmp_path / "docword.fruit.txt.gz", UCI_TEXT)
    write(tmp_path / "vocab.fruit.txt", VOCAB)
    corpus = UciCorpus(path)
    assert (corpus.num_docs, corpus.num_terms, corpus.num_nnz, len(corpus)) == (4, 5, 4, 4)
    assert list(corpus) == UCI_DOCS
    assert csr_docs(corpus, 3) == UCI_DOCS
    assert corpus.id2word[4] == "elder" and corpus.id2word.token2id["apple"] == 0
    assert corpus.fname_vocab.endswith("vocab.fruit.txt")


def test_uci_explicit_and_missing_vocab(tmp_path):
    path = write(tmp_path / "words.txt", UCI_TEXT)
    assert UciCorpus(path).id2word is None
    voc = write(tmp_path / "v.txt.gz", VOCAB)
    assert UciCorpus(path, voc).id2word.values() == ["apple", "banana", "cherry", "date", "elder"]
    write(tmp_path / "short.txt", "apple\nbanana\n")
    with pytest.raises(CorpusFormatError, match="vocabulary has 2 words but .* W=5"):
        UciCorpus(path, str(tmp_path / "short.txt"))
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        UciCorpus(path, str(tmp_path / "nothere.txt"))


@pytest.mark.parametrize("text,message", [
    ("4\n5\n", r"line 3: truncated header: missing NNZ"),
    ("4\nfive\n4\n", r"line 2: malformed header: expected W"),
    ("4\n5\n3\n1 2 3\n1 5 1\n3 1 2\n3 2 1\n", r"more entries than the 3 declared"),
    ("4\n5\n4\n1 2 3\n1 5 1\n3 1 2\n", r"truncated file"),
    ("4\n5\n4\n1 2 3\n1 5 1\n3 1 2.5\n3 2 1\n", r"line 6: count must be a non-negative integer, got '2.5'"),
    ("4\n5\n4\n1 2 3\n1 7 1\n3 1 2\n3 2 1\n", r"line 5: word id must be an integer in 1\.\.5, got '7'"),
])
def test_uci_bad_input(tmp_path, text, message):
    path = write(tmp_path / "docword.bad.txt", text)
    with pytest.raises(CorpusFormatError, match=message):
        list(UciCorpus(path))


# ----------------------------------------------------------------------------- Dictionary
def test_dictionary_doc2bow_and_stats():
    d = Dictionary([["socket", "file", "socket"], ["file", "thread"]])
    assert d.token2id == {"file": 0, "socket": 1, "thread": 2}
    assert d[1] == "socket" and d.get(7) is None and d.get(7, "x") == "x"
    assert len(d) == 3 and list(d) == [0, 1, 2] and d.keys() == [0, 1, 2]
    assert d.items() == [(0, "file"), (1, "socket"), (2, "thread")]
    assert (d.num_docs, d.num_pos, d.num_nnz) == (2, 5, 4)
    assert d.dfs == {0: 2, 1: 1, 2: 1} and d.cfs == {0: 2, 1: 2, 2: 1}
    assert d.doc2bow(["thread", "socket", "socket", "unknown"]) == [(1, 2), (2, 1)]
    assert d.doc2bow(["zeta", "file"], return_missing=True) == ([(0, 1)], {"zeta": 1})
    assert d.doc2bow(["zeta", "alpha", "file"], allow_update=True) == [(0, 1), (3, 1), (4, 1)]
    assert d.token2id["alpha"] == 3 and d.token2id["zeta"] == 4  # new ids in sorted order
    with pytest.raises(TypeError):
        d.doc2bow("not a list")


def test_dictionary_filter_extremes_and_compactify():
    docs = [["a1", "com", "x"], ["com", "x", "y"], ["com", "y"], ["com", "z", "y"]]
    d = Dictionary(docs)
    d.filter_extremes(no_below=2, no_above=0.75, keep_n=None)  # drops a1, z (df 1), com (df 4)
    assert d.token2id == {"x": 0, "y": 1}
    assert d.dfs == {0: 2, 1: 3} and d.id2token == {0: "x", 1: "y"}
    d = Dictionary(docs)
    d.filter_extremes(no_below=1, no_above=1.0, keep_n=2)  # the two most frequent: com, y
    assert d.token2id == {"com": 0, "y": 1}
    d = Dictionary(docs)
    d.filter_extremes(no_below=2, no_above=0.75, keep_tokens=["z"])
    assert set(d.token2id) == {"x", "y", "z"}
    d = Dictionary(docs)
    d.filter_tokens(bad_ids=[d.token2id["com"]])
    assert sorted(d.token2id.values()) == list(range(len(d))) and "com" not in d.token2id


def test_dictionary_save_load_text(tmp_path):
    d = Dictionary([["socket", "file", "socket"], ["file", "thread"]])
    for name in ("d.txt", "d.txt.gz"):
        path = str(tmp_path / name)
        d.save_as_text(path)
        e = Dictionary.load_from_text(path)
        assert e.token2id == d.token2id and e.dfs == d.dfs and e.num_docs == 2
    first = open(tmp_path / "d.txt", encoding="utf-8").read().splitlines()[:2]
    assert first == ["2", "0\tfile\t2"]
    write(tmp_path / "bad.txt", "2\n0\tfile\n")
    with pytest.raises(ValueError, match="bad.txt line 2"):
        Dictionary.load_from_text(str(tmp_path / "bad.txt"))


def test_dictionary_from_vocab_and_save_load(tmp_path):
    d = Dictionary.from_vocab(["b", "a", "c"])
    assert d.token2id == {"b": 0, "a": 1, "c": 2} and d[2] == "c"
    with pytest.raises(ValueError, match="duplicate"):
        Dictionary.from_vocab(["a", "a"])
    write(tmp_path / "v.txt", "b\na\nb\n")
    with pytest.raises(ValueError, match="v.txt line 3: duplicate word 'b'"):
        Dictionary.from_vocab_file(str(tmp_path / "v.txt"))
    d.save(str(tmp_path / "d.json"))
    assert Dictionary.load(str(tmp_path / "d.json")) == d


# ----------------------------------------------------------------------------- TextCorpus
def test_tokenize():
    assert tokenize("Return the socket's __init__ value; don't use os.get_terminal_size()!") == [
        "return", "socket", "init", "value", "use", "get_terminal_size"]
    assert tokenize("") == [] and tokenize("a an the 42 ab") == []


@pytest.mark.parametrize("name", ["t.txt", "t.txt.gz"])
def test_textcorpus(tmp_path, name):
    lines = ["Open the socket and read the file", "", "the of and",
             "Read a file from the socket", "thread socket file"]
    path = write(tmp_path / name, "\n".join(lines) + "\n")
    corpus = TextCorpus(path, no_below=2, no_above=1.0)
    assert len(corpus) == 5
    words = {corpus.dictionary[i] for i in corpus.dictionary.keys()}
    assert words == {"socket", "read", "file"}
    docs = list(corpus)
    assert len(docs) == 5 and docs[1] == [] and docs[2] == []  # empty lines kept in place
    ids = corpus.dictionary.token2id
    assert docs[3] == sorted([(ids["read"], 1), (ids["file"], 1), (ids["socket"], 1)])
    assert list(corpus) == docs
    # A given dictionary is used as is, with no filtering.
    fixed = Dictionary.from_vocab(["thread"])
    assert list(TextCorpus(path, dictionary=fixed)) == [[], [], [], [], [(0, 1)]]


def test_textcorpus_bad_utf8(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line here\nbroken \xff\xfe line\n")
    with pytest.raises(ValueError, match="bad.txt line 2: not valid UTF-8"):
        TextCorpus(str(path), no_below=1)


# ----------------------------------------------------------------------------- sample corpus
def test_sample_corpus():
    path = sample_corpus_path()
    assert os.path.isfile(path) and path.endswith(".txt.gz")
    assert os.path.getsize(path) < 1_500_000
    data_dir = os.path.dirname(path)
    assert os.path.isfile(os.path.join(data_dir, "LICENSE-PSF.txt"))
    assert os.path.isfile(os.path.join(data_dir, "README.rst"))
    corpus = TextCorpus(path)
    docs = list(corpus)
    assert 3000 <= len(docs) <= 6000
    assert sum(c for doc in docs for _, c in doc) > 50_000
    for word in ("socket", "thread", "file", "unicode"):
        assert word in corpus.dictionary.token2id


# ----------------------------------------------------------------------------- gensim interop
def test_gensim_reads_same_heldout_corpus():
    gensim_corpora = pytest.importorskip("gensim.corpora")
    if not os.path.exists(DEBDESC_HELDOUT):
        pytest.skip(f"{DEBDESC_HELDOUT} not available")
    ours = MmCorpus(DEBDESC_HELDOUT)
    theirs = gensim_corpora.MmCorpus(DEBDESC_HELDOUT)
    assert (ours.num_docs, ours.num_terms, ours.num_nnz) == (
        theirs.num_docs, theirs.num_terms, theirs.num_nnz)
    n = 0
    for a, b in zip(ours, theirs):
        assert a == [(i, int(c)) for i, c in b]
        n += 1
    assert n == len(theirs)


def test_gensim_interop_serialize_and_dictionary(tmp_path):
    gensim_corpora = pytest.importorskip("gensim.corpora")
    docs = [[(0, 1), (3, 2)], [], [(1, 5)]]
    path = str(tmp_path / "ours.mm")
    MmCorpus.serialize(path, docs, num_terms=4)
    assert [[(i, int(c)) for i, c in d] for d in gensim_corpora.MmCorpus(path)] == docs
    gpath = str(tmp_path / "theirs.mm")
    gensim_corpora.MmCorpus.serialize(gpath, docs)
    assert list(MmCorpus(gpath)) == docs
    texts = [["socket", "file", "socket"], ["file", "thread"], ["zeta", "alpha", "file"]] * 3
    ours_d, theirs_d = Dictionary(texts), gensim_corpora.Dictionary(texts)
    assert ours_d.token2id == theirs_d.token2id and ours_d.dfs == theirs_d.dfs
    ours_d.filter_extremes(no_below=2, no_above=0.9)
    theirs_d.filter_extremes(no_below=2, no_above=0.9)
    assert ours_d.token2id == theirs_d.token2id
    theirs_d.save_as_text(str(tmp_path / "g.txt"))
    assert Dictionary.load_from_text(str(tmp_path / "g.txt")).token2id == theirs_d.token2id


# ----------------------------------------------------------------------------- Unicode text
def test_tokenize_keeps_whole_words_of_any_script():
    assert tokenize("le secteur privé était prêt") == ["secteur", "privé", "était", "prêt"]
    assert tokenize("Die Straße über den Fluß führt nach Köln") == [
        "die", "strasse", "über", "den", "fluss", "führt", "nach", "köln"]  # case-folded
    assert tokenize("Москва — столица России") == ["москва", "столица", "россии"]
    # decomposed accents (NFD input) give the same word as precomposed ones
    assert tokenize("e\u0301te\u0301 chaud") == tokenize("été chaud") == ["été", "chaud"]
    # Hindi: the vowel signs (combining marks) stay inside the word
    assert tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    # Chinese: one token per character (pass a segmenter as tokenizer= for words)
    assert tokenize("我们学习中文") == ["我", "们", "学", "习", "中", "文"]
    assert tokenize("Le bon vin", min_length=2, stopwords=()) == ["le", "bon", "vin"]


def test_textcorpus_multilingual_lines_and_custom_tokenizer(tmp_path):
    lines = ["le secteur privé était prêt", "der Straßenverkehr in München",
             "экономика России растёт", "le secteur privé et la Straßenverkehr"]
    path = write(tmp_path / "multi.txt", "\n".join(lines) + "\n")
    corpus = TextCorpus(path, no_below=1, no_above=1.0)
    words = set(corpus.dictionary.token2id)
    assert {"privé", "était", "prêt", "straßenverkehr".casefold(), "münchen", "экономика",
            "россии", "растёт"} <= words
    assert not words & {"priv", "tait", "stra", "ber"}
    split = TextCorpus(path, no_below=1, no_above=1.0, tokenizer=str.split)
    assert "la" in split.dictionary.token2id and "le" in split.dictionary.token2id


def test_textcorpus_filters_that_empty_the_vocabulary(tmp_path):
    from distlda.corpora import VocabularyFilterError
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    lines = [" ".join(words[(i + j) % 6] for j in range(2)) for i in range(12)]
    path = write(tmp_path / "small.txt", "\n".join(lines) + "\n")
    with pytest.raises(VocabularyFilterError, match="removed all 6 distinct words of its 12 "
                       "documents: 6 are in fewer than no_below=5") as e:
        TextCorpus(path)
    assert "no_below=1" in str(e.value) and e.value.too_rare == 6
    assert len(TextCorpus(path, no_below=1, no_above=1.0).dictionary) == 6


def test_textcorpus_broken_gzip_files(tmp_path):
    plain = tmp_path / "plain.txt.gz"
    plain.write_text("just some text\nnot compressed\n")
    with pytest.raises(CorpusFormatError, match="plain.txt.gz: not a gzip file.*rename it"):
        TextCorpus(str(plain), no_below=1)
    good = gzip.compress(("words and more words\n" * 2000).encode())
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorpusFormatError, match="cut.txt.gz: corrupt or truncated"):
        TextCorpus(str(cut), no_below=1)


def test_load_sample():
    from distlda.corpora import load_sample
    corpus, dictionary = load_sample()
    assert dictionary is corpus.dictionary and len(corpus) == 3658
    assert "socket" in dictionary.token2id
