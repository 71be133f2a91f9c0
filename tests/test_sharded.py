"""Sharded corpora: the shard format, its writer and reader, ``distlda shard`` and training."""

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from distlda.cli import main
from distlda.corpora import CorpusFormatError, Dictionary, MmCorpus, ShardedCorpus
from distlda.corpora.sharded import word_dtype
from distlda.models import LdaModel

from helpers import planted_corpus


def random_docs(n=400, V=300, seed=0, max_len=40):
    """Sorted bag-of-words documents of varied length, some empty."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        ids = rng.integers(0, V, rng.integers(0, max_len))
        docs.append(sorted({int(w): int(rng.integers(1, 4)) for w in ids}.items()))
    return docs


def tokens_of(doc):
    return sum(c for _, c in doc)


def manifest(path):
    with open(os.path.join(path, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def write_manifest(path, m):
    with open(os.path.join(path, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(m, f)


# ---------------------------------------------------------------------- format and round trip
def test_round_trip_keeps_documents_in_order(tmp_path):
    docs = random_docs()
    words = [f"w{i}" for i in range(300)]
    sc = ShardedCorpus.write(docs, tmp_path / "s", shards=4, id2word=words)
    assert list(sc) == docs and list(sc) == docs  # re-iterable
    assert len(sc) == sc.num_docs == len(docs) and sc.num_terms == 300
    assert sc.num_tokens == sum(map(tokens_of, docs))
    assert sc.num_nnz == sum(map(len, docs))
    assert sc.id2word == dict(enumerate(words))
    reopened = ShardedCorpus(str(tmp_path / "s" / "manifest.json"))
    assert list(reopened) == docs and reopened.id2word[7] == "w7"
    # each shard alone: its documents, from its first_doc, memory-mapped locally
    for i in range(sc.num_shards):
        info = sc.shard(i)
        w, p = sc.read_shard(i)
        assert isinstance(w, np.memmap) and w.dtype == np.uint16 and p.dtype == np.int64
        assert p[0] == 0 and p[-1] == w.size == info.num_tokens and p.size == info.num_docs + 1
        for j in range(info.num_docs):
            doc = docs[info.first_doc + j]
            assert w[p[j]:p[j + 1]].tolist() == [i for i, c in doc for _ in range(c)]
    with pytest.raises(IndexError, match="out of range"):
        sc.shard(4)


def test_unsorted_and_repeated_ids_are_stored_as_doc2bow(tmp_path):
    sc = ShardedCorpus.write([[(5, 1), (2, 2), (5, 3)], [], [(0, 1)]], tmp_path / "s", shards=2)
    assert list(sc) == [[(2, 2), (5, 4)], [], [(0, 1)]] and sc.num_terms == 6


def test_empty_documents_and_a_shard_without_tokens(tmp_path):
    docs = [[(0, 1)], [], [], []]
    for dest in (str(tmp_path / "s"), f"memory://distlda-test-{uuid.uuid4().hex}/s"):
        sc = ShardedCorpus.write(docs, dest, shards=2)
        assert list(sc) == docs and sc.shard(1).num_docs == 3 and sc.shard(1).num_tokens == 0
        w, p = sc.read_shard(1)
        assert w.size == 0 and p.tolist() == [0, 0, 0, 0] and w.dtype == np.uint8


def test_shards_are_balanced_by_tokens(tmp_path):
    docs = random_docs(n=2000, max_len=60, seed=3)
    n = 7
    sc = ShardedCorpus.write(docs, tmp_path / "s", shards=n)
    m = manifest(tmp_path / "s")
    total, longest = sc.num_tokens, max(map(tokens_of, docs))
    # the stated bound: num_tokens / N tokens, give or take the longest document
    for e in m["shards"]:
        assert abs(e["num_tokens"] - total / n) <= longest + 1, e
        assert e["num_docs"] >= 1
    assert [e["first_doc"] for e in m["shards"]] == list(
        np.cumsum([0] + [e["num_docs"] for e in m["shards"]])[:-1])


@pytest.mark.parametrize("V, dtype", [(200, np.uint8), (256, np.uint8), (300, np.uint16),
                                      (65536, np.uint16), (70000, np.uint32)])
def test_word_dtype_is_the_narrowest_that_holds_V(tmp_path, V, dtype):
    assert word_dtype(V) == dtype
    docs = [[(0, 1), (V - 1, 2)], [(V // 2, 1)]]
    sc = ShardedCorpus.write(docs, tmp_path / "s", shards=2, id2word=[str(i) for i in range(V)])
    assert manifest(tmp_path / "s")["word_dtype"] == np.dtype(dtype).name
    assert sc.read_shard(0)[0].dtype == dtype and list(sc) == docs
    assert np.load(tmp_path / "s" / "shard-00000.words.npy").dtype == dtype


def test_streaming_a_generator_that_can_be_read_once(tmp_path):
    docs = random_docs(n=300)
    consumed = []

    def once():
        assert not consumed, "the corpus was read twice"
        consumed.append(True)
        yield from docs

    sc = ShardedCorpus.write(once(), tmp_path / "s", shards=3)
    assert list(sc) == docs
    # and a scipy sparse matrix, and a reader with iter_csr (MmCorpus)
    X = sp.random(50, 40, density=0.2, format="csr", random_state=1)
    X.data = np.ceil(X.data * 5)
    sm = ShardedCorpus.write(X, tmp_path / "m", shards=2)
    assert sm.num_terms == 40 and (sp.vstack(list(sm.iter_csr(7))).toarray() == X.toarray()).all()
    mm = tmp_path / "c.mm"
    with open(mm, "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(X))
    assert list(ShardedCorpus.write(MmCorpus(str(mm)), tmp_path / "mm", shards=2)) == \
        list(MmCorpus(str(mm)))


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("doc, match", [
    ([(-1, 1)], "document 1: negative word id"),
    ([(1.5, 1)], "document 1: word id must be an integer"),
    ([(1, -2)], "document 1: negative count"),
    ([(1, 0.5)], "document 1: count must be an integer"),
    ([(10, 1)], "document 1: word id 10 is out of range for a vocabulary of 10 words"),
])
def test_bad_documents_are_named(tmp_path, doc, match):
    with pytest.raises(ValueError, match=match):
        ShardedCorpus.write([[(0, 1)], doc], tmp_path / "s", shards=1,
                            id2word=[str(i) for i in range(10)])
    assert not (tmp_path / "s" / "manifest.json").exists()
    assert [p for p in os.listdir(tmp_path / "s")] == []  # staging removed


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="fewer than the 5 shards"):
        ShardedCorpus.write([[(0, 1)]] * 3, tmp_path / "a", shards=5)
    with pytest.raises(ValueError, match="no tokens"):
        ShardedCorpus.write([[], []], tmp_path / "b", shards=1)
    with pytest.raises(ValueError, match="shards must be an integer >= 1"):
        ShardedCorpus.write([[(0, 1)]], tmp_path / "c", shards=0)
    with pytest.raises(ValueError, match="line break"):
        ShardedCorpus.write([[(0, 1)]], tmp_path / "d", shards=1, id2word=["a\nb"])


def test_existing_destination_is_refused_unless_overwrite(tmp_path):
    assert not ShardedCorpus.exists(tmp_path / "s")
    ShardedCorpus.write(random_docs(n=100), tmp_path / "s", shards=4)
    assert ShardedCorpus.exists(tmp_path / "s")
    with pytest.raises(FileExistsError, match="already holds a shard set"):
        ShardedCorpus.write([[(0, 1)]], tmp_path / "s", shards=1)
    sc = ShardedCorpus.write([[(0, 1)], [(1, 2)]], tmp_path / "s", shards=2, overwrite=True)
    assert list(sc) == [[(0, 1)], [(1, 2)]]
    # the old set's other shards are gone
    assert sorted(os.listdir(tmp_path / "s")) == sorted(
        ["manifest.json"] + [f"shard-0000{i}.{r}.npy" for i in range(2) for r in ("words", "doc_ptr")])


def test_damaged_shard_raises_naming_it(tmp_path):
    sc = ShardedCorpus.write(random_docs(), tmp_path / "s", shards=3)
    path = tmp_path / "s" / "shard-00001.words.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    fresh = ShardedCorpus(tmp_path / "s")
    with pytest.raises(CorpusFormatError, match=r"shard-00001\.words\.npy: checksum mismatch "
                                                r"\(shard shard-00001 is damaged"):
        fresh.read_shard(1)
    with pytest.raises(CorpusFormatError, match="shard-00001"):
        list(fresh)
    with pytest.raises(CorpusFormatError, match="shard-00001"):
        LdaModel(fresh, num_topics=3, iterations=1, distributed=False)
    sc.read_shard(0)  # the others still read
    os.remove(tmp_path / "s" / "shard-00002.doc_ptr.npy")
    with pytest.raises(CorpusFormatError, match=r"shard-00002\.doc_ptr\.npy: shard file missing"):
        fresh.read_shard(2)


@pytest.mark.parametrize("change, match", [
    (lambda m: m.pop("num_terms"), "missing field.*num_terms"),
    (lambda m: m.update(format_version=2), "shard format version 2; this distlda reads version 1"),
    (lambda m: m.update(format="other"), "not a distlda shard manifest"),
    (lambda m: m.update(num_docs=m["num_docs"] + 1), "the shards hold"),
    (lambda m: m.update(word_dtype="uint32"), "word_dtype 'uint32' does not match"),
    (lambda m: m["shards"][1].pop("sha256"), "shard 1 lacks field.*sha256"),
    (lambda m: m["shards"][1].update(words="../x.npy"), "shard 1: words and doc_ptr must be"),
    (lambda m: m["shards"][1].update(first_doc=0), "shard 1 starts at document 0"),
    (lambda m: m.update(num_shards=5), "shards must list num_shards=5"),
])
def test_bad_manifest_is_named(tmp_path, change, match):
    ShardedCorpus.write(random_docs(n=50), tmp_path / "s", shards=3)
    m = manifest(tmp_path / "s")
    change(m)
    write_manifest(tmp_path / "s", m)
    with pytest.raises(CorpusFormatError, match="manifest.json: " + match):
        ShardedCorpus(tmp_path / "s")


def test_truncated_or_missing_manifest(tmp_path):
    ShardedCorpus.write(random_docs(n=50), tmp_path / "s", shards=2)
    raw = (tmp_path / "s" / "manifest.json").read_bytes()
    (tmp_path / "s" / "manifest.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorpusFormatError, match="manifest.json: not a JSON manifest"):
        ShardedCorpus(tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="no shard set at"):
        ShardedCorpus(tmp_path / "nothing")


# ---------------------------------------------------------------------- training
@pytest.mark.parametrize("shards", [1, 3, 8])
def test_training_equals_training_in_memory(tmp_path, shards):
    X, _ = planted_corpus(D=300, V=120, K=4, L=40)
    docs = [sorted((int(j), int(c)) for j, c in zip(r.indices, r.data)) for r in sp.csr_matrix(X)]
    words = [f"w{i}" for i in range(120)]
    sc = ShardedCorpus.write(docs, tmp_path / "s", shards=shards, id2word=words)
    kw = dict(num_topics=4, iterations=8, random_state=7, distributed=False, chunksize=64)
    ref = LdaModel(docs, id2word=words, **kw)
    lda = LdaModel(ShardedCorpus(tmp_path / "s"), id2word=sc.id2word, **kw)
    assert lda.num_tokens == sc.num_tokens and lda.sstats.sum() == sc.num_tokens
    assert np.array_equal(lda.sstats, ref.sstats)
    assert np.array_equal(lda.document_topics(), ref.document_topics())
    # exact counts: per-word column sums are the corpus's
    counts = np.zeros(120, np.int64)
    for doc in docs:
        for w, c in doc:
            counts[w] += c
    assert np.array_equal(lda.sstats.sum(axis=0), counts)


def test_memory_url_round_trip_and_training():
    url = f"memory://distlda-test-{uuid.uuid4().hex}/set"
    docs = random_docs(n=200)
    ShardedCorpus.write(iter(docs), url, shards=3, id2word=[f"w{i}" for i in range(300)])
    sc = ShardedCorpus(url)
    assert list(sc) == docs and sc.id2word[299] == "w299"
    w, p = sc.read_shard(2)
    assert not isinstance(w, np.memmap) and w.dtype == np.uint16 and p[-1] == w.size
    pieces = list(sc.iter_shard(0, chunksize=10))
    assert sum(x[1].size - 1 for x in pieces) == sc.shard(0).num_docs
    lda = LdaModel(sc, num_topics=3, iterations=2, id2word=sc.id2word, distributed=False)
    assert lda.sstats.sum() == sc.num_tokens


# ---------------------------------------------------------------------- the command line
def test_cli_shard_then_train(tmp_path, capsys):
    X, _ = planted_corpus(D=150, V=80, K=4, L=30)
    mm = tmp_path / "c.mm"
    with open(mm, "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(X))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"word{i}\n" for i in range(80)), encoding="utf-8")
    dest = tmp_path / "shards"
    assert main(["shard", str(mm), str(dest), "--shards", "3", "--vocab", str(vocab), "-q"]) == 0
    sc = ShardedCorpus(dest)
    assert sc.num_shards == 3 and list(sc) == list(MmCorpus(str(mm))) and sc.id2word[5] == "word5"
    capsys.readouterr()
    assert main(["train", str(dest), "-k", "4", "-i", "5", "-q", "--distributed", "no",
                 "-o", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert out.count("topic") == 4 and "word" in out
    lda = LdaModel.load(str(tmp_path / "m.npz"))
    assert lda.num_tokens == sc.num_tokens and lda.id2word[5] == "word5"
    # a text corpus goes through train's vocabulary filters
    txt = tmp_path / "docs.txt"
    txt.write_text("apple banana cherry\nbanana cherry durian\napple durian\n", encoding="utf-8")
    assert main(["shard", str(txt), str(tmp_path / "t"), "--shards", "2", "--no-below", "1",
                 "--no-above", "1", "-q"]) == 0
    assert set(ShardedCorpus(tmp_path / "t").id2word.values()) == {
        "apple", "banana", "cherry", "durian"}


def test_cli_shard_errors_are_one_line(tmp_path, capsys):
    txt = tmp_path / "docs.txt"
    txt.write_text("apple banana\n" * 5, encoding="utf-8")
    dest = tmp_path / "s"
    assert main(["shard", str(txt), str(dest), "--shards", "2", "--no-below", "1",
                 "--no-above", "1", "-q"]) == 0
    cases = [
        (["shard", str(txt), str(dest), "--shards", "2"], "already holds a shard set"),
        (["shard", str(txt), str(tmp_path / "x"), "--shards", "0"], "--shards 0: must be"),
        (["shard", str(tmp_path / "no.mm"), str(tmp_path / "x"), "--shards", "2"], "not found"),
        (["shard", str(txt), str(tmp_path / "x"), "--shards", "9", "--no-below", "1",
          "--no-above", "1"], "fewer than the 9 shards"),
        (["train", str(dest), "--vocab", str(txt)], "has its own vocabulary"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv + ["-q"]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert main(["shard", str(txt), str(dest), "--shards", "1", "--overwrite", "-q",
                 "--no-below", "1", "--no-above", "1"]) == 0
    assert ShardedCorpus(dest).num_shards == 1


def test_cli_shard_help_and_missing_arguments():
    proc = subprocess.run([sys.executable, "-m", "distlda", "shard", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage: distlda shard" in proc.stdout
    assert "--shards N" in proc.stdout and "--overwrite" in proc.stdout and "DEST" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "distlda", "shard", "c.mm"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "required" in proc.stderr


def test_dictionary_as_id2word(tmp_path):
    d = Dictionary([["apple", "banana"], ["banana", "cherry"]])
    docs = [d.doc2bow(["apple", "banana", "banana"]), d.doc2bow(["cherry"])]
    sc = ShardedCorpus.write(docs, tmp_path / "s", shards=2, id2word=d)
    assert sc.id2word.token2id == d.token2id and list(sc) == docs


# ---------------------------------------------------------------------- an S3-compatible store
def test_s3_round_trip_and_training(s3_bucket, tmp_path, capsys):
    s3_server, bucket = s3_bucket
    docs = random_docs(n=300)
    words = [f"w{i}" for i in range(300)]
    url = f"s3://{bucket}/wiki"
    ShardedCorpus.write(iter(docs), url, shards=3, id2word=words)
    assert s3_server.exists(f"{bucket}/wiki/manifest.json")
    sc = ShardedCorpus(url)
    assert list(sc) == docs and sc.id2word[299] == "w299"
    w, p = sc.read_shard(1)
    assert w.dtype == np.uint16 and p[-1] == w.size == sc.shard(1).num_tokens
    kw = dict(num_topics=3, iterations=3, random_state=2, distributed=False, chunksize=50)
    ref = LdaModel(docs, id2word=words, **kw)
    lda = LdaModel(sc, id2word=sc.id2word, **kw)
    assert np.array_equal(lda.sstats, ref.sstats)
    # the command line trains on the URL; a damaged object is named
    assert main(["train", url, "-k", "3", "-i", "2", "-q", "--distributed", "no"]) == 0
    assert capsys.readouterr().out.count("topic") == 3
    key = f"{bucket}/wiki/shard-00002.words.npy"
    data = bytearray(s3_server.cat_file(key))
    data[-1] ^= 0xFF
    s3_server.pipe_file(key, bytes(data))
    with pytest.raises(CorpusFormatError, match=r"shard-00002\.words\.npy: checksum mismatch"):
        ShardedCorpus(url).read_shard(2)
