"""The collapsed Gibbs sampler in one process: chunks, counts, kernels, MH, threads."""
