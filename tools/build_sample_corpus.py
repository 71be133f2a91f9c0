#!/usr/bin/env python
"""Build distlda's bundled sample corpus from the docstrings of the Python standard library.

Usage (from the repository root; the output depends on the CPython version that runs it,
the shipped file was built with CPython 3.11.7)::

    python tools/build_sample_corpus.py                      # writes distlda/data/...
    python tools/build_sample_corpus.py --stdlib DIR --out FILE --min-words 15

Every module, class and function docstring of the standard library's ``.py`` files becomes
one document: one line of text, whitespace collapsed to single spaces. Files are visited in
sorted path order and docstrings in source order, so the output is deterministic. Skipped:

* test suites and demos (``test/``, ``tests/``, ``idle_test/``, ``idlelib/``, ``lib2to3/``,
  ``turtledemo/``), installed third-party code (``site-packages/``), generated or data
  modules (``encodings/``, ``pydoc_data/``, ``_sysconfigdata*``), ``ensurepip/``;
* modules whose source carries a licence other than the PSF licence (listed in the Python
  documentation's "Licenses and Acknowledgements for Incorporated Software"): ``asynchat``,
  ``asyncore``, ``http/cookies``, ``trace``, ``uu``, ``xmlrpc/``;
* docstrings shorter than ``--min-words`` words, and exact duplicates (first kept).

The docstrings are PSF-licensed (see ``distlda/data/LICENSE-PSF.txt``, copied from the
Python installation's ``LICENSE.txt`` by this script).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import os
import shutil
import sys
import sysconfig
import tokenize
from typing import Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "distlda", "data", "stdlib-docstrings.txt.gz")
DEFAULT_LICENSE = os.path.join(REPO, "distlda", "data", "LICENSE-PSF.txt")

SKIP_DIRS = {"test", "tests", "idle_test", "idlelib", "lib2to3", "turtledemo", "site-packages",
             "__pycache__", "encodings", "pydoc_data", "ensurepip", "lib-dynload", "xmlrpc"}
# Relative paths (posix) of modules under a licence other than the PSF's.
SKIP_FILES = {"asynchat.py", "asyncore.py", "http/cookies.py", "trace.py", "uu.py"}


def iter_sources(stdlib: str) -> Iterator[tuple[str, str]]:
    """Yield ``(relative_posix_path, absolute_path)`` of the .py files to use, sorted."""
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("config-"))
        for name in sorted(files):
            if not name.endswith(".py") or name.startswith("_sysconfigdata"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, stdlib).replace(os.sep, "/")
            if rel not in SKIP_FILES:
                yield rel, path


def iter_docstrings(source: str) -> Iterator[str]:
    """Yield the module, class and function docstrings of ``source``, in source order."""
    def visit(node: ast.AST) -> Iterator[str]:
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield doc
        for child in getattr(node, "body", []):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child)
            elif isinstance(child, (ast.If, ast.Try)):
                # definitions under "if sys.platform ..." / "try: import ..." blocks
                for block in (child.body, getattr(child, "orelse", []),
                              *(h.body for h in getattr(child, "handlers", []))):
                    for sub in block:
                        if isinstance(sub, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                            yield from visit(sub)

    yield from visit(ast.parse(source))


def build(stdlib: str, min_words: int) -> tuple[list[str], int]:
    """Return the documents and the number of source files used."""
    docs: list[str] = []
    seen: set[str] = set()
    n_files = 0
    for rel, path in iter_sources(stdlib):
        with tokenize.open(path) as f:  # honours PEP 263 coding cookies
            try:
                tree_docs = list(iter_docstrings(f.read()))
            except (SyntaxError, UnicodeDecodeError) as e:
                print(f"skipping {rel}: {e}", file=sys.stderr)
                continue
        n_files += 1
        for doc in tree_docs:
            text = " ".join(doc.split())
            if len(text.split()) >= min_words and text not in seen:
                seen.add(text)
                docs.append(text)
    return docs, n_files


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"],
                    help="standard library directory (default: this interpreter's)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output .txt.gz (default: %(default)s)")
    ap.add_argument("--license-out", default=DEFAULT_LICENSE,
                    help="where to copy the Python LICENSE.txt (default: %(default)s)")
    ap.add_argument("--min-words", type=int, default=15,
                    help="skip docstrings with fewer words (default: %(default)s)")
    args = ap.parse_args(argv)

    docs, n_files = build(args.stdlib, args.min_words)
    payload = "".join(d + "\n" for d in docs).encode("utf-8")
    # mtime=0 and no file name in the gzip header: identical input gives identical bytes.
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="",
                                                     mtime=0, compresslevel=9) as gz:
        gz.write(payload)
    lic = os.path.join(args.stdlib, "LICENSE.txt")
    if os.path.isfile(lic) and args.license_out:
        shutil.copyfile(lic, args.license_out)
    print(f"{args.out}: {len(docs)} documents from {n_files} files, "
          f"{sum(len(d.split()) for d in docs)} words, {len(payload)} bytes of text, "
          f"{os.path.getsize(args.out)} bytes gzip'd (Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
