"""Command line: ``python -m distlda train [CORPUS] [options]``.

Without a corpus it trains on the bundled sample (docstrings of Python's standard library).
CORPUS is a Matrix Market file (``*.mm[.gz|.bz2]``), a UCI ``docword.*.txt[.gz]`` file (its
``vocab.*.txt`` is found beside it), or a text file with one document per line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time


def _open_corpus(path: str | None, fmt: str, vocab: str | None):
    """Return (corpus, id2word, description) for a path and a format name."""
    from distlda.corpora import Dictionary, MmCorpus, TextCorpus, UciCorpus, sample_corpus_path

    if path is None:
        path = sample_corpus_path()
        corpus = TextCorpus(path)
        return corpus, corpus.dictionary, "bundled sample corpus (Python stdlib docstrings)"
    if "://" not in path and not os.path.exists(path):
        raise FileNotFoundError(f"corpus file not found: {path}")
    name = os.path.basename(path)
    if fmt == "auto":
        stem = name
        for ext in (".gz", ".bz2"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
        fmt = "mm" if stem.endswith(".mm") else "uci" if stem.startswith("docword.") else "text"
    if fmt == "mm":
        corpus = MmCorpus(path)
        id2word = None
        if vocab:
            id2word = (Dictionary.load_from_text(vocab) if _is_dictionary_file(vocab)
                       else Dictionary.from_vocab(_read_lines(vocab)))
        return corpus, id2word, f"Matrix Market {path}"
    if fmt == "uci":
        corpus = UciCorpus(path, vocab)
        return corpus, corpus.id2word, f"UCI bag-of-words {path}"
    if fmt == "text":
        corpus = TextCorpus(path)
        return corpus, corpus.dictionary, f"text {path} (one document per line)"
    raise ValueError(f"unknown corpus format {fmt!r} (use auto, mm, uci or text)")


def _read_lines(path: str) -> list[str]:
    import smart_open
    with smart_open.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _is_dictionary_file(path: str) -> bool:
    """A Dictionary.save_as_text file has tab-separated id, word, df lines."""
    lines = _read_lines(path)[:5]
    return bool(lines) and all(len(line.split("\t")) == 3 for line in lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m distlda",
                                description="Train LDA topic models by collapsed Gibbs sampling.")
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a model and print its topics",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("corpus", nargs="?", help="corpus path or URI (default: the bundled sample)")
    t.add_argument("--format", default="auto", choices=["auto", "mm", "uci", "text"],
                   help="corpus format (default: from the file name)")
    t.add_argument("--vocab", help="vocabulary: one word per line (line i = id i), or a "
                                   "Dictionary.save_as_text file; for .mm and UCI corpora")
    t.add_argument("-k", "--num-topics", type=int, default=20, help="number of topics (default 20)")
    t.add_argument("-i", "--iterations", type=int, default=200, help="Gibbs sweeps (default 200)")
    t.add_argument("--alpha", default="symmetric", help="'symmetric', 'asymmetric' or a number")
    t.add_argument("--eta", type=float, default=0.01, help="topic-word prior (default 0.01)")
    t.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    t.add_argument("--distributed", choices=["auto", "yes", "no"], default="auto",
                   help="use a Pyro5 cluster: auto (if one is up), yes (or fail), no")
    t.add_argument("--ns-host", help="Pyro5 name server host (default: PYRO_NS_HOST or localhost)")
    t.add_argument("--ns-port", type=int, help="Pyro5 name server port")
    t.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    t.add_argument("--topn", type=int, default=10, help="words shown per topic")
    t.add_argument("-o", "--output", help="save the trained model here (path or URI)")
    t.add_argument("-q", "--quiet", action="store_true", help="only print the topics")
    return p


def train(args) -> int:
    from distlda.models import LdaModel

    corpus, id2word, what = _open_corpus(args.corpus, args.format, args.vocab)
    alpha = args.alpha
    try:
        alpha = float(alpha)
    except ValueError:
        pass
    ns_conf = {k: v for k, v in (("host", args.ns_host), ("port", args.ns_port)) if v is not None}
    distributed = {"auto": None, "yes": True, "no": False}[args.distributed]
    print(f"training {args.num_topics} topics on {what}, {args.iterations} sweeps", file=sys.stderr)
    t0 = time.perf_counter()
    lda = LdaModel(corpus, num_topics=args.num_topics, id2word=id2word, alpha=alpha,
                   eta=args.eta, iterations=args.iterations, random_state=args.seed,
                   distributed=distributed, ns_conf=ns_conf, workers=args.workers)
    secs = time.perf_counter() - t0
    print(f"trained on {lda.num_docs} documents, {lda.num_tokens} tokens, {lda.num_terms} terms "
          f"in {secs:.1f} s ({lda.executor_info}); log-likelihood "
          f"{lda.log_likelihood_per_token():.3f} per token", file=sys.stderr)
    for k, words in lda.show_topics(num_topics=-1, num_words=args.topn, formatted=False):
        print(f"topic {k:3d}: " + " ".join(w for w, _ in words))
    if args.output:
        lda.save(args.output)
        print(f"model saved to {args.output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m distlda`` and the ``distlda`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the main job is training: `python -m distlda` alone trains too
        args = parser.parse_args(["train"] + (argv if argv is not None else sys.argv[1:]))
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return train(args)
    except (ValueError, FileNotFoundError, RuntimeError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
