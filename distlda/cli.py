"""The ``distlda`` command (also ``python -m distlda``): train, infer, topics, shard.

``distlda train [CORPUS]`` trains a model (on the bundled sample corpus without CORPUS) and
prints its topics; ``distlda CORPUS`` alone means the same. ``distlda infer MODEL CORPUS``
writes the topic mixtures of new documents; ``distlda topics MODEL`` prints a saved model's
topics; ``distlda shard CORPUS DEST --shards N`` writes a corpus as a shard set (which
``train`` then reads). Files come out as MALLET writes them (``--output-topic-keys``,
``--output-topic-word-weights``, ``--output-doc-topics``).

Every failure is one ``error:`` line on stderr naming the file or option and what to do, with
exit status 2; never a traceback.

Adding a subcommand: write an ``_add_NAME(subparsers)`` function that creates its parser and
sets ``func`` (a function of the parsed arguments returning the exit status) with
``set_defaults``, and call it in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import re
import sys
import time

from distlda.errors import DistldaError

PROG = "distlda"

_FORMATS_HELP = ("CORPUS is a Matrix Market file (*.mm, *.mm.gz, *.mm.bz2), a UCI bag-of-words "
                 "file (docword.NAME.txt[.gz], its vocab.NAME.txt found beside it), or a UTF-8 "
                 "text file with one document per line (.gz/.bz2 decompressed). Paths may be "
                 "smart_open URIs (s3://...).")


class CliError(DistldaError):
    """A user error: printed as one ``error:`` line, exit status 2."""


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, except where it is None or False (nothing to show)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" not in text and action.option_strings
                and action.default not in (None, False, argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


# ---------------------------------------------------------------------- parser
def _commands(parser: argparse.ArgumentParser) -> dict:
    """The subcommand parsers of ``parser``, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``distlda`` with all its subcommands."""
    from distlda import __version__
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=_HelpFormatter,
        description="Train LDA topic models by collapsed Gibbs sampling, in-process or on a "
                    "Pyro5 cluster.",
        epilog=f"'{PROG} CORPUS [options]' is short for '{PROG} train CORPUS [options]'. "
               f"Run '{PROG} COMMAND --help' for a command's options.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_infer(sub)
    _add_topics(sub)
    _add_shard(sub)
    _add_nameserver(sub)
    _add_certs(sub)
    return p


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model and print its topics",
                       formatter_class=_HelpFormatter,
                       description="Train a model on CORPUS (default: the bundled sample corpus, "
                                   "docstrings of Python's standard library) and print its "
                                   "topics. " + _FORMATS_HELP)
    t.add_argument("corpus", nargs="?", metavar="CORPUS",
                   help="corpus path or URI (default: the bundled sample corpus)")
    _add_corpus_options(t)
    _add_vocabulary_filters(t)
    g = t.add_argument_group("model")
    _add_params(g, "model")
    g.add_argument("--resume", metavar="MODEL",
                   help="continue training the model saved in MODEL (by -o) for --iterations more "
                        "sweeps, with its own topics, priors, sampler and random state; CORPUS, if "
                        "given, adds documents")
    _add_run_options(t)
    _add_output_options(t, training=True)
    t.set_defaults(func=cmd_train)


def _add_vocabulary_filters(p) -> None:
    g = p.add_argument_group("vocabulary filters (text corpora)")
    g.add_argument("--no-below", type=int, default=5, metavar="N",
                   help="drop words in fewer than N documents")
    g.add_argument("--no-above", type=float, default=0.5, metavar="FRACTION",
                   help="drop words in more than this fraction of the documents")
    g.add_argument("--keep-n", type=int, default=100000, metavar="N",
                   help="keep at most the N most frequent words (0: no limit)")


def _add_shard(sub) -> None:
    p = sub.add_parser("shard", help="cut a corpus into a shard set for corpora bigger than "
                                     "one machine",
                       formatter_class=_HelpFormatter,
                       description="Write CORPUS as a shard set in DEST: DEST/manifest.json, "
                                   "N shard files balanced by tokens and the vocabulary (see "
                                   "distlda.corpora.sharded for the format). The corpus is "
                                   "streamed once. 'distlda train DEST' and "
                                   "ShardedCorpus(DEST) read it. " + _FORMATS_HELP
                                   + " A shard set is a CORPUS too.")
    p.add_argument("corpus", metavar="CORPUS", help="corpus path or URI, as for train")
    p.add_argument("dest", metavar="DEST",
                   help="folder or fsspec URL to write (s3://bucket/prefix needs s3fs: "
                        "pip install 'distlda[s3]')")
    p.add_argument("--shards", type=int, required=True, metavar="N",
                   help="number of shards (several per machine that will read them)")
    _add_corpus_options(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a shard set already in DEST")
    _add_vocabulary_filters(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(func=cmd_shard)


def _add_params(group, name: str) -> None:
    """The options of the settings the parameter table gives to this help group."""
    from distlda.params import PARAMS
    for param in PARAMS:
        o = param.cli
        if o is not None and o.group == name:
            extra: dict = {} if o.metavar is None else {"metavar": o.metavar}
            if o.type is not None:
                extra["type"] = o.type
            if o.choices is not None:
                extra["choices"] = o.choices
            group.add_argument(*o.flags, dest=o.dest or param.name,
                               default=param.cli_default, help=o.help, **extra)


def _add_corpus_options(p, vocab: bool = True) -> None:
    p.add_argument("--format", default="auto", choices=["auto", "mm", "uci", "text", "shards"],
                   help="corpus format; auto: a folder or URL with a manifest.json is a shard "
                        "set, else from the file name (*.mm[.gz], docword.*, else text)")
    if vocab:
        p.add_argument("--vocab", metavar="FILE",
                       help="vocabulary of a .mm or UCI corpus: one word per line (line i = word "
                            "id i), or a Dictionary.save_as_text file")


def _add_run_options(p) -> None:
    g = p.add_argument_group("execution")
    _add_params(g, "execution")
    g.add_argument("--distributed", choices=["auto", "yes", "no"], default="auto",
                   help="use a Pyro5 cluster: auto (if one is up), yes (or fail), no")
    g.add_argument("--ns-host", metavar="HOST",
                   help="Pyro5 name server host (default: $PYRO_NS_HOST, else localhost, "
                        "else found by broadcast)")
    g.add_argument("--ns-port", type=int, metavar="PORT", help="Pyro5 name server port")
    g.add_argument("--checkpoint", metavar="URL",
                   help="where a shard set trained on a cluster keeps its topic assignments "
                        "(a folder or fsspec URL; default: URL/checkpoints/<run> beside the set)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="print only the topics: no log lines and no progress bar")


def _add_output_options(p, training: bool) -> None:
    g = p.add_argument_group("output")
    if training:
        g.add_argument("-o", "--output", metavar="MODEL",
                       help="save the trained model here (path or URI; 'distlda topics', "
                            "'infer' and '--resume' read it)")
    g.add_argument("--topn", type=int, default=10, metavar="N", help="words printed per topic")
    g.add_argument("--output-topic-keys", metavar="FILE",
                   help="write MALLET topic keys: topic, alpha, top --topn words (TSV)")
    g.add_argument("--output-topic-word-weights", metavar="FILE",
                   help="write MALLET topic-word weights: topic, word, count + eta (TSV)")
    g.add_argument("--output-doc-topics", metavar="FILE",
                   help="write the training documents' topic mixtures as MALLET does: document "
                        "number, name, one proportion per topic (TSV)")
    g.add_argument("--plot", metavar="FILE",
                   help="plot log-likelihood and speed per sweep to an image (.png, .svg, "
                        ".pdf); needs matplotlib: pip install 'distlda[plot]'" if training
                   else argparse.SUPPRESS)


def _add_infer(sub) -> None:
    p = sub.add_parser("infer", help="topic mixtures of new documents under a saved model",
                       formatter_class=_HelpFormatter,
                       description="Infer the topic mixtures of the documents of CORPUS with the "
                                   "topics of MODEL held fixed (Gibbs fold-in) and write them as "
                                   "MALLET's doc-topics file. A text corpus is tokenized as for "
                                   "training; words outside the model's vocabulary are ignored. "
                                   + _FORMATS_HELP)
    p.add_argument("model", metavar="MODEL", help="model file written by 'distlda train -o'")
    p.add_argument("corpus", metavar="CORPUS",
                   help="corpus path or URI; word ids of a .mm or UCI corpus must be the model's")
    _add_corpus_options(p, vocab=False)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="doc-topics file to write (default: standard output)")
    p.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="fold-in sweeps, the first half burn-in (default: the model's "
                        "inference_iterations, 50 unless changed)")
    p.set_defaults(func=cmd_infer)


def _add_topics(sub) -> None:
    p = sub.add_parser("topics", help="print the topics of a saved model",
                       formatter_class=_HelpFormatter,
                       description="Print the topics of MODEL, largest first with --summary, and "
                                   "optionally write them as MALLET files.")
    p.add_argument("model", metavar="MODEL", help="model file written by 'distlda train -o'")
    p.add_argument("--summary", action="store_true",
                   help="print the model's summary (corpus, priors, sampler, sweeps, "
                        "log-likelihood, topics) instead of one line per topic")
    _add_output_options(p, training=False)
    p.set_defaults(func=cmd_topics)


def _add_nameserver(sub) -> None:
    from distlda.cluster import nameserver
    p = sub.add_parser("nameserver", help="run the cluster's name server (Pyro5's, with "
                                          "distlda's defaults)",
                       formatter_class=_HelpFormatter,
                       description=nameserver.__doc__.split("\n\n")[1].replace("``", "'"))
    nameserver.add_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    p.set_defaults(func=nameserver.run)


def _add_certs(sub) -> None:
    p = sub.add_parser("certs", help="create the cluster's CA and TLS certificates",
                       formatter_class=_HelpFormatter,
                       description="Create (or add to) a folder of TLS certificates for mutual "
                                   "TLS (--tls DIR, LdaModel(tls=DIR)): the cluster's CA, one "
                                   "certificate per host (valid for that address or name only) "
                                   "and a client certificate for LdaModel users. Re-run with "
                                   "more --hosts to add machines: the CA and the existing "
                                   "certificates are kept.")
    p.add_argument("dir", metavar="DIR", help="folder to write (created with mode 0700)")
    p.add_argument("--hosts", required=True, metavar="HOST1,HOST2,...",
                   help="the addresses or DNS names the machines serve on (localhost or "
                        "127.0.0.1: one certificate for this machine's loopback)")
    p.add_argument("--days", type=int, default=730, help="validity of the new certificates")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(func=cmd_certs)


def cmd_certs(args) -> int:
    from distlda.cluster import tls
    hosts = tls.parse_hosts(args.hosts)
    done = tls.create(args.dir, hosts, args.days)
    if args.quiet:
        return 0
    d = os.path.abspath(args.dir)
    for action, path in done:
        print(f"{action:8s} {path}")
    print(f"\nCopy to every machine and every user: {d}/{tls.CA_CERT}")
    for h in hosts:
        stem = h.replace(":", "_")
        print(f"  to {h}: {d}/{tls.HOSTS}/{stem}.pem and {stem}-key.pem into DIR/{tls.HOSTS}/")
    print(f"  to the users of LdaModel(tls=DIR): {tls.CLIENT_CERT} and {tls.CLIENT_KEY}")
    print(f"Keep {d}/{tls.CA_KEY} here (offline): it is only needed to add hosts. Then run "
          f"every process with --tls DIR (keys stay mode 0600).")
    return 0


# ---------------------------------------------------------------------- corpora
def _corpus_format(path: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    stem = os.path.basename(path.split("?")[0])
    for ext in (".gz", ".bz2"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    return "mm" if stem.endswith(".mm") or stem.endswith(".mtx") else \
        "uci" if stem.startswith("docword.") else "text"


def _check_exists(path: str, what: str) -> None:
    if "://" in path or os.path.isfile(path):
        return
    if os.path.isdir(path):
        raise CliError(f"{path} is a directory, not a {what}; give the file's path")
    hint = "" if os.sep in path or "." in path else (
        "; or a command: distlda train|infer|topics|shard|nameserver|certs ... (see distlda "
        "--help)")
    raise CliError(f"{what} not found: {path} (check the path{hint})")


def _check_writable(args) -> None:
    """Fail before training, not after, when an output file cannot be created."""
    for flag in ("output", "output_topic_keys", "output_topic_word_weights", "output_doc_topics",
                 "plot"):
        path = getattr(args, flag, None)
        if path and "://" not in path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise CliError(f"--{flag.replace('_', '-')} {path}: folder {folder} does not "
                               f"exist; create it or choose another path")
    if getattr(args, "plot", None):
        try:
            import matplotlib.figure  # noqa: F401
        except ImportError:
            raise CliError(f"--plot {args.plot}: plotting needs matplotlib: pip install "
                           f"'distlda[plot]' (or leave out --plot)") from None


def _open_corpus(args):
    """Return (corpus, id2word, description, name of its documents) for ``train``."""
    from distlda.corpora import MmCorpus, TextCorpus, UciCorpus, sample_corpus_path

    filters = dict(no_below=args.no_below, no_above=args.no_above, keep_n=args.keep_n or None)
    if args.corpus is None:
        corpus = TextCorpus(sample_corpus_path(), **filters)
        return corpus, corpus.dictionary, "bundled sample corpus (Python stdlib docstrings)", "sample"
    path = args.corpus
    if _is_shard_set(path, args.format):
        return _open_shard_set(path, getattr(args, "vocab", None))
    _check_exists(path, "corpus file")
    fmt = _corpus_format(path, args.format)
    label = os.path.basename(path)
    if fmt == "mm":
        corpus = MmCorpus(path)
        id2word = _read_vocab(args.vocab) if args.vocab else None
        return corpus, id2word, f"Matrix Market {path}", label
    if fmt == "uci":
        if args.vocab:
            _check_exists(args.vocab, "vocabulary file")
        corpus = UciCorpus(path, args.vocab)
        return corpus, corpus.id2word, f"UCI bag-of-words {path}", label
    if getattr(args, "vocab", None):
        raise CliError(f"--vocab names the words of a .mm or UCI corpus; {path} is a text "
                       f"corpus, which makes its own vocabulary (drop --vocab, or pass "
                       f"--format mm/uci)")
    corpus = TextCorpus(path, **filters)
    return corpus, corpus.dictionary, f"text {path} (one document per line)", label


def _is_shard_set(path: str, fmt: str) -> bool:
    """A folder or URL holding a manifest.json (or the manifest itself), or --format shards."""
    from distlda.corpora.sharded import MANIFEST
    if fmt == "shards" or path.rstrip("/").endswith("/" + MANIFEST) or path == MANIFEST:
        return True
    if fmt != "auto":
        return False
    if "://" not in path:
        return os.path.isfile(os.path.join(path, MANIFEST))
    if "." in path.rstrip("/").rsplit("/", 1)[-1]:
        return False  # a file name with an extension: a corpus file, not a folder
    try:
        import fsspec
        fs, root = fsspec.core.url_to_fs(path)
        return bool(fs.exists(root.rstrip("/") + "/" + MANIFEST))
    except (ImportError, OSError, ValueError):
        return False


def _open_shard_set(path: str, vocab):
    from distlda.corpora import ShardedCorpus
    if vocab:
        raise CliError(f"--vocab: the shard set {path} has its own vocabulary (written by "
                       f"'distlda shard --vocab'); drop --vocab")
    corpus = ShardedCorpus(path)
    return (corpus, corpus.id2word, f"shard set {corpus.url} ({corpus.num_shards} shards)",
            os.path.basename(corpus.url.rstrip("/")) or "shards")


def _open_corpus_for_model(lda, path: str, fmt: str):
    """A corpus read with a trained model's vocabulary (for ``infer`` and ``--resume``)."""
    from distlda.corpora import Dictionary, MmCorpus, TextCorpus, UciCorpus

    if _is_shard_set(path, fmt):
        from distlda.corpora import ShardedCorpus
        return ShardedCorpus(path)
    _check_exists(path, "corpus file")
    fmt = _corpus_format(path, fmt)
    if fmt == "text":
        if not lda.id2word:
            raise CliError(f"{path}: a text corpus needs the model's vocabulary, and this model "
                           f"has none (it was trained on word ids); give a .mm or UCI corpus")
        d = Dictionary()
        for i, w in lda.id2word.items():
            d.token2id[w] = i
            d.id2token[i] = w
        return TextCorpus(path, dictionary=d)
    if fmt == "uci":
        return UciCorpus(path)
    return MmCorpus(path)


def _read_vocab(path: str):
    import smart_open

    from distlda.corpora import Dictionary
    _check_exists(path, "vocabulary file")
    try:
        with smart_open.open(path, "rt", encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a UTF-8 text vocabulary (one word per line, or a "
                       f"Dictionary.save_as_text file; a pickled gensim Dictionary converts "
                       f"with save_as_text)") from None
    body = lines[1:] if lines and lines[0].strip().isdigit() else lines  # gensim's num_docs
    if body and all(len(line.split("\t")) == 3 for line in body[:5]):
        return Dictionary.load_from_text(path)  # a Dictionary.save_as_text file
    return Dictionary.from_vocab(lines)


def _load_model(path: str):
    from distlda.models import LdaModel
    _check_exists(path, "model file")
    try:
        return LdaModel.load(path)
    except (ValueError, KeyError, OSError, EOFError) as e:
        detail = _one_line(e)
        # numpy's advice about pickles does not apply: distlda model files hold none
        detail = f" ({detail})" if "version" in detail and "pickle" not in detail else ""
        raise CliError(f"{path}: not a distlda model file{detail}; give a file written by "
                       f"'{PROG} train -o' or LdaModel.save") from None


# ---------------------------------------------------------------------- outputs
def _open_out(path: str):
    import smart_open
    try:
        return smart_open.open(path, "w", encoding="utf-8", newline="\n")
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}; check the folder exists and "
                       f"is writable") from None


def write_topic_keys(lda, path: str, topn: int) -> None:
    """MALLET's ``--output-topic-keys``: ``topic <TAB> alpha <TAB> words`` per topic."""
    with _open_out(path) as f:
        for k in range(lda.num_topics):
            words = " ".join(w for w, _ in lda.show_topic(k, topn))
            f.write(f"{k}\t{lda.alpha[k]:.6g}\t{words}\n")


def write_topic_word_weights(lda, path: str) -> None:
    """MALLET's ``--topic-word-weights-file``: ``topic <TAB> word <TAB> count + eta``, every
    word of every topic."""
    import numpy as np
    counts = lda.sstats
    eta = np.broadcast_to(lda.eta, counts.shape)
    words = [lda.id2word.get(i, str(i)) for i in range(lda.num_terms)]
    with _open_out(path) as f:
        for k in range(lda.num_topics):
            row = counts[k]
            f.writelines(f"{k}\t{w}\t{c + e:.6g}\n"
                         for w, c, e in zip(words, row.tolist(), eta[k].tolist()))


def write_doc_topics(theta, names, path: str | None) -> None:
    """MALLET's ``--output-doc-topics`` (2.0.8+): ``doc <TAB> name <TAB> p_0 ... p_K-1``."""
    f = _open_out(path) if path else sys.stdout
    try:
        for d, (name, row) in enumerate(zip(names, theta)):
            f.write(f"{d}\t{name}\t" + "\t".join(f"{p:.6g}" for p in row) + "\n")
    finally:
        if path:
            f.close()


def _write_outputs(args, lda, doc_label: str) -> None:
    if args.output_topic_keys:
        write_topic_keys(lda, args.output_topic_keys, args.topn)
    if args.output_topic_word_weights:
        write_topic_word_weights(lda, args.output_topic_word_weights)
    if args.output_doc_topics:  # block by block: a shard set's are read back one at a time
        theta = (row for block in lda.iter_document_topics() for row in block)
        write_doc_topics(theta, (f"{doc_label}:{d + 1}" for d in itertools.count()),
                         args.output_doc_topics)
    if getattr(args, "plot", None):
        try:
            lda.plot_convergence(args.plot)
        except ImportError as e:
            raise CliError(f"--plot {args.plot}: {e}") from None


def _print_topics(lda, topn: int) -> None:
    for k, words in lda.show_topics(num_topics=-1, num_words=topn, formatted=False):
        print(f"topic {k:3d}: " + " ".join(w for w, _ in words))


def _info(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


# ---------------------------------------------------------------------- commands
def _table_settings() -> list:
    """(LdaModel keyword, argparse name) of every setting the table gives an option."""
    from distlda.params import PARAMS
    return [(p.name, p.cli.dest or p.name) for p in PARAMS if p.cli is not None]


def _table_options(fixed_on_resume: bool | None = None) -> list:
    """(argparse name, flag, rule) of the table's command-line options."""
    from distlda.params import PARAMS
    return [(p.cli.dest or p.name, p.cli.flags[0], p.rule) for p in PARAMS
            if p.cli is not None and fixed_on_resume in (None, p.cli.fixed_on_resume)]


# Options that define a new model: with --resume the saved model's own values apply.
_MODEL_OPTIONS = {**{dest: flag for dest, flag, _ in _table_options(fixed_on_resume=True)},
                  "no_below": "--no-below", "no_above": "--no-above", "keep_n": "--keep-n"}


def _check_numbers(args) -> None:
    from distlda.params import Integer, Optional
    limits = [(dest, flag, rule) for dest, flag, rule in _table_options()
              if isinstance(rule, (Integer, Optional))]
    limits += [("no_below", "--no-below", Integer(0)), ("keep_n", "--keep-n", Integer(0)),
               ("topn", "--topn", Integer(0)), ("shards", "--shards", Integer(1))]
    for dest, flag, rule in limits:
        value = getattr(args, dest, None)
        if value is not None and not rule.ok(value):
            raise CliError(f"{flag} {value}: must be {rule.requirement}")
    if getattr(args, "no_above", None) is not None and not 0 < args.no_above <= 1:
        raise CliError(f"--no-above {args.no_above}: must be a fraction in (0, 1]")
    if getattr(args, "eta", None) is not None and not args.eta > 0:
        raise CliError(f"--eta {args.eta}: must be a positive number")


def _parse_alpha(text: str):
    if text in ("symmetric", "asymmetric", "auto"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"--alpha {text}: use symmetric, asymmetric, auto or a positive "
                       f"number") from None
    if not value > 0:
        raise CliError(f"--alpha {text}: must be positive")
    return value


def _distributed(args):
    distributed = {"auto": None, "yes": True, "no": False}[args.distributed]
    ns_conf = {k: v for k, v in (("host", args.ns_host), ("port", args.ns_port)) if v is not None}
    return distributed, ns_conf


def _say_if_compiling(args) -> None:
    # The library logs this at INFO; under -q the logs are off, so say it here.
    if args.quiet:
        from distlda.monitor import kernels_need_compiling
        if kernels_need_compiling():
            print("compiling the sampler's kernels (first run only, 5-20 s)...",
                  file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    """``distlda train``: train (or continue) a model, print its topics, write outputs."""
    from distlda.models import LdaModel

    _check_numbers(args)
    _check_writable(args)
    distributed, ns_conf = _distributed(args)
    progress = False if args.quiet else None
    t0 = time.perf_counter()
    if args.resume:
        parser_defaults = build_parser().parse_args(["train"])
        changed = [flag for dest, flag in _MODEL_OPTIONS.items()
                   if getattr(args, dest) != getattr(parser_defaults, dest)]
        if changed:
            raise CliError(f"--resume {args.resume} continues the saved model with its own "
                           f"settings; drop {', '.join(changed)}")
        lda = _load_model(args.resume)
        lda.distributed, lda.ns_conf, lda.eval_every = distributed, ns_conf, args.eval_every
        lda.progress = progress
        if args.checkpoint:  # where this training's checkpoint folder goes (a shard set's)
            lda.checkpoint = args.checkpoint
        if args.threads:
            lda.workers = args.threads
        _info(args, f"continuing {args.resume} ({lda.num_topics} topics, {lda.num_docs} "
                    f"documents, {lda.state.sweeps_done} sweeps so far) for {args.iterations} "
                    f"sweeps")
        _say_if_compiling(args)
        with _keep_on_loss(args):
            if args.corpus:
                lda.update(_open_corpus_for_model(lda, args.corpus, args.format),
                           iterations=args.iterations)
            else:
                lda.train(args.iterations)
        label = "doc"
    else:
        alpha = _parse_alpha(args.alpha)
        corpus, id2word, what, label = _open_corpus(args)
        if id2word is not None and len(id2word) < args.num_topics:
            logging.getLogger("distlda.cli").warning(
                "only %d words in the vocabulary for %d topics; lower -k, or relax the "
                "filters (--no-below, --no-above, --keep-n)", len(id2word), args.num_topics)
        _info(args, f"training {args.num_topics} topics on {what}, {args.iterations} sweeps")
        _say_if_compiling(args)
        settings = {name: getattr(args, dest) for name, dest in _table_settings()}
        with _keep_on_loss(args):
            lda = LdaModel(corpus, id2word=id2word, distributed=distributed, ns_conf=ns_conf,
                           progress=progress, checkpoint=getattr(args, "checkpoint", None),
                           **dict(settings, alpha=alpha))
    secs = time.perf_counter() - t0
    _info(args, f"trained on {lda.num_docs} documents, {lda.num_tokens} tokens, {lda.num_terms} "
                f"terms in {secs:.1f} s ({lda.executor_info}); log-likelihood "
                f"{lda.log_likelihood_per_token():.3f} per token")
    _print_topics(lda, args.topn)
    _write_outputs(args, lda, label)
    if args.output:
        lda.save(args.output)
        _info(args, f"model saved to {args.output}")
    return 0


@contextlib.contextmanager
def _keep_on_loss(args):
    """A training whose dispatcher is lost still saves, with ``-o``, the model it kept (its
    last checkpoint, exact), and says so in the error."""
    from distlda.errors import DispatcherLost
    try:
        yield
    except DispatcherLost as e:
        if args.output and e.model is not None:
            e.model.save(args.output)
            raise CliError(f"{e}; the model at its last checkpoint ({e.model.state.sweeps_done} "
                           f"sweeps) was saved to {args.output}: go on with --resume "
                           f"{args.output}") from None
        raise


def cmd_shard(args) -> int:
    """``distlda shard``: write a corpus as a shard set."""
    from distlda.corpora import ShardedCorpus
    _check_numbers(args)
    if not args.overwrite and ShardedCorpus.exists(args.dest):  # before reading the corpus
        raise CliError(f"{args.dest} already holds a shard set (manifest.json): pass "
                       f"--overwrite to replace it, or choose another DEST")
    corpus, id2word, what, _ = _open_corpus(args)
    _info(args, f"sharding {what} into {args.shards} shards in {args.dest}")
    out = ShardedCorpus.write(corpus, args.dest, shards=args.shards, id2word=id2word,
                              overwrite=args.overwrite)
    _info(args, f"wrote {out.num_docs} documents, {out.num_tokens} tokens, {out.num_terms} "
                f"terms ({out.word_dtype.name} word ids) in {out.num_shards} shards to {out.url}")
    return 0


def cmd_infer(args) -> int:
    """``distlda infer``: doc-topics of new documents under a saved model."""
    _check_writable(args)
    lda = _load_model(args.model)
    if args.iterations is not None and args.iterations < 1:
        raise CliError(f"--iterations {args.iterations}: must be an integer >= 1")
    corpus = _open_corpus_for_model(lda, args.corpus, args.format)
    theta = lda.fold_in(corpus, iterations=args.iterations)
    label = os.path.basename(args.corpus)
    write_doc_topics(theta, (f"{label}:{d + 1}" for d in range(len(theta))), args.output)
    if args.output:
        print(f"topic mixtures of {len(theta)} documents written to {args.output}",
              file=sys.stderr)
    return 0


def cmd_topics(args) -> int:
    """``distlda topics``: print a saved model's topics and write MALLET files."""
    _check_numbers(args)
    _check_writable(args)
    lda = _load_model(args.model)
    if args.summary:
        print(lda.summary(args.topn))
    else:
        _print_topics(lda, args.topn)
    _write_outputs(args, lda, "doc")
    return 0


# ---------------------------------------------------------------------- entry point
def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())


def _explain(e: BaseException) -> str:
    """One line for an exception raised while running a command."""
    from distlda.corpora import VocabularyFilterError
    if isinstance(e, VocabularyFilterError):
        if e.num_words == 0:
            return _one_line(e) + "; check the file's text and encoding (UTF-8)"
        return _one_line(e.describe("relax the filters, e.g. --no-below 1 --no-above 1.0"))
    if isinstance(e, FileNotFoundError):
        return f"file not found: {e.filename or e} (check the path)"
    if isinstance(e, PermissionError):
        return f"permission denied: {e.filename or e}"
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    text = _one_line(e)
    if "distributed=True" in text or "ns_conf=" in text:  # the Python API's words, not ours
        text = text.replace("distributed=True", "--distributed yes")
        text = re.sub(r"pass ns_conf=dict\([^)]*\)", "pass --ns-host HOST --ns-port PORT", text)
        text = text.replace("ns_conf", "--ns-host/--ns-port")
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the ``distlda`` command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on any error (one ``error:`` line on stderr), 130 if interrupted.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = set(_commands(parser))
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train"] + argv  # the main job is training: `distlda [CORPUS] [options]`
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except CliError as e:
        msg = _one_line(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, RuntimeError, OSError, EOFError, ImportError,
            MemoryError) as e:
        msg = _explain(e)
    print(f"{PROG} {args.command}: error: {msg}", file=sys.stderr)
    return 2
