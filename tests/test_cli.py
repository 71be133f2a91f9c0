"""The command line: ``python -m distlda train`` on the bundled sample and on files."""

import gzip
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from distlda.cli import main
from distlda.models import LdaModel

from helpers import planted_corpus


def test_train_bundled_sample_as_a_subprocess(tmp_path):
    out = tmp_path / "m.npz"
    proc = subprocess.run([sys.executable, "-m", "distlda", "train", "-k", "8", "-i", "30",
                           "--distributed", "no", "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 8 and all(line.startswith("topic") for line in lines)
    assert "serial" in proc.stderr and "bundled sample corpus" in proc.stderr
    lda = LdaModel.load(str(out))
    assert lda.num_topics == 8 and lda.sstats.sum() == lda.num_tokens > 50000
    # real words, not ids
    assert any(w.isalpha() for line in lines for w in line.split()[2:])


def test_train_matrix_market_with_vocab(tmp_path, capsys):
    X, _ = planted_corpus(D=200, V=100, K=4, L=50)
    mm = tmp_path / "c.mm"
    with open(mm, "wb") as f:  # a file object, so scipy adds no .mtx suffix
        scipy.io.mmwrite(f, sp.coo_matrix(X))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"term{i}\n" for i in range(100)))
    assert main(["train", str(mm), "--vocab", str(vocab), "-k", "4", "-i", "10", "-q",
                 "--distributed", "no", "-o", str(tmp_path / "m.npz")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("topic") == 4 and "term" in printed
    lda = LdaModel.load(str(tmp_path / "m.npz"))
    assert lda.sstats.sum() == X.sum()


def test_train_text_file(tmp_path, capsys):
    docs = ["the cat sat on the mat with another cat"] * 30 + ["stock market prices fell sharply today"] * 30
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(docs) + "\n")
    assert main(["train", str(path), "-k", "2", "-i", "20", "-q", "--distributed", "no"]) == 0
    out = capsys.readouterr().out
    assert "cat" in out and "market" in out


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.mm"), "--distributed", "no"]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_option_value(capsys):
    assert main(["train", "-k", "0", "--distributed", "no"]) == 2
    assert "error: -k 0: must be an integer >= 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- helpers
SMALL_TEXT = ["alpha bravo", "bravo charlie", "charlie delta", "delta echo", "echo foxtrot",
              "foxtrot alpha", "alpha charlie", "bravo delta", "charlie echo", "delta foxtrot",
              "echo alpha", "foxtrot bravo"]  # 12 lines, each word in 4 of them


@pytest.fixture
def mm_corpus(tmp_path):
    """A planted Matrix Market corpus (60 documents, 40 words) with its vocabulary file."""
    X, _ = planted_corpus(D=60, V=40, K=3, L=30)
    mm = tmp_path / "c.mm"
    with open(mm, "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(X))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"w{i}\n" for i in range(40)))
    return X, str(mm), str(vocab)


def train_saved(tmp_path, mm, vocab, iterations, capsys):
    """Train a 3-topic model on ``mm`` with the CLI, save it and return its path."""
    model = str(tmp_path / "m.npz")
    assert main([mm, "--vocab", vocab, "-k", "3", "-i", str(iterations), "-q",
                 "--distributed", "no", "-o", model]) == 0
    capsys.readouterr()
    return model


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def error_lines(err):
    return [line for line in err.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- outputs
def test_mallet_outputs_match_the_model(tmp_path, mm_corpus, capsys):
    X, mm, vocab = mm_corpus
    out = {name: str(tmp_path / f"{name}.tsv") for name in ("keys", "weights", "docs")}
    model = str(tmp_path / "m.npz")
    assert main([mm, "--vocab", vocab, "-k", "3", "-i", "15", "-q", "--distributed", "no",
                 "--topn", "5", "-o", model, "--output-topic-keys", out["keys"],
                 "--output-topic-word-weights", out["weights"],
                 "--output-doc-topics", out["docs"]]) == 0
    lda = LdaModel.load(model)
    keys = read_tsv(out["keys"])
    assert [int(r[0]) for r in keys] == [0, 1, 2]
    for k, alpha, words in keys:
        assert float(alpha) == pytest.approx(lda.alpha[int(k)], rel=1e-5)
        assert words.split() == [w for w, _ in lda.show_topic(int(k), 5)]
    weights = read_tsv(out["weights"])
    assert len(weights) == 3 * 40
    got = np.zeros((3, 40))
    for k, word, weight in weights:
        got[int(k), int(word[1:])] = float(weight)
    np.testing.assert_allclose(got, lda.sstats + lda.eta, rtol=1e-5)
    docs = read_tsv(out["docs"])
    assert [r[0] for r in docs] == [str(d) for d in range(60)]
    assert docs[0][1] == "c.mm:1" and docs[59][1] == "c.mm:60"
    theta = np.array([[float(x) for x in r[2:]] for r in docs])
    np.testing.assert_allclose(theta, lda.document_topics(), rtol=1e-5)
    np.testing.assert_allclose(theta.sum(axis=1), 1, atol=1e-5)
    # the model's own doc-topic counts are the training documents, in order
    np.testing.assert_array_equal(np.asarray(lda.document_topic_counts().sum(axis=1)).ravel(),
                                  np.asarray(X.sum(axis=1)).ravel())


def test_infer_writes_doc_topics_of_new_documents(tmp_path, mm_corpus, capsys):
    X, mm, vocab = mm_corpus
    model = train_saved(tmp_path, mm, vocab, 10, capsys)
    out = str(tmp_path / "doc_topics.tsv")
    assert main(["infer", model, mm, "-o", out]) == 0
    rows = read_tsv(out)
    theta = np.array([[float(x) for x in r[2:]] for r in rows])
    np.testing.assert_allclose(theta, LdaModel.load(model).fold_in(X), rtol=1e-5, atol=1e-7)
    assert main(["infer", model, mm]) == 0  # to standard output
    assert capsys.readouterr().out.splitlines()[1].split("\t")[:2] == ["1", "c.mm:2"]


def test_infer_text_uses_the_model_vocabulary(tmp_path, capsys):
    path = tmp_path / "small.txt"
    path.write_text("\n".join(SMALL_TEXT) + "\n")
    model = str(tmp_path / "m.npz")
    assert main([str(path), "--no-below", "1", "--no-above", "1", "-k", "2", "-i", "5", "-q",
                 "--distributed", "no", "-o", model]) == 0
    new = tmp_path / "new.txt"
    new.write_text("alpha alpha unknownword\nnothing known here\n")
    assert main(["infer", model, str(new), "-o", str(tmp_path / "t.tsv")]) == 0
    rows = read_tsv(tmp_path / "t.tsv")
    assert len(rows) == 2 and [r[1] for r in rows] == ["new.txt:1", "new.txt:2"]


def test_resume_continues_like_training_straight_through(tmp_path, mm_corpus, capsys):
    X, mm, vocab = mm_corpus
    common = ["--vocab", vocab, "-k", "3", "--seed", "7", "-q", "--distributed", "no",
              "--threads", "2", "--chunksize", "16"]
    first, resumed, straight = (str(tmp_path / f"{n}.npz") for n in ("a", "b", "c"))
    assert main([mm, *common, "-i", "6", "-o", first]) == 0
    assert main(["train", "--resume", first, "-i", "6", "-q", "--distributed", "no",
                 "--threads", "2", "-o", resumed]) == 0
    assert main([mm, *common, "-i", "12", "-o", straight]) == 0
    a, b = LdaModel.load(resumed), LdaModel.load(straight)
    np.testing.assert_array_equal(a.sstats, b.sstats)
    assert a.state.sweeps_done == b.state.sweeps_done == 12
    # settings that define the model cannot change on resume
    capsys.readouterr()
    assert main(["train", "--resume", first, "-k", "5", "-i", "1"]) == 2
    assert "drop -k" in capsys.readouterr().err


def test_topics_command(tmp_path, mm_corpus, capsys):
    X, mm, vocab = mm_corpus
    model = train_saved(tmp_path, mm, vocab, 5, capsys)
    assert main(["topics", model, "--topn", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(len(line.split()) == 2 + 4 for line in lines)
    assert main(["topics", model, "--summary"]) == 0
    summary = capsys.readouterr().out
    assert "3 topics" in summary and "40 words" in summary and "sweeps:     5" in summary


def test_plot_option(tmp_path, mm_corpus, capsys, monkeypatch):
    X, mm, vocab = mm_corpus
    png = tmp_path / "conv.png"
    assert main([mm, "-k", "3", "-i", "4", "--eval-every", "2", "-q", "--distributed", "no",
                 "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed
    capsys.readouterr()
    assert main([mm, "-k", "3", "-i", "2", "-q", "--distributed", "no", "--plot", str(png)]) == 2
    out = capsys.readouterr()
    assert "pip install 'distlda[plot]'" in out.err
    assert out.out == ""  # refused before training: no topics printed


# ----------------------------------------------------------------------------- errors
def test_small_text_file_needs_relaxed_filters(tmp_path, capsys):
    path = tmp_path / "small.txt"
    path.write_text("\n".join(SMALL_TEXT) + "\n")
    assert main([str(path), "-k", "2", "-i", "5", "--distributed", "no"]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "error:" in err[0] and "small.txt" in err[0]
    assert "all 6 distinct words of its 12 documents" in err[0]
    assert "--no-below 1 --no-above 1.0" in err[0]
    assert main([str(path), "--no-below", "1", "--no-above", "1.0", "-k", "2", "-i", "5", "-q",
                 "--distributed", "no"]) == 0
    assert "alpha" in capsys.readouterr().out


def test_fewer_words_than_topics_is_warned(tmp_path, caplog):
    path = tmp_path / "small.txt"
    path.write_text("\n".join(SMALL_TEXT) + "\n")
    assert main([str(path), "--no-below", "1", "--no-above", "1.0", "-k", "8", "-i", "2", "-q",
                 "--distributed", "no"]) == 0
    assert "only 6 words in the vocabulary for 8 topics" in caplog.text


@pytest.mark.parametrize("case", ["plain-named-gz", "truncated-gz", "missing", "directory",
                                  "bad-utf8", "not-a-model", "bad-mm"])
def test_broken_inputs_give_one_error_line(tmp_path, case):
    if case == "plain-named-gz":
        target = tmp_path / "docs.txt.gz"
        target.write_text("just text\nno gzip\n")
        argv = ["train", str(target)]
    elif case == "truncated-gz":
        target = tmp_path / "docs.txt.gz"
        data = gzip.compress(("some words here and there\n" * 3000).encode())
        target.write_bytes(data[: len(data) // 2])
        argv = ["train", str(target)]
    elif case == "missing":
        target = tmp_path / "nope.txt"
        argv = ["train", str(target)]
    elif case == "directory":
        target = tmp_path
        argv = ["train", str(target)]
    elif case == "bad-utf8":
        target = tmp_path / "latin1.txt"
        target.write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
        argv = ["train", str(target)]
    elif case == "not-a-model":
        target = tmp_path / "model.npz"
        target.write_text("not a model")
        argv = ["topics", str(target)]
    else:
        target = tmp_path / "c.mm"
        target.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 x 3\n")
        argv = ["train", str(target)]
    proc = subprocess.run([sys.executable, "-m", "distlda", *argv, "--distributed", "no"]
                          if argv[0] == "train" else [sys.executable, "-m", "distlda", *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = [line for line in error_lines(proc.stderr) if "error" in line.lower()]
    assert len(err) == 1 and error_lines(proc.stderr)[-1] == err[0], proc.stderr
    assert "error:" in err[0] and str(target.name) in err[0] and "Traceback" not in proc.stderr
    assert "allow_pickle" not in err[0]


def test_distributed_yes_error_names_the_cli_flags(capsys):
    with socket.socket() as s:  # a port with no name server behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["train", str(planted_mm_path()), "-k", "2", "-i", "1", "-q",
                 "--distributed", "yes", "--ns-host", "127.0.0.1", "--ns-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "--distributed yes" in err and "--ns-host" in err
    assert "ns_conf" not in err and "distributed=True" not in err


def planted_mm_path():
    X, _ = planted_corpus(D=20, V=10, K=2, L=10)
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"distlda-test-{os.getpid()}.mm")
    with open(path, "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(X))
    return path


# ----------------------------------------------------------------------------- text, help
def test_multilingual_text_keeps_whole_words(tmp_path, capsys):
    lines = ["le secteur privé était prêt à investir", "die Straße über den Fluss",
             "экономика России растёт быстро", "le secteur privé et la Straße",
             "экономика и сектор"]
    path = tmp_path / "multi.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    weights = str(tmp_path / "w.tsv")
    assert main([str(path), "--no-below", "1", "--no-above", "1.0", "-k", "2", "-i", "3",
                 "-q", "--distributed", "no", "--output-topic-word-weights", weights]) == 0
    words = {r[1] for r in read_tsv(weights)}
    assert {"privé", "était", "prêt", "strasse", "über", "экономика", "россии", "растёт"} <= words
    assert not words & {"priv", "tait", "stra", "ber"}


def test_bare_corpus_argument_trains(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("\n".join(SMALL_TEXT) + "\n")
    proc = subprocess.run([sys.executable, "-m", "distlda", str(path), "--no-below", "1",
                           "--no-above", "1", "-k", "2", "-i", "3", "-q", "--distributed", "no"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("topic") == 2


def test_help_names_the_program_shows_defaults_and_no_rest_markup(capsys):
    from distlda.cli import build_parser
    for argv in (["--help"], ["train", "--help"], ["infer", "--help"], ["topics", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith("usage: distlda") and "python -m" not in text
        assert "``" not in text and ":class:" not in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--num-topics", "20"), ("--iterations", "200"), ("--eta", "0.01"),
                          ("--chunksize", "2000"), ("--sampler", "auto"), ("--eval-every", "10"),
                          ("--no-below", "5"), ("--no-above", "0.5"), ("--keep-n", "100000"),
                          ("--alpha", "symmetric")):
        assert re.search(re.escape(flag) + r".*?\(default: " + re.escape(default) + r"\)", text), flag
    for flag in ("--threads", "--resume", "--output-topic-keys", "--output-topic-word-weights",
                 "--output-doc-topics", "--plot", "auto"):
        assert flag in text
    # the installed script has the same name
    assert build_parser().prog == "distlda"


def test_vocab_files_as_gensim_writes_them_and_the_ones_that_are_refused(tmp_path, mm_corpus,
                                                                           capsys):
    import pickle

    from gensim.corpora import Dictionary as GensimDictionary
    X, mm, _ = mm_corpus
    g = GensimDictionary([[f"w{i}" for i in range(40)]])  # ids in the order the words came
    text = tmp_path / "gdict.txt"
    g.save_as_text(str(text))  # its first line is the document count, "1"
    model = str(tmp_path / "m.npz")
    assert main([mm, "--vocab", str(text), "-k", "3", "-i", "3", "-q", "--distributed", "no",
                 "-o", model]) == 0
    lda = LdaModel.load(model)
    assert len(lda.id2word) == 40 and lda.id2word[g.token2id["w7"]] == "w7"
    capsys.readouterr()
    pkl = tmp_path / "gdict.pkl"
    pkl.write_bytes(pickle.dumps({"not": "a vocabulary"}))
    assert main([mm, "--vocab", str(pkl), "-k", "3", "-i", "3", "--distributed", "no"]) == 2
    err = capsys.readouterr().err
    assert str(pkl) in err and "save_as_text" in err and "Traceback" not in err
    docs = tmp_path / "docs.txt"
    docs.write_text("the cat sat on the mat\n" * 20)
    assert main([str(docs), "--vocab", str(text), "-k", "2", "--distributed", "no"]) == 2
    assert "--vocab" in capsys.readouterr().err
