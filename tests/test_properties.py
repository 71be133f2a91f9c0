"""Property-based tests (hypothesis): arbitrary input gives exact results or a clear error.

Over the corpus readers, :func:`iter_chunks`, :class:`LdaModel`'s parameters and the wire
decoder: whatever the bags of words, counts, priors, K and chunk sizes, the result is exact
(every token counted once, topics in range, finite probabilities) or a ValueError/TypeError;
never a crash, a hang, a NaN. Example budgets are small and fixed (``derandomize``: the same
examples every run), so the whole file runs in well under a minute.
"""

import math
import os
import tempfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distlda.cluster import codec
from distlda.corpora import MmCorpus, TextCorpus, UciCorpus, VocabularyFilterError
from distlda.gibbs.chunks import iter_chunks
from distlda.models import LdaModel
from distlda.models.ldamodel import PRIOR_MAX, PRIOR_MIN

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

ids = st.one_of(st.integers(-2, 40), st.sampled_from([0.0, 3.0, 2.5, float("nan"), 1e300]))
counts = st.one_of(st.integers(-1, 6), st.sampled_from([0.0, 2.0, 1.5, float("inf")]))
pair = st.tuples(ids, counts)
odd_doc = st.sampled_from([None, 3, "ab", [(1, 2, 3)], [(1,)], [[1, "x"]], [("a", 1)]])
doc = st.one_of(st.lists(pair, max_size=6), odd_doc)
good_doc = st.lists(st.tuples(st.integers(0, 25), st.integers(0, 5)), max_size=6)


def _valid_entry(i, c, num_terms):
    return (isinstance(i, int) or float(i).is_integer()) and (
        isinstance(c, int) or (math.isfinite(c) and float(c).is_integer())) and (
        0 <= i < (num_terms if num_terms is not None else 2 ** 31 - 1)) and 0 <= c


def _is_valid(docs, num_terms):
    for d in docs:
        if not isinstance(d, list):
            return False
        for e in d:
            if not (isinstance(e, tuple) and len(e) == 2):
                return False
            i, c = e
            if isinstance(i, str) or isinstance(c, str):
                return False
            if isinstance(i, float) and not math.isfinite(i):
                return False
            if not _valid_entry(i, c, num_terms):
                return False
    return True


@settings(max_examples=300, **SETTINGS)
@given(docs=st.lists(doc, max_size=8), chunksize=st.integers(1, 4),
       num_terms=st.one_of(st.none(), st.integers(0, 45)))
def test_iter_chunks_is_exact_or_refuses(docs, chunksize, num_terms):
    try:
        chunks = list(iter_chunks(docs, num_terms, chunksize))
    except (ValueError, TypeError):
        assert not _is_valid(docs, num_terms)
        return
    assert _is_valid(docs, num_terms)
    assert sum(c.num_docs for c in chunks) == len(docs)
    assert all(1 <= c.num_docs <= chunksize for c in chunks)
    words = np.concatenate([c.words for c in chunks]) if chunks else np.zeros(0, np.int32)
    expect = [int(i) for d in docs for i, c in d for _ in range(int(c))]
    assert words.tolist() == expect
    for c in chunks:
        assert c.doc_ptr[0] == 0 and c.doc_ptr[-1] == c.num_tokens
        assert (np.diff(c.doc_ptr) >= 0).all()


@settings(max_examples=60, **SETTINGS)
@given(rows=st.lists(st.lists(st.integers(0, 4), min_size=5, max_size=5), min_size=1,
                     max_size=6), chunksize=st.integers(1, 4))
def test_iter_chunks_of_a_sparse_matrix_counts_every_token(rows, chunksize):
    X = sp.csr_matrix(np.array(rows))
    chunks = list(iter_chunks(X, 5, chunksize))
    assert sum(c.num_tokens for c in chunks) == X.sum()
    assert sum(c.num_docs for c in chunks) == X.shape[0]


# ------------------------------------------------------------------ readers
@settings(max_examples=40, **SETTINGS)
@given(docs=st.lists(good_doc, max_size=6), fmt=st.sampled_from(["mm", "uci"]))
def test_readers_give_back_what_was_written(docs, fmt):
    docs = [[(i, c) for i, c in sorted(dict(d).items()) if c > 0] for d in docs]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "docword.x.txt")
        num_terms = 1 + max((i for d in docs for i, _ in d), default=0)
        if fmt == "mm":
            MmCorpus.serialize(path, docs, num_terms=num_terms)
            corpus = MmCorpus(path)
        else:
            nnz = sum(len(d) for d in docs)
            with open(path, "w") as f:
                f.write(f"{len(docs)}\n{num_terms}\n{nnz}\n")
                for n, d in enumerate(docs):
                    for i, c in d:
                        f.write(f"{n + 1} {i + 1} {c}\n")
            corpus = UciCorpus(path)
        assert [sorted(d) for d in corpus] == docs
        chunks = list(iter_chunks(corpus, corpus.num_terms, 2))
        assert sum(c.num_tokens for c in chunks) == sum(c for d in docs for _, c in d)


line = st.one_of(
    st.tuples(st.integers(-1, 5), st.integers(-1, 6), st.integers(-2, 4)).map(
        lambda t: " ".join(map(str, t))),
    st.sampled_from(["", "%", "1 1", "1 1 1 1", "a b c", "1 1 1.5", "99999999999999999999 1 1",
                     "1 1 -0", "\x00", "1\t1\t1", "%%MatrixMarket matrix coordinate real general"]))


@settings(max_examples=200, **SETTINGS)
@given(header=st.tuples(st.integers(-1, 4), st.integers(-1, 7), st.integers(-1, 8)),
       body=st.lists(line, max_size=8), fmt=st.sampled_from(["mm", "uci"]))
def test_readers_on_arbitrary_files_give_valid_documents_or_a_value_error(header, body, fmt):
    D, W, nnz = header
    if fmt == "mm":
        text = f"%%MatrixMarket matrix coordinate real general\n{D} {W} {nnz}\n"
    else:
        text = f"{D}\n{W}\n{nnz}\n"
    text += "\n".join(body) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "docword.y.txt")
        with open(path, "w") as f:
            f.write(text)
        try:
            corpus = MmCorpus(path) if fmt == "mm" else UciCorpus(path)
            docs = list(corpus)
            chunks = list(iter_chunks(corpus, corpus.num_terms, 3))
        except ValueError:
            return
        assert len(docs) == corpus.num_docs
        for d in docs:
            for i, c in d:
                assert 0 <= i < corpus.num_terms and c >= 0
        assert sum(c.num_tokens for c in chunks) == sum(c for d in docs for _, c in d)


@settings(max_examples=40, **SETTINGS)
@given(raw=st.binary(max_size=120), no_below=st.integers(1, 3))
def test_text_corpus_on_arbitrary_bytes_gives_valid_documents_or_a_value_error(raw, no_below):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.txt")
        with open(path, "wb") as f:
            f.write(raw)
        try:
            corpus = TextCorpus(path, no_below=no_below, no_above=1.0)
            docs = list(corpus)
        except VocabularyFilterError as e:  # no word survived tokenisation and the filters
            assert "no words" in str(e) or "removed" in str(e), e
            return
        except ValueError as e:
            assert "UTF-8" in str(e)
            return
        V = len(corpus.dictionary)
        assert len(docs) == corpus.num_docs == raw.count(b"\n") + (not raw.endswith(b"\n") and raw != b"")
        for d in docs:
            assert all(0 <= i < V and c >= 1 for i, c in d)
        if V and any(docs):
            lda = LdaModel(corpus, num_topics=2, id2word=corpus.dictionary, iterations=2,
                           random_state=0, distributed=False, workers=1)
            assert int(lda.sstats.sum()) == sum(c for d in docs for _, c in d)


# ------------------------------------------------------------------ the model
prior = st.one_of(st.sampled_from([PRIOR_MIN, PRIOR_MAX, 1e-101, 1e101, 0.0, -1.0,
                                   float("nan"), float("inf"), 1e155, "symmetric"]),
                  st.floats(1e-3, 10.0))


def _prior_ok(p, is_alpha: bool) -> bool:
    if isinstance(p, str):
        return p in (("symmetric", "asymmetric", "auto") if is_alpha else ("symmetric",))
    return PRIOR_MIN <= p <= PRIOR_MAX


@settings(max_examples=200, **SETTINGS)
@given(docs=st.lists(good_doc, min_size=1, max_size=6), K=st.integers(1, 5),
       alpha=st.one_of(prior, st.sampled_from(["asymmetric", "auto", "bogus"])),
       eta=prior, chunksize=st.integers(1, 3), iterations=st.integers(0, 3),
       sampler=st.sampled_from(["sparse", "dense", "mh"]), workers=st.integers(1, 2))
def test_model_is_exact_or_refuses(docs, K, alpha, eta, chunksize, iterations, sampler, workers):
    n_tokens = sum(c for d in docs for _, c in d)
    try:
        lda = LdaModel(docs, num_topics=K, alpha=alpha, eta=eta, chunksize=chunksize,
                       iterations=iterations, sampler=sampler, workers=workers,
                       random_state=0, distributed=False, eval_every=1,
                       inference_iterations=4)
    except (ValueError, TypeError) as e:
        assert n_tokens == 0 or not _prior_ok(alpha, True) or not _prior_ok(eta, False), e
        return
    assert n_tokens > 0 and _prior_ok(alpha, True) and _prior_ok(eta, False)
    assert int(lda.sstats.sum()) == n_tokens == lda.num_tokens
    for c in lda.state.chunks:
        assert c.topics.size == 0 or (c.topics.min() >= 0 and c.topics.max() < K)
    nwk, nk = lda.state.recount()
    np.testing.assert_array_equal(nwk, lda.state.nwk)
    np.testing.assert_array_equal(nk, lda.state.nk)
    assert np.isfinite(lda.log_likelihood_per_token())
    theta = lda.fold_in(docs)
    assert np.isfinite(theta).all()
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)
    topics = lda.get_topics()
    assert np.isfinite(topics).all()


# ------------------------------------------------------------------ the wire decoder
@settings(max_examples=300, **SETTINGS)
@given(dtype=st.one_of(st.sampled_from(sorted(codec._ALLOWED) + ["<f4", "|O", ">i4", "<U3"]),
                       st.text(max_size=4)),
       shape=st.lists(st.one_of(st.integers(0, 9), st.just(2 ** 70)), max_size=3),  # < 0: gap
       data=st.binary(max_size=40), copy=st.booleans())
def test_wire_decoder_gives_the_declared_array_or_a_value_error(dtype, shape, data, copy):
    msg = {"dtype": dtype, "shape": shape, "data": data}
    try:
        a = codec.dec(msg, copy=copy)
    except (ValueError, TypeError):
        return
    assert dtype in codec._ALLOWED
    assert list(a.shape) == shape
    assert a.nbytes == len(data)
    assert a.dtype == np.dtype(dtype) and a.dtype.kind in "iuf"
    if not copy:
        assert not a.flags.writeable
    np.testing.assert_array_equal(codec.dec(codec.enc(a)), a)


@settings(max_examples=50, **SETTINGS)
@given(arr=st.one_of(
    st.lists(st.integers(-2 ** 31, 2 ** 31 - 1), max_size=10).map(lambda v: np.array(v, np.int64)),
    st.lists(st.floats(allow_nan=False), max_size=10).map(lambda v: np.array(v, np.float64)),
    st.lists(st.integers(0, 255), max_size=12).map(lambda v: np.array(v, np.uint8).reshape(-1, 1))))
def test_wire_round_trip(arr):
    np.testing.assert_array_equal(codec.dec(codec.enc(arr)), arr)


@pytest.mark.parametrize("msg", [{"dtype": "<i4", "data": b""},
                                 {"dtype": "<i4", "shape": [-1], "data": b"\0" * 8}],
                         ids=["missing", "minus-one"])
def test_wire_decoder_gap_missing_field_or_negative_size(msg):
    with pytest.raises((ValueError, TypeError)):
        codec.dec(msg)
