"""Every exception class distlda defines derives from :class:`DistldaError`.

(A bad argument still raises a plain ``ValueError`` or ``TypeError`` naming the parameter, as
gensim and NumPy do; the classes here are the failures worth catching by name.) Each class
also keeps the builtin parent it always had (``ValueError`` for bad input,
``RuntimeError`` for a failure at run time), so ``except ValueError`` still catches a damaged
model file. Users catch the classes here without importing internals::

    from distlda.errors import DispatcherLost, ModelFileError

Across the cluster (:mod:`distlda.cluster.transport`), the classes of :data:`REMOTE` arrive at
a distlda peer as the same class; a plain Pyro5 client without distlda reads the builtin
parent, with the class named in the message. Nothing is ever unpickled: a peer's error is
rebuilt from its class name (looked up in :data:`REMOTE` only) and its message.

The internal errors stay in their modules (``distlda.cli.CliError``,
``distlda.cluster.process.AddressError``, ...), also derived from :class:`DistldaError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # defined beside the corpus filters; see __getattr__ below
    from distlda.corpora.textcorpus import VocabularyFilterError


class DistldaError(Exception):
    """The base of every exception class distlda defines."""


# ---------------------------------------------------------------- files and corpora
class ModelFileError(DistldaError, ValueError):
    """A model file that is damaged, not a model file, or of an unsupported version."""


class CorpusFormatError(DistldaError, ValueError):
    """A corpus file is malformed. The message names the file, the line and the problem."""


class CheckpointError(DistldaError, ValueError):
    """Topic assignments that cannot be written or read back where a training keeps them
    (``checkpoint=URL``, beside a shard set): an unwritable place, a missing, truncated or
    changed file. The message names the URL or file and what to do."""


# ---------------------------------------------------------------- the cluster
class TLSError(DistldaError, ValueError):
    """A TLS folder that cannot work (missing, foreign or unusable files): says what to do."""


class ProtocolError(DistldaError, ValueError):
    """A message without the form or the values its kind requires (names the field)."""


class LimitError(ProtocolError):
    """A session larger than the receiving process is configured to hold."""


class ClusterUnavailable(DistldaError, RuntimeError):
    """No usable cluster: says which part is missing."""


class DispatcherLost(DistldaError, RuntimeError):
    """The dispatcher stopped answering during a training, or the training failed there
    (no worker left).

    The client's model then holds the state of the last checkpoint: ``sweeps_kept`` sweeps of
    this training, committed exactly (0: the state from before the training). With
    ``distributed=True`` the exception carries that model as ``model``, so that code written
    ``lda = LdaModel(corpus, distributed=True)`` can still reach it::

        from distlda.models import DispatcherLost, LdaModel
        try:
            lda = LdaModel(corpus, num_topics=100, distributed=True)
        except DispatcherLost as e:
            lda = e.model              # exact, at its last checkpoint
            lda.save("checkpoint.npz")
    """

    model: Any = None  # the LdaModel at its checkpoint (distributed=True)

    def __init__(self, message: str, sweeps_kept: int):
        super().__init__(message)
        self.sweeps_kept = sweeps_kept


class OwnedElsewhere(DistldaError, RuntimeError):
    """A worker refused to join: it works for another dispatcher, heard from recently (ask
    again later: a silent owner loses it)."""


class RemoteJobError(DistldaError, RuntimeError):
    """A job that a peer ran in the background failed there; the message names the error."""


class StaleView(DistldaError, RuntimeError):
    """A model update arrived for word-topic rows this worker does not hold."""


#: The classes a distlda server raises on purpose, rebuilt by name when they arrive from a
#: peer (each takes one message).
REMOTE: dict[str, type[DistldaError]] = {c.__name__: c for c in (
    ProtocolError, LimitError, OwnedElsewhere, RemoteJobError, StaleView, CorpusFormatError,
    CheckpointError)}


def data_error(e: BaseException) -> Exception | None:
    """The error to fail a training with when a peer raised one about the data (a shard or a
    checkpoint it cannot read, more tokens than it may hold), typed as it was raised (also
    when it arrives as a :class:`RemoteJobError` naming it); else None."""
    kinds = {c.__name__: c for c in (CorpusFormatError, CheckpointError, LimitError)}
    if isinstance(e, tuple(kinds.values())):
        return e  # type: ignore[return-value]
    if isinstance(e, RemoteJobError):  # raised in a peer's background job
        import re
        m = re.search(r"\b(" + "|".join(kinds) + r"): (.*)$", str(e), re.S)
        if m:
            return kinds[m.group(1)](m.group(2))
    return None


def __getattr__(name: str):
    # Defined where its message is built (the corpus's filters); imported on first use
    # because distlda.corpora imports this module.
    if name == "VocabularyFilterError":
        from distlda.corpora.textcorpus import VocabularyFilterError
        return VocabularyFilterError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DistldaError", "ModelFileError", "CorpusFormatError", "CheckpointError",
           "VocabularyFilterError",
           "TLSError", "ProtocolError", "LimitError", "ClusterUnavailable", "DispatcherLost",
           "OwnedElsewhere", "RemoteJobError", "StaleView", "REMOTE"]
