"""A model's training: the documents it takes in, and the loop in which the executor runs
the sweeps, the model's own step after each counts it and learns the priors when due, and the
monitor then observes and records.

The schedule of the learned priors belongs here, not to the monitor: after sweep ``s`` (counted
across every training of the model, :attr:`GibbsState.sweeps_done`), alpha="auto" and
eta="auto" are re-estimated when ``s >= optimize_burnin`` and ``s % optimize_interval == 0``,
alpha first. The step also marks the state changed (:meth:`GibbsState.touch`), since the
executors move its counts in place.
"""

from __future__ import annotations

import logging

import numpy as np

from distlda.errors import DispatcherLost
from distlda.gibbs.chunks import MAX_DOCS, MAX_TOKENS, declared_terms, iter_chunks
from distlda.gibbs.local import LocalExecutor
from distlda.gibbs.state import check_sizes, max_terms_for
from distlda.monitor import SweepMonitor, note_first_compile
from distlda.params import PRIOR_MAX, PRIOR_MIN

logger = logging.getLogger("distlda.models.ldamodel")


def learn_alpha(state, histograms=None) -> None:
    """Re-estimate alpha by Minka's fixed point from the document-topic count histograms
    (``histograms()``, or counted from the state's chunks)."""
    from distlda.gibbs.hyper import count_histograms, optimize_alpha
    hist = (histograms() if histograms is not None
            else count_histograms(state.chunks, state.num_topics))
    alpha = np.clip(optimize_alpha(state.alpha, hist), PRIOR_MIN, PRIOR_MAX)
    state.alpha = alpha  # executors read the prior from the state each sweep
    logger.info("alpha re-estimated: sum %.4f, min %.4g, max %.4g",
                alpha.sum(), alpha.min(), alpha.max())


def learn_eta(state) -> None:
    """Re-estimate a symmetric eta by Minka's fixed point (MALLET's
    ``learnSymmetricConcentration``), for ``eta="auto"``."""
    from scipy.special import psi
    counts = state.nwk[state.nwk > 0].astype(np.float64)
    V = state.num_terms
    beta = state.beta
    for _ in range(20):
        num = (psi(counts + beta) - psi(beta)).sum()
        den = V * (psi(state.nk + V * beta) - psi(V * beta)).sum()
        if not den > 0:
            break
        beta = float(np.clip(beta * num / den, PRIOR_MIN, PRIOR_MAX))
    state.set_beta(beta)
    logger.info("eta re-estimated: %.4g", beta)


def step(spec, state, histograms=None) -> None:
    """The model's own work after a sweep: count it, mark the state changed, learn the
    priors when due (see the module docstring)."""
    state.sweeps_done += 1
    state.touch()
    done = state.sweeps_done
    due = done >= spec.optimize_burnin and done % spec.optimize_interval == 0
    if due and spec.optimize_alpha:
        learn_alpha(state, histograms)
    if due and spec.optimize_eta:
        learn_eta(state)


def train(model, executor, iterations: int) -> None:
    """Run ``iterations`` sweeps of ``model`` on ``executor``: after each, the model's
    :func:`step`, then the monitor (logs, history, callbacks, bar)."""
    if model.state.shards is not None:
        model.state.shards.open()  # the set and every checkpoint still there: before a sweep
        if isinstance(executor, LocalExecutor):
            materialize(model.state)
    if executor.sampler == "mh":
        from distlda.gibbs import mh as _mh
        note_first_compile(_mh)
    monitor = SweepMonitor(model, iterations)

    def on_sweep(it, loglik=None, histograms=None, sync=None):
        step(model.spec, model.state, histograms)
        monitor(it, loglik=loglik, sync=sync)

    with monitor:
        try:
            _run(model, executor, iterations, on_sweep)
        finally:
            model.state.touch()  # a sweep cut short moved counts too


def _run(model, executor, iterations: int, on_sweep) -> None:
    """``executor.run``; when the dispatcher is lost the model keeps its last checkpoint,
    and in auto mode the training ends in-process from there."""
    state = model.state
    start = state.sweeps_done
    try:
        executor.run(state, iterations, model.rng, on_sweep)
    except DispatcherLost as e:
        kept = e.sweeps_kept
        state.sweeps_done = start + kept  # the sweeps after the checkpoint are gone ...
        model.history[:] = [h for h in model.history if h.sweep <= state.sweeps_done]  # ... all
        if model.distributed is not None or state.shards is not None:
            # True: the caller asked for the cluster; a shard set: its tokens are not here
            e.model = model  # the checkpointed model, for ``except DispatcherLost as e``
            raise
        left = iterations - kept
        logger.warning("%s; training the other %d sweeps in-process", e, left)
        local = LocalExecutor(model.workers)
        local.sampler, local.mh_steps = executor.sampler, executor.mh_steps
        model.executor_info = f"{model.executor_info}, then {local.describe()}"
        local.run(state, left, model.rng, lambda it, **kw: on_sweep(kept + it, **kw))


# ---------------------------------------------------------------------- shard sets
def is_shard_set(corpus) -> bool:
    from distlda.corpora.sharded import ShardedCorpus
    return isinstance(corpus, ShardedCorpus)


def on_shards(model, corpus, executor, iterations: int) -> bool:
    """Train ``model`` on the shard set ``corpus`` with its tokens read by the cluster's
    workers (``executor`` a cluster's); False when the executor runs in this process (the
    caller then reads the set as any corpus).

    Raises
    ------
    ValueError
        The model holds documents already, or the set's vocabulary is wider than the model's
        fixed one.
    CorpusFormatError
        The set's vocabulary file disagrees with the model's ``id2word``.
    CheckpointError
        The checkpoint place is not writable.
    """
    if isinstance(executor, LocalExecutor):
        return False
    from distlda.corpora.checkpoints import CheckpointStore
    from distlda.gibbs.assignments import ShardAssignments
    state = model.state
    if state.num_tokens:
        raise ValueError("this model holds documents already: a cluster trains a shard set in a "
                         "model of its own (LdaModel(ShardedCorpus(url), ...)), or pass "
                         "distributed=False to read the set into this model's memory")
    check_vocabulary(model, corpus)
    if not model.spec.fixed_vocab:
        state.grow_vocabulary(corpus.num_terms)
    shards = ShardAssignments.start(corpus, model.spec.checkpoint, model.rng)
    CheckpointStore(shards.checkpoint).probe()  # before any sweep
    state.shards = shards
    logger.info("training LDA on the cluster from the shard set %s: %d topics, %d documents, "
                "%d tokens, %d terms, %d shards, %d sweeps; checkpoints in %s", corpus.url,
                state.num_topics, state.num_docs, state.num_tokens, state.num_terms,
                shards.num_shards, iterations, shards.checkpoint)
    # through the model's own entry, as any training: the sampler ("auto" resolved for the
    # set's documents, mh_steps) goes to the executor and executor_info is set
    model._train(iterations, executor)
    return True


def check_vocabulary(model, corpus) -> None:
    """The shard set's words must be the model's: its width within a fixed vocabulary, and
    its vocabulary file (if any) equal to ``id2word`` on every id both have."""
    from distlda.errors import CorpusFormatError
    state = model.state
    if model.spec.fixed_vocab and corpus.num_terms > state.num_terms:
        raise ValueError(f"the shard set {corpus.url} has {corpus.num_terms} word ids, more than "
                         f"the {state.num_terms} of the model's id2word: pass the set's own "
                         f"vocabulary (id2word=corpus.id2word)")
    mine, theirs = model.id2word, corpus.id2word
    if not mine or theirs is None:
        return
    for i in range(min(state.num_terms, corpus.num_terms)):
        if i in mine and i in theirs and mine[i] != theirs[i]:
            raise CorpusFormatError(f"the shard set {corpus.url}'s vocabulary disagrees with "
                                    f"id2word: word id {i} is {theirs[i]!r} there and "
                                    f"{mine[i]!r} in id2word; pass id2word=corpus.id2word")


def materialize(state) -> None:
    """A state whose assignments are kept with a shard set takes its tokens and their topics
    into memory (to train in-process): every shard read back, as it was checkpointed."""
    from distlda.gibbs.chunks import Chunk
    sh = state.shards
    logger.warning("reading the shard set %s (%d tokens) and its checkpoints into this "
                   "process's memory to train here", sh.url, sh.num_tokens)
    chunks = [Chunk(words=np.asarray(w, np.int32), doc_ptr=ptr, topics=z)
              for _, w, ptr, z in sh.iter_shards(state.num_topics)]
    state.shards = None
    state.chunks.extend(chunks)
    nwk, nk = state.recount()
    if not (np.array_equal(nwk, state.nwk) and np.array_equal(nk, state.nk)):
        raise RuntimeError("the shard set's checkpointed topics do not give the model's counts")
    state.touch()


# ---------------------------------------------------------------------- documents taken in
def chunks_of(model, corpus) -> list:
    """The corpus as validated chunks, every size limit checked first against what the
    corpus declares (a matrix's shape, a reader's header), then while streaming."""
    fixed, state = model.spec.fixed_vocab, model.state
    vocab = state.num_terms if fixed else None
    if not fixed:  # declared widths (a matrix's, a reader's header) before any token
        check_sizes(state.num_topics, declared_terms(corpus))
    shape = getattr(corpus, "shape", None)
    declared_docs = int(shape[0]) if shape is not None and len(shape) == 2 else \
        int(getattr(corpus, "num_docs", 0) or 0)
    docs_left = MAX_DOCS - state.num_docs
    if declared_docs > docs_left:
        raise ValueError(f"the corpus declares {declared_docs} documents, more than the "
                         f"{docs_left} this model can still take (at most {MAX_DOCS}): "
                         f"train on fewer documents or several models")
    return list(iter_chunks(corpus, vocab, model.chunksize,
                            max_tokens=MAX_TOKENS - state.num_tokens,
                            max_terms=max_terms_for(state.num_topics), max_docs=docs_left))


def widen_vocabulary(model, corpus, new_chunks) -> None:
    """Without a fixed vocabulary, V is the widest of the largest id used, a matrix's width
    and a reader's ``num_terms``."""
    if model.spec.fixed_vocab:
        return
    width = max((max(c.width, int(c.words.max()) + 1 if c.num_tokens else 0)
                 for c in new_chunks), default=0)
    model.state.grow_vocabulary(max(width, declared_terms(corpus)))  # only ever wider
