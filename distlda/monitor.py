"""What a training shows and records per sweep: logs, the progress bar, history, callbacks.

:class:`SweepMonitor` observes: after the model's own step (:mod:`distlda.training`, which
counts the sweep and learns the priors when due) it logs the rate and (every ``eval_every``
sweeps) the log-likelihood, appends a :class:`SweepStats` to the model's history, calls the
user's callbacks and moves the bar. Log lines and the bar share
the terminal through tqdm's logging redirect, so they never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass

from tqdm.contrib.logging import logging_redirect_tqdm

from distlda.gensim_compat import MetricsCallback, is_gensim_metric

logger = logging.getLogger("distlda.models.ldamodel")


@dataclass(frozen=True)
class SweepStats:
    """What one Gibbs sweep did: an entry of :attr:`LdaModel.history`.

    Attributes
    ----------
    sweep : int
        Sweeps the model has run in all, this one included (1-based, counted across
        ``update`` and ``train`` calls).
    seconds : float
        Wall-clock seconds this sweep took (evaluation not included).
    elapsed : float
        Wall-clock seconds since the start of the ``train``/``update`` call that ran it.
    tokens_per_second : float
        Tokens resampled per second in this sweep.
    log_likelihood : float or None
        Joint log p(w, z) per token after the sweep, on the sweeps that evaluate it (every
        ``eval_every`` sweeps and the last of each call); None on the others.
    """

    sweep: int
    seconds: float
    elapsed: float
    tokens_per_second: float
    log_likelihood: float | None = None


class SweepMonitor:
    """What one training call shows and records after each sweep (called by the training
    loop, :func:`distlda.training.train`, after the model's own step).

    Parameters
    ----------
    model : LdaModel
    iterations : int
        Sweeps this call runs.

    ``loglik`` (per token, or a function returning it) is passed by executors whose Gibbs
    state lives elsewhere. Use as a context manager around the training (bar and log
    redirect).
    """

    def __init__(self, model, iterations: int):
        self.model = model
        self.iterations = iterations
        self.n_tokens = model.state.num_tokens
        self.bar = progress_bar(iterations) if want_bar(model.progress) else None
        self.t_start = time.perf_counter()
        self.last = dict(t=self.t_start, it=-1, t_sweep=self.t_start, loglik=None)
        self.report_every = model.eval_every or 10
        self.callbacks = check_callbacks(model.callbacks)
        metrics = [cb for cb in self.callbacks if is_gensim_metric(cb)]
        if metrics:  # gensim's Metric objects run together, through gensim's Callback
            self.callbacks = [cb for cb in self.callbacks if not is_gensim_metric(cb)]
            self.callbacks.append(MetricsCallback(model, metrics, iterations,
                                                  model.passes))
        self._redirect = contextlib.nullcontext()

    def __enter__(self):
        if self.bar is not None:
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(*exc)
        return False

    def __call__(self, it: int, loglik=None, sync=None) -> None:
        """After sweep ``it`` (and the model's own step, :func:`distlda.training.step`, which
        counted it and learned the priors when due). ``sync()``, when given, brings the
        model's state up to date (on a cluster the client's copy is behind): called before
        any user callback."""
        m, last = self.model, self.last
        now = time.perf_counter()
        secs = max(now - last["t_sweep"], 1e-9)
        rate = self.n_tokens / secs
        logger.debug("sweep %d/%d: %.0f tokens/s", it + 1, self.iterations, rate)
        value = None
        if (it + 1) % self.report_every == 0 or it + 1 == self.iterations:
            value = self._report(it, now, loglik)
        stats = SweepStats(sweep=m.state.sweeps_done, seconds=secs, elapsed=now - self.t_start,
                           tokens_per_second=rate, log_likelihood=value)
        m.history.append(stats)
        if self.bar is not None:
            post = f"{rate / 1e6:.2f}M tok/s"
            if last["loglik"] is not None:
                post += f", LL {last['loglik']:.4f}"
            self.bar.set_postfix_str(post, refresh=False)
            self.bar.update(1)
        if self.callbacks and sync is not None:
            sync()  # a callback must see the model after this sweep, not a checkpoint
        for callback in self.callbacks:
            callback(m, stats)
        # neither the evaluation nor the callbacks are charged to the next sweep's rate
        last["t_sweep"] = time.perf_counter()
        if last["it"] == it:
            last["t"] = last["t_sweep"]

    def _report(self, it: int, now: float, loglik) -> float | None:
        """The INFO line of an evaluated sweep; returns the log-likelihood (None if off)."""
        m, last = self.model, self.last
        avg = self.n_tokens * (it - last["it"]) / max(now - last["t"], 1e-9)
        value = None
        if m.eval_every:
            if loglik is None:
                value = m.log_likelihood_per_token()
            elif callable(loglik):  # computed where the data is, only when needed
                value = float(loglik())
            else:
                value = float(loglik)
            last["loglik"] = value
            logger.info("sweep %d/%d: %.0f tokens/s, log-likelihood %.4f per token",
                        it + 1, self.iterations, avg, value)
        else:
            logger.info("sweep %d/%d: %.0f tokens/s", it + 1, self.iterations, avg)
        last.update(t=time.perf_counter(), it=it)
        return value


def want_bar(progress: bool | None) -> bool:
    """``progress`` if set, else whether stderr is an interactive terminal."""
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(total: int):
    """A tqdm bar for ``total`` sweeps (the caller decides whether to show one)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="Gibbs sweeps", unit="sweep", leave=False)


def check_callbacks(callbacks) -> list:
    callbacks = list(callbacks or ())
    for cb in callbacks:
        if not callable(cb) and not is_gensim_metric(cb):
            raise ValueError(f"Invalid 'callbacks' parameter: {cb!r} is not callable "
                             f"(use functions taking (model, stats), or gensim's "
                             f"callbacks.Metric objects)")
    return callbacks


_COMPILE_CHECKED: set = set()


#: Per module, the kernels every training compiles (others, such as the cluster's or the
#: evaluation's, may stay uncompiled on a machine for good, and must not make every run say
#: "first run").
TRAINING_KERNELS = {"distlda.gibbs.kernels": ("sweep_sparse", "count_assignments", "init_topics",
                                              "build_word_lists"),
                    "distlda.gibbs.mh": ("sweep_mh",)}


def kernels_need_compiling(module=None) -> bool:
    """Whether the training kernels of ``module`` (:data:`TRAINING_KERNELS`; all its kernels
    for another module) have neither been compiled in this process nor cached on disk (a
    fresh install): the first training then compiles them, 5-20 s.

    Reads numba's on-disk cache index for each kernel (a numba internal; if it changes,
    the answer is False and nothing is said).
    """
    if module is None:
        from distlda.gibbs import kernels as module
    names = TRAINING_KERNELS.get(module.__name__)
    try:
        for name, obj in vars(module).items():
            if names is not None and name not in names:
                continue
            cache = getattr(obj, "_cache", None)
            if cache is None or not hasattr(obj, "signatures") or obj.signatures:
                continue
            if not cache._cache_file._load_index():
                return True
    except Exception:  # numba internals moved: stay quiet rather than guess
        return False
    return False


def note_first_compile(module) -> None:
    """Log once per process and module when its kernels must be compiled before training."""
    name = module.__name__
    if name in _COMPILE_CHECKED:
        return
    _COMPILE_CHECKED.add(name)
    if kernels_need_compiling(module):
        logger.info("compiling the sampler's kernels (first run only, 5-20 s; numba "
                    "caches them for later runs)...")
