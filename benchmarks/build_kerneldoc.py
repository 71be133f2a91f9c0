#!/usr/bin/env python
"""Build ``kerneldoc``: a real corpus of long documents, the Linux kernel's documentation.

Usage::

    python benchmarks/build_kerneldoc.py [--deb FILE] [--out benchmarks/data]

Source: the reStructuredText pages of Debian's ``linux-doc-6.1`` package (version 6.1.192-3,
``html/_sources/**/*.txt``, one page a document). Without ``--deb``, the pages are read from
``/usr/share/doc/linux-doc-6.1`` when the package is installed, else the package is fetched
with ``apt-get download linux-doc-6.1`` into the output folder (37 MB; nothing is installed).

Processing (debdesc's rules, ``shared/corpora/build.py``, with a longer minimum length):
lowercased, tokens ``[a-z]{3,}``, distlda's English stop words removed, words in fewer than 5
documents or in more than half of them dropped, documents with fewer than 100 tokens
dropped; split 90/10 by document with build.py's seed. With 6.1.192-3 this gives 2,386
documents (2,147 for training), V=11,460 and 1.72M tokens, about 720 tokens a document
(debdesc: 37, synth: 150).

Writes ``kerneldoc.{train,heldout}.mm``, ``kerneldoc.vocab`` and ``kerneldoc.split.npz`` in
the output folder, where ``benchmarks/common.py`` looks for it.
"""

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from distlda.corpora.textcorpus import STOPWORDS  # noqa: E402  (after sys.path)

PACKAGE = "linux-doc-6.1"
SOURCES = f"usr/share/doc/{PACKAGE}/html/_sources"
MIN_DOCS, MAX_DOC_FRACTION, MIN_TOKENS = 5, 0.5, 100


def pages(root: Path) -> list[Path]:
    """The documentation pages under ``root`` (one folder holding ``SOURCES``), sorted."""
    return sorted((root / SOURCES).rglob("*.txt"))


def tokens(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in STOPWORDS]


def build(root: Path, out: Path, shared: Path) -> None:
    docs = [tokens(p.read_text(errors="replace")) for p in pages(root)]
    if not docs:
        raise SystemExit(f"no pages under {root / SOURCES}")
    df = Counter(w for d in docs for w in set(d))
    keep = sorted(w for w, c in df.items() if MIN_DOCS <= c <= MAX_DOC_FRACTION * len(docs))
    index = {w: i for i, w in enumerate(keep)}
    docs = [[index[w] for w in d if w in index] for d in docs]
    docs = [d for d in docs if len(d) >= MIN_TOKENS]
    rows = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    cols = np.concatenate([np.asarray(d, np.int64) for d in docs])
    X = sp.csr_matrix((np.ones(cols.size, np.int64), (rows, cols)), shape=(len(docs), len(keep)))
    # build.py's writer and split, so every corpus is split the same way
    spec = importlib.util.spec_from_file_location("build", shared / "corpora" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.OUT = str(out)
    out.mkdir(parents=True, exist_ok=True)
    mod.save_corpus("kerneldoc", X, keep)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deb", help=f"a {PACKAGE} .deb (default: installed, else apt-get download)")
    p.add_argument("--out", default=str(HERE / "data"), help="output folder")
    p.add_argument("--shared", default=str(HERE.parent.parent / "shared"),
                   help="the shared folder (for corpora/build.py)")
    args = p.parse_args(argv)
    out, shared = Path(args.out), Path(args.shared)
    if not args.deb and pages(Path("/")):
        build(Path("/"), out, shared)
        return
    deb = args.deb
    if not deb:
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", PACKAGE], cwd=out, check=True)
        deb = str(sorted(out.glob(f"{PACKAGE}_*.deb"))[-1])
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        build(Path(tmp), out, shared)


if __name__ == "__main__":
    main()
