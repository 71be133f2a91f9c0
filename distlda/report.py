"""Reports on a trained model: the text summary and the convergence plot."""

from __future__ import annotations

import os

import numpy as np
import smart_open


def _eta_text(model) -> str:
    st = model.state
    if st.eta_kw is None:
        learned = " (learned, 'auto')" if model.spec.optimize_eta else ""
        return f"{st.beta:.4g} for every topic and word{learned}"
    kind = "per word" if st.eta_kw.shape[1] == 1 else "per topic and word"
    return f"{kind}: min {st.eta_kw.min():.4g}, mean {st.eta_kw.mean():.4g}, max {st.eta_kw.max():.4g}"


def summary(model, topn: int) -> str:
    """The text of :meth:`distlda.models.LdaModel.summary`."""
    a = model.alpha
    if model.spec.optimize_alpha:
        alpha = f"learned ('auto'): sum {a.sum():.4g}, min {a.min():.4g}, max {a.max():.4g}"
    elif np.allclose(a, a[0]):
        alpha = f"symmetric, {a[0]:.4g} per topic (sum {a.sum():.4g})"
    else:
        alpha = f"asymmetric: sum {a.sum():.4g}, min {a.min():.4g}, max {a.max():.4g}"
    spec = model.spec
    sampler = model.state.resolve_sampler(spec.sampler) if model.num_tokens else spec.sampler
    ll = (f"{model.log_likelihood_per_token():.4f} per token (joint log p(w, z))"
          if model.num_tokens else "n/a (no documents)")
    lines = [
        f"LdaModel: {model.num_topics} topics",
        f"corpus:     {model.num_docs} documents, {model.num_tokens} tokens",
        f"vocabulary: {model.num_terms} words",
        f"alpha:      {alpha}",
        f"eta:        {_eta_text(model)}",
        f"sampler:    {sampler}" + (f" ({model.executor_info})" if model.executor_info else ""),
        f"sweeps:     {model.state.sweeps_done}",
        f"log-likelihood: {ll}",
        "topics (share of tokens: top words):",
    ]
    nk = model.state.nk
    total = max(int(nk.sum()), 1)
    for k in np.argsort(-nk, kind="stable"):
        words = " ".join(w for w, _ in model.show_topic(int(k), topn))
        lines.append(f"  {int(k):3d} {100 * nk[k] / total:5.1f}%: {words}")
    return "\n".join(lines)


def plot_convergence(model, path: str) -> None:
    """:meth:`distlda.models.LdaModel.plot_convergence`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plot_convergence needs matplotlib: pip install 'distlda[plot]' "
                          "(or pip install matplotlib)") from None
    if not model.history:
        raise ValueError("no sweeps recorded: train the model first (the history is not "
                         "saved with a model, so a loaded model has none)")
    sweeps = [h.sweep for h in model.history]
    points = [(h.sweep, h.log_likelihood) for h in model.history if h.log_likelihood is not None]
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax_ll, ax_rate = fig.subplots(2, 1, sharex=True)
    if points:
        ax_ll.plot(*zip(*points), marker="o", markersize=3)
    else:
        ax_ll.text(0.5, 0.5, "log-likelihood not evaluated (eval_every=0)",
                   ha="center", va="center", transform=ax_ll.transAxes)
    ax_ll.set_ylabel("log-likelihood per token")
    ax_ll.set_title(f"LdaModel: {model.num_topics} topics, {model.num_tokens} tokens")
    ax_rate.plot(sweeps, [h.tokens_per_second / 1e6 for h in model.history])
    ax_rate.set_ylabel("M tokens/s")
    ax_rate.set_xlabel("sweep")
    fmt = os.path.splitext(path.split("?")[0])[1].lstrip(".").lower() or "png"
    if fmt in ("gz", "bz2"):
        fmt = "png"
    with smart_open.open(path, "wb") as f:
        fig.savefig(f, format=fmt)
