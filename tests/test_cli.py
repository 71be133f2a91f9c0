"""The command line: ``python -m distlda train`` on the bundled sample and on files."""

import subprocess
import sys

import scipy.io
import scipy.sparse as sp

from helpers import planted_corpus
from distlda.cli import main
from distlda.models import LdaModel


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
    assert "num_topics" in capsys.readouterr().err
