"""Model files: every past format version loads; every kind of damage gives one clear ValueError."""

import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from distlda import persistence as P
from distlda.models import LdaModel

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = {"model_v1_initial.npz": 1, "model_v1_auto_alpha.npz": 1, "model_v1.npz": 1,
            "model_v2.npz": 2, "model_v3.npz": 3, "model_v4.npz": 4}


def test_one_fixture_per_version():
    versions = set()
    for name in FIXTURES:
        with zipfile.ZipFile(DATA / name) as zf:
            meta = json.loads(np.load(io.BytesIO(zf.read("meta.npy"))).tobytes())
        versions.add(meta["format_version"])
        assert meta["format_version"] == FIXTURES[name]
    assert versions == set(P.SUPPORTED_VERSIONS)
    assert P.FORMAT_VERSION == max(P.SUPPORTED_VERSIONS)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_past_version_loads_with_documented_defaults(name):
    lda = LdaModel.load(str(DATA / name))
    ref = LdaModel.load(str(DATA / "model_v2.npz"))
    assert int(lda.sstats.sum()) == lda.num_tokens == ref.num_tokens
    np.testing.assert_array_equal(lda.sstats, ref.sstats)
    np.testing.assert_array_equal(lda.alpha, ref.alpha)
    assert lda.id2word == ref.id2word and lda.num_terms == 11
    if name == "model_v1_initial.npz":
        assert (lda.optimize_alpha, lda.optimize_interval, lda.optimize_burnin,
                lda.state.sweeps_done) == (False, 10, 20, 0)
    if name in ("model_v1_initial.npz", "model_v1_auto_alpha.npz"):
        assert (lda.sampler, lda.mh_steps) == ("sparse", None)
    theta = lda.fold_in([[(0, 1), (3, 2)]])
    np.testing.assert_array_equal(theta, ref.fold_in([[(0, 1), (3, 2)]]))
    lda.update([[(1, 2), (4, 1)]], iterations=2)  # and it trains on
    assert int(lda.sstats.sum()) == ref.num_tokens + 3


def test_round_trip_keeps_state_and_inference(tmp_path):
    ref = LdaModel.load(str(DATA / "model_v2.npz"))
    f = tmp_path / "m.npz"
    ref.save(str(f))
    back = LdaModel.load(str(f))
    np.testing.assert_array_equal(back.sstats, ref.sstats)
    for a, b in zip(back.state.chunks, ref.state.chunks):
        np.testing.assert_array_equal(a.topics, b.topics)
        np.testing.assert_array_equal(a.doc_ptr, b.doc_ptr)
    doc = [(2, 1), (5, 3)]
    np.testing.assert_array_equal(back.fold_in([doc]), ref.fold_in([doc]))


# ------------------------------------------------------------------ damage
def good_bytes() -> bytes:
    return (DATA / "model_v4.npz").read_bytes()  # the current version


def members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rezip(parts: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, b in parts.items():
            zf.writestr(n, b)
    return buf.getvalue()


def npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def with_meta(change) -> bytes:
    parts = members(good_bytes())
    meta = json.loads(np.load(io.BytesIO(parts["meta.npy"])).tobytes())
    change(meta)
    parts["meta.npy"] = npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return rezip(parts)


def with_array(name, arr) -> bytes:
    parts = members(good_bytes())
    if arr is None:
        del parts[name + ".npy"]
    else:
        parts[name + ".npy"] = npy(arr)
    return rezip(parts)


def arr(name):
    return np.load(io.BytesIO(members(good_bytes())[name + ".npy"]))


def _nwk_plus_one():
    a = arr("nwk").copy()
    a[0, 0] += 1
    return a


def _topics_out_of_range():
    a = arr("topics").copy()
    a[0] = 3
    return a


DAMAGES = {
    "empty": lambda: b"",
    "text": lambda: b"hello, I am not a model\n",
    "gzip": lambda: gzip.compress(b"x" * 100),
    "plain npy": lambda: npy(np.arange(5)),
    "pickled npy": lambda: npy(np.array([{"a": 1}], dtype=object)),
    "zip without meta": lambda: rezip({"x.npy": npy(np.arange(3))}),
    "other npz format": lambda: with_meta(lambda m: m.update(format="something.else")),
    "meta not json": lambda: rezip({**members(good_bytes()),
                                    "meta.npy": npy(np.frombuffer(b"{oops", np.uint8))}),
    "meta pickled": lambda: rezip({**members(good_bytes()),
                                   "meta.npy": npy(np.array([1, "x"], dtype=object))}),
    "missing field": lambda: with_meta(lambda m: m.pop("num_tokens")),
    "missing eta array": lambda: with_array("eta", None),
    "eta kind without its array": lambda: with_meta(lambda m: m.update(eta_kind="word")),
    "missing old field": lambda: with_meta(lambda m: m.pop("num_topics")),
    "bad field": lambda: with_meta(lambda m: m.update(num_topics="three")),
    "bad rng state": lambda: with_meta(lambda m: m.update(rng_state={"x": 1})),
    "wrong num_tokens": lambda: with_meta(lambda m: m.update(num_tokens=5)),
    "bad eta": lambda: with_meta(lambda m: m.update(eta=1e300)),
    "missing array": lambda: with_array("nk", None),
    "missing words": lambda: with_array("words", None),
    "wrong dtype": lambda: with_array("nwk", arr("nwk").astype(np.float64)),
    "object array": lambda: with_array("alpha", np.array([1, "a", None], dtype=object)),
    "wrong shape": lambda: with_array("nwk", arr("nwk")[:5]),
    "counts differ": lambda: with_array("nwk", _nwk_plus_one()),
    "topic out of range": lambda: with_array("topics", _topics_out_of_range()),
    "doc lengths off": lambda: with_array("doc_lens", arr("doc_lens") + 1),
    "negative shape": lambda: rezip({**members(good_bytes()), "nk.npy": _negative_header()}),
    "huge claimed shape": lambda: rezip({**members(good_bytes()), "words.npy": _huge_header()}),
}


def _negative_header() -> bytes:
    # a valid npy header of shape (3,) whose size was changed to -3 (same length)
    raw = npy(np.zeros(3, np.int32))
    return raw.replace(b"(3,), ", b"(-3,),", 1)


def _huge_header() -> bytes:
    # a valid npy header claiming 10**12 int32 words, with 8 bytes of data
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<i4", "fortran_order": False, "shape": (10 ** 12,)})
    return buf.getvalue() + b"\0" * 8


def truncations():
    data = good_bytes()
    return {f"cut at {n}": (lambda n=n: data[:n])
            for n in (1, 4, 30, len(data) // 3, len(data) // 2, len(data) - 23, len(data) - 1)}


def assert_clear_error(path: Path, data: bytes):
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        LdaModel.load(str(path))
    e = info.value
    assert type(e) is P.ModelFileError
    msg = str(e)
    assert str(path) in msg and "allow_pickle" not in msg
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)
    return msg


@pytest.mark.parametrize("kind", sorted({**DAMAGES, **truncations()}))
def test_damaged_file_gives_one_clear_value_error(kind, tmp_path):
    data = {**DAMAGES, **truncations()}[kind]()
    msg = assert_clear_error(tmp_path / "damaged.npz", data)
    if kind in ("empty", "text", "gzip", "plain npy", "pickled npy", "zip without meta",
                "other npz format"):
        assert "not a distlda model file" in msg
    else:
        assert "damaged" in msg


def test_every_flipped_byte_gives_a_clear_error_or_the_same_model(tmp_path):
    data = good_bytes()
    ref = LdaModel.load(str(DATA / "model_v2.npz"))
    errors = same = 0
    for pos in range(0, len(data), 7):
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        path = tmp_path / "flipped.npz"
        path.write_bytes(bytes(bad))
        try:
            lda = LdaModel.load(str(path))
        except ValueError as e:
            assert type(e) is P.ModelFileError and str(path) in str(e), (pos, e)
            errors += 1
            continue
        # a byte no check covers (a timestamp, a name's case): the model must be intact
        np.testing.assert_array_equal(lda.sstats, ref.sstats)
        np.testing.assert_array_equal(lda.alpha, ref.alpha)
        same += 1
    # zip fields nothing reads (timestamps, "made by", attributes) are most of the rest
    assert errors > 0.6 * (errors + same)


@pytest.mark.parametrize("version", [0, 5, 99, "2", None, True])
def test_unsupported_versions_are_refused_naming_them(version, tmp_path):
    msg = assert_clear_error(tmp_path / "v.npz",
                             with_meta(lambda m: m.update(format_version=version)))
    assert f"version {version!r} is not supported" in msg
    assert "reads versions 1, 2, 3" in msg


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        LdaModel.load(str(tmp_path / "nope.npz"))
