"""Topic models: :class:`LdaModel` (serial or distributed collapsed Gibbs LDA)."""

from distlda.errors import DispatcherLost
from distlda.models.ldamodel import LdaModel

__all__ = ["LdaModel", "DispatcherLost"]
