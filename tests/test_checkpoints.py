"""Checkpoints of topic assignments: format, round trips (local, memory://, S3), atomicity,
verification on reading, probe, prune, and per-document topic counts."""

import hashlib
import json
import os
import stat
import tracemalloc
import uuid

import numpy as np
import pytest

from distlda.corpora import ShardedCorpus
from distlda.corpora.checkpoints import CheckpointStore, doc_topic_counts, topic_dtype
from distlda.errors import CheckpointError


def random_topics(n, K, seed=0):
    return np.random.default_rng(seed).integers(0, K, n).astype(np.int32)


def listing(path):
    return sorted(os.listdir(path))


# ---------------------------------------------------------------------- format and round trip
@pytest.mark.parametrize("K, dtype", [(10, np.uint8), (256, np.uint8), (300, np.uint16),
                                      (65536, np.uint16), (70000, np.int32)])
def test_round_trip_local_with_the_narrowest_dtype(tmp_path, K, dtype):
    assert topic_dtype(K) == dtype
    z = random_topics(1000, K, seed=K)
    z[:2] = [0, K - 1]
    store = CheckpointStore(tmp_path / "z")  # created on first write
    ref = store.write(3, 12, z, num_topics=K)
    assert ref["file"] == "z-00003-00000012.npy" and ref["dtype"] == np.dtype(dtype).name
    assert (ref["shard"], ref["sweep"], ref["tokens"], ref["num_topics"]) == (3, 12, 1000, K)
    data = tmp_path / "z" / "z-00003-00000012.npy"
    on_disk = np.load(data)  # a real .npy file
    assert on_disk.dtype == dtype and np.array_equal(on_disk, z)
    assert ref["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    sidecar = json.loads((tmp_path / "z" / "z-00003-00000012.json").read_text("utf-8"))
    assert sidecar == ref == json.loads(json.dumps(ref))  # JSON-able, and what the sidecar says
    back = store.read(ref, num_tokens=1000, num_topics=K)
    assert back.dtype == np.int32 and np.array_equal(back, z)
    assert store.latest(3) == ref and store.latest(2) is None and store.exists(ref)
    assert listing(tmp_path / "z") == ["z-00003-00000012.json", "z-00003-00000012.npy"]


def test_any_integer_input_and_empty_shards(tmp_path):
    store = CheckpointStore(str(tmp_path))
    z = np.arange(20, dtype=np.int64)[::-2]  # not contiguous, int64
    ref = store.write(0, 0, z, 20)
    assert np.array_equal(store.read(ref, 10, 20), z)
    empty = store.write(1, 0, np.zeros(0, np.uint8), 5)
    assert store.read(empty, 0, 5).shape == (0,) and np.load(tmp_path / empty["file"]).size == 0


def test_wide_numbers_and_rewriting_a_sweep(tmp_path):
    store = CheckpointStore(tmp_path)
    ref = store.write(123456, 123456789, np.array([1, 2]), 3)
    assert ref["file"] == "z-123456-123456789.npy" and store.latest(123456) == ref
    again = store.write(123456, 123456789, np.array([0, 0]), 3)  # replaces it
    assert store.latest(123456) == again != ref
    assert store.read(again, 2, 3).tolist() == [0, 0]
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        store.read(ref, 2, 3)


def test_memory_url_round_trip():
    url = f"memory://distlda-test-{uuid.uuid4().hex}/z"
    store = CheckpointStore(url + "/")
    store.probe()
    z = random_topics(5000, 300)
    ref = store.write(0, 1, z, 300)
    assert store.url == url and np.array_equal(store.read(ref, 5000, 300), z)
    assert store.latest(0) == ref and store.exists(ref)
    store.prune(0, keep=0)
    assert store.latest(0) is None and not store.exists(ref)


def test_write_streams_and_read_holds_only_the_result(tmp_path):
    store = CheckpointStore(tmp_path)
    z = random_topics(4_000_000, 70000)  # 16 MB of int32, written as int32
    tracemalloc.start()
    try:
        ref = store.write(0, 1, z, 70000)
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 3 << 20, f"write held {peak} bytes beyond the array"
        tracemalloc.reset_peak()
        back = store.read(ref, z.size, 70000)
        _, peak = tracemalloc.get_traced_memory()
        assert peak < z.nbytes + (3 << 20), f"read held {peak} bytes"
    finally:
        tracemalloc.stop()
    assert np.array_equal(back, z)


def test_bad_input_to_write_is_named(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(ValueError, match=r"topics\[2\] = 10 is not a topic of num_topics=10"):
        store.write(0, 0, np.array([1, 2, 10]), 10)
    with pytest.raises(ValueError, match=r"topics\[0\] = -1"):
        store.write(0, 0, np.array([-1]), 10)
    with pytest.raises(ValueError, match="1-D integer array"):
        store.write(0, 0, np.zeros((2, 2), int), 10)
    with pytest.raises(ValueError, match="1-D integer array"):
        store.write(0, 0, np.zeros(3), 10)
    with pytest.raises(ValueError, match="shard must be an integer >= 0"):
        store.write(-1, 0, np.zeros(3, int), 10)
    with pytest.raises(ValueError, match="sweep must be an integer >= 0"):
        store.write(0, True, np.zeros(3, int), 10)
    with pytest.raises(ValueError, match="num_topics must be an integer >= 1"):
        store.write(0, 0, np.zeros(3, int), 0)
    with pytest.raises(ValueError, match="keep must be an integer >= 0"):
        store.prune(0, keep=-1)
    assert listing(tmp_path) == []  # nothing written


# ---------------------------------------------------------------------- atomicity and checks
def test_only_checkpoints_with_a_sidecar_are_complete(tmp_path):
    store = CheckpointStore(tmp_path)
    first = store.write(0, 1, random_topics(50, 10), 10)
    second = store.write(0, 2, random_topics(50, 10, seed=1), 10)
    assert store.latest(0) == second
    os.remove(tmp_path / "z-00000-00000002.json")  # as if the writer died before committing
    assert store.latest(0) == first and not store.exists(second)
    # a temporary file of an interrupted local write, and a sidecar whose data is gone
    (tmp_path / ".z-00000-00000003.npy.tmp-abc123").write_bytes(b"\x93NUMPY")
    store.write(0, 4, random_topics(50, 10), 10)
    os.remove(tmp_path / "z-00000-00000004.npy")
    assert store.latest(0) == first
    # a newer sidecar that is not valid JSON is named, not skipped
    (tmp_path / "z-00000-00000009.npy").write_bytes(b"")
    (tmp_path / "z-00000-00000009.json").write_text("{", "utf-8")
    with pytest.raises(CheckpointError, match=r"z-00000-00000009\.json: not a checkpoint "
                                              r"sidecar.*delete it"):
        store.latest(0)
    # a sidecar that names another sweep than its name says
    (tmp_path / "z-00000-00000009.json").write_text(json.dumps(first), "utf-8")
    with pytest.raises(CheckpointError, match="says shard 0, sweep 1, its name says shard 0, "
                                              "sweep 9"):
        store.latest(0)


def failing_pieces(monkeypatch):
    """Make writes of data files fail after their header and a first piece."""
    import distlda.corpora.checkpoints as ck
    real = ck._npy_pieces

    def pieces(*args):
        it = real(*args)
        yield next(it)
        yield next(it)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ck, "_npy_pieces", pieces)


def test_a_failed_write_commits_nothing(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    ref = store.write(0, 1, random_topics(1000, 10), 10)
    failing_pieces(monkeypatch)
    for sweep in (1, 2):  # rewriting sweep 1, then a new sweep 2
        with pytest.raises(CheckpointError, match=rf"z-00000-0000000{sweep}\.npy: cannot write "
                                                  rf"the checkpoint \(OSError.*No space"):
            store.write(0, sweep, random_topics(1000, 10, seed=sweep), 10)
    # the old sweep 1 was un-committed before its data was touched; no temporary file stays
    assert store.latest(0) is None and not store.exists(ref)
    assert listing(tmp_path) == ["z-00000-00000001.npy"]


def test_damaged_files_are_named(tmp_path):
    store = CheckpointStore(tmp_path)
    z = random_topics(1000, 300)
    ref = store.write(2, 5, z, 300)
    path = tmp_path / ref["file"]
    url = f"{tmp_path}/{ref['file']}"
    good = path.read_bytes()

    def fails(match, num_tokens=1000, num_topics=300):
        with pytest.raises(CheckpointError, match=match) as e:
            store.read(ref, num_tokens, num_topics)
        assert str(e.value).startswith(url + ": ")  # the file's full URL
        return str(e.value)

    path.write_bytes(good[:-3])
    assert "truncated: 2125 bytes, expected 2128" in fails("truncated")
    assert not store.exists(ref)
    path.write_bytes(good[:40])
    fails("truncated: 40 bytes")
    altered = bytearray(good)
    altered[-1] ^= 1
    path.write_bytes(bytes(altered))
    assert store.exists(ref)  # cheap: the size is right
    fails("checksum mismatch: the file changed after it was written")
    path.write_bytes(good + b"\0")
    fails("checksum mismatch")  # longer than written
    np.save(path, z.astype(np.int32))  # another dtype: the header says so
    fails(r"header says int32 of shape \(1000,\)")
    path.write_bytes(good)
    fails("written for num_topics=300, the model has 299", num_topics=299)
    fails("holds 1000 topics, the shard has 999 tokens", num_tokens=999)
    os.remove(path)
    fails("missing: the checkpoint was deleted or moved")
    # a well-formed file whose checksum matches but with a topic >= K (a writer's bug)
    bad = z.astype(np.uint16)
    bad[7] = 300
    np.save(path, bad)
    forged = dict(ref, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match="topic 300 at token 7 is not a topic of "
                                              "num_topics=300"):
        store.read(forged, 1000, 300)


@pytest.mark.parametrize("change, match", [
    (lambda r: [r], "must be the dict"),
    (lambda r: {k: v for k, v in r.items() if k != "sha256"}, "lacks field"),
    (lambda r: dict(r, format_version=2), "version 2"),
    (lambda r: dict(r, file="../z-00000-00000001.npy"), "names file"),
    (lambda r: dict(r, tokens=-1), "non-negative integers"),
    (lambda r: dict(r, dtype="int32"), "dtype 'int32' does not match num_topics=10"),
])
def test_malformed_refs_are_refused(tmp_path, change, match):
    store = CheckpointStore(tmp_path)
    ref = store.write(0, 1, np.zeros(4, int), 10)
    with pytest.raises(CheckpointError, match=match):
        store.read(change(ref), 4, 10)
    with pytest.raises(CheckpointError, match=match):
        store.exists(change(ref))


# ---------------------------------------------------------------------- probe
def test_probe_creates_the_folder_and_leaves_nothing(tmp_path):
    store = CheckpointStore(tmp_path / "a" / "b")
    store.probe()
    assert listing(tmp_path / "a" / "b") == []


def test_probe_under_a_regular_file_fails(tmp_path):
    (tmp_path / "file").write_text("x")
    url = str(tmp_path / "file" / "z")
    with pytest.raises(CheckpointError, match="cannot write checkpoints there") as e:
        CheckpointStore(url).probe()
    assert url in str(e.value) and "pass checkpoint=URL" in str(e.value)
    with pytest.raises(CheckpointError, match=r"z-00000-00000001\.npy: cannot write"):
        CheckpointStore(url).write(0, 1, np.zeros(3, int), 4)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into a read-only folder anyway (chmod does not stop it)")
def test_probe_of_a_read_only_folder_fails(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(CheckpointError, match="PermissionError.*permissions"):
            CheckpointStore(folder).probe()
    finally:
        folder.chmod(stat.S_IRWXU)


# ---------------------------------------------------------------------- prune
def test_prune_keeps_the_newest_complete_ones(tmp_path):
    store = CheckpointStore(tmp_path)
    refs = {s: store.write(0, s, random_topics(30, 10, seed=s), 10) for s in (1, 2, 3, 5, 6)}
    other = store.write(1, 1, random_topics(30, 10), 10)  # another shard: untouched
    (tmp_path / "z-00000-00000000.npy").write_bytes(b"orphan")  # older orphan data: goes
    (tmp_path / "z-00000-00000004.json").write_bytes(b"{}")  # older sidecar without data: goes
    (tmp_path / "z-00000-00000007.npy").write_bytes(b"in progress")  # newer orphan: stays
    (tmp_path / ".z-00000-00000002.npy.tmp-0a1b2c").write_bytes(b"")  # older tmp: goes
    (tmp_path / ".z-00000-00000008.npy.tmp-0a1b2c").write_bytes(b"")  # newer tmp: stays
    store.prune(0, keep=2)
    assert listing(tmp_path) == [".z-00000-00000008.npy.tmp-0a1b2c",
                                 "z-00000-00000005.json", "z-00000-00000005.npy",
                                 "z-00000-00000006.json", "z-00000-00000006.npy",
                                 "z-00000-00000007.npy",
                                 "z-00001-00000001.json", "z-00001-00000001.npy"]
    assert store.latest(0) == refs[6] and store.exists(refs[5]) and not store.exists(refs[3])
    store.prune(0, keep=5)  # fewer than keep: nothing to do
    assert store.exists(refs[5])
    store.prune(0, keep=0)
    assert store.latest(0) is None and store.latest(1) == other
    assert "z-00000-00000007.npy" in listing(tmp_path)  # still newer than anything complete
    CheckpointStore(tmp_path / "nothing").prune(0)  # no folder: nothing to do


def test_prune_spares_the_protected_sweeps(tmp_path):
    # what a model kept by the client refers to stays, however many newer ones come
    store = CheckpointStore(tmp_path)
    refs = {s: store.write(0, s, random_topics(30, 10, seed=s), 10) for s in (2, 4, 6, 8, 10)}
    store.prune(0, keep=2, protect=[4])
    assert [s for s in refs if store.exists(refs[s])] == [4, 8, 10]


# ---------------------------------------------------------------------- document-topic counts
def test_doc_topic_counts_equals_a_direct_count(tmp_path):
    rng = np.random.default_rng(4)
    docs = []
    for _ in range(120):
        ids = rng.integers(0, 50, rng.integers(0, 15))
        docs.append(sorted({int(w): int(rng.integers(1, 4)) for w in ids}.items()))
    docs[5] = []
    corpus = ShardedCorpus.write(docs, tmp_path / "s", shards=3)
    K = 7
    store = CheckpointStore(tmp_path / "z")
    for i in range(corpus.num_shards):
        info = corpus.shard(i)
        z = random_topics(info.num_tokens, K, seed=i)
        ref = store.write(i, 1, z, K)
        counts = doc_topic_counts(corpus, i, store.read(ref, info.num_tokens, K), K)
        assert counts.shape == (info.num_docs, K) and counts.dtype == np.int32
        assert counts.has_sorted_indices and (counts.data > 0).all()
        _, ptr = corpus.read_shard(i)
        direct = np.zeros((info.num_docs, K), np.int32)
        for j in range(info.num_docs):
            for t in z[ptr[j]:ptr[j + 1]]:
                direct[j, t] += 1
        assert np.array_equal(counts.toarray(), direct)
        assert direct.sum(axis=1).tolist() == [
            sum(c for _, c in docs[info.first_doc + j]) for j in range(info.num_docs)]
    n0 = corpus.shard(0).num_tokens
    with pytest.raises(ValueError, match=f"topics holds {n0 + 1} entries, shard 0 .* has {n0} "
                                         f"tokens"):
        doc_topic_counts(corpus, 0, np.zeros(n0 + 1, int), K)
    with pytest.raises(ValueError, match=r"topics\[0\] = 7 is not a topic of num_topics=7"):
        doc_topic_counts(corpus, 0, np.full(n0, K), K)
    with pytest.raises(IndexError):
        doc_topic_counts(corpus, 3, np.zeros(1, int), K)


def test_doc_topic_counts_by_pieces(tmp_path, monkeypatch):
    """Documents counted in several pieces (one longer than a piece) give the same matrix."""
    import distlda.corpora.checkpoints as ck
    docs = [[(0, 5), (1, 3)], [], [(2, 40)], [(1, 1)], [(3, 2), (4, 9)]]
    corpus = ShardedCorpus.write(docs, tmp_path / "s", shards=1)
    z = random_topics(corpus.num_tokens, 5, seed=9)
    whole = doc_topic_counts(corpus, 0, z, 5).toarray()
    monkeypatch.setattr(ck, "_COUNT_PIECE", 7)
    assert np.array_equal(doc_topic_counts(corpus, 0, z, 5).toarray(), whole)
    assert whole.sum(axis=1).tolist() == [8, 0, 40, 1, 11]


# ---------------------------------------------------------------------- an S3-compatible store
def test_s3_round_trip_prune_and_probe(s3_bucket):
    fs, bucket = s3_bucket
    url = f"s3://{bucket}/run/z"
    store = CheckpointStore(url)
    store.probe()
    assert fs.ls(bucket, detail=False) == []  # the probe left nothing
    z = {s: random_topics(3000, 70000, seed=s) for s in (1, 2, 3)}
    refs = {s: store.write(4, s, z[s], 70000) for s in z}
    with fs.open(f"{bucket}/run/z/z-00004-00000003.npy") as f:
        assert np.array_equal(np.load(f), z[3])
    # a second store on the URL (as a worker would open it) finds what was written
    fresh = CheckpointStore(url)
    assert fresh.latest(4) == refs[3] and fresh.exists(refs[2])
    assert np.array_equal(fresh.read(refs[3], 3000, 70000), z[3])
    fs.rm(f"{bucket}/run/z/z-00004-00000003.json")  # uncommitted
    assert store.latest(4) == refs[2]
    store.prune(4, keep=1)
    assert sorted(fs.ls(f"{bucket}/run/z", detail=False)) == [
        f"{bucket}/run/z/z-00004-00000002.json", f"{bucket}/run/z/z-00004-00000002.npy",
        f"{bucket}/run/z/z-00004-00000003.npy"]
    key = f"{bucket}/run/z/z-00004-00000002.npy"
    data = bytearray(fs.cat_file(key))
    data[-1] ^= 0xFF
    fs.pipe_file(key, bytes(data))
    with pytest.raises(CheckpointError, match=rf"{url}/z-00004-00000002\.npy: checksum mismatch"):
        store.read(refs[2], 3000, 70000)
    fs.rm(key)
    with pytest.raises(CheckpointError, match=rf"{url}/z-00004-00000002\.npy: missing"):
        store.read(refs[2], 3000, 70000)


def test_s3_a_failed_upload_leaves_no_object(s3_bucket, monkeypatch):
    fs, bucket = s3_bucket
    store = CheckpointStore(f"s3://{bucket}/z")
    failing_pieces(monkeypatch)
    with pytest.raises(CheckpointError, match="No space"):
        store.write(0, 1, random_topics(1000, 10), 10)
    assert fs.ls(bucket, detail=False) == [] and store.latest(0) is None


def test_s3_missing_bucket_fails_the_probe(s3_bucket):
    fs, _ = s3_bucket
    url = "s3://no-such-bucket-distlda/z"
    with pytest.raises(CheckpointError, match=f"{url}: cannot write checkpoints there.*"
                                              f"pass checkpoint=URL") as excinfo:
        CheckpointStore(url).probe()
    assert "does not exist" in str(excinfo.value)  # the cause, as the store said it
    assert not fs.exists("no-such-bucket-distlda")  # the probe created no bucket
