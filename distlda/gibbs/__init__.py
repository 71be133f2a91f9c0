"""The collapsed Gibbs sampler in one process, and the pieces the cluster reuses.

- :mod:`~distlda.gibbs.chunks`: a corpus as validated chunks of contiguous int32 tokens.
- :mod:`~distlda.gibbs.state`: the Gibbs state (assignments and their exact counts).
- :mod:`~distlda.gibbs.sampling`: the one sweep entry point every executor calls, the "auto"
  sampler policy and the per-step seed rule.
- :mod:`~distlda.gibbs.kernels` (SparseLDA and helpers) and :mod:`~distlda.gibbs.mh`
  (WarpLDA-style Metropolis-Hastings), compiled with :mod:`~distlda.gibbs.jit`.
- :mod:`~distlda.gibbs.blocks`: the vocabulary-block layout threads and workers sweep in.
- :mod:`~distlda.gibbs.local`: the in-process executor (threads);
  :mod:`~distlda.gibbs.hyper`: learning alpha.
"""
