"""distlda: sparse collapsed-Gibbs LDA, in-process or on a Pyro5 cluster, with a gensim-style API."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
