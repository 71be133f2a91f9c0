"""distlda's errors: one base for every class the package defines, each keeping its builtin
parent, importable from ``distlda.errors``; the remote ones cross Pyro5 typed."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import distlda
from distlda import errors


def _defined_exceptions() -> dict[str, type]:
    """Every exception class defined in a module of the package (imported one by one)."""
    found = {}
    for info in pkgutil.walk_packages(distlda.__path__, "distlda."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__):
                found[f"{module.__name__}.{name}"] = obj
    return found


#: The builtin parent each class keeps (``except ValueError`` must still catch it).
PARENTS = {"ModelFileError": ValueError, "CorpusFormatError": ValueError,
           "VocabularyFilterError": ValueError, "TLSError": ValueError,
           "ProtocolError": ValueError, "LimitError": ValueError,
           "ClusterUnavailable": RuntimeError, "DispatcherLost": RuntimeError,
           "OwnedElsewhere": RuntimeError, "JobFailed": RuntimeError,
           "StaleView": RuntimeError, "AddressError": RuntimeError, "_Mismatch": RuntimeError,
           "CliError": Exception}


def test_every_exception_class_of_the_package_derives_from_distlda_error():
    found = _defined_exceptions()
    names = {cls.__name__ for cls in found.values()}
    assert set(PARENTS) <= names, f"the walk missed {set(PARENTS) - names}"
    outside = [q for q, cls in found.items()
               if cls is not errors.DistldaError and not issubclass(cls, errors.DistldaError)]
    assert not outside, f"not derived from DistldaError: {outside}"
    for q, cls in found.items():
        parent = PARENTS.get(cls.__name__)
        assert parent is None or issubclass(cls, parent), f"{q} lost its parent {parent}"


def test_user_facing_errors_import_from_errors_and_their_old_places():
    from distlda import models, persistence
    from distlda.cluster import client, messages, tls, worker_session
    from distlda.corpora import CorpusFormatError, VocabularyFilterError
    assert models.DispatcherLost is client.DispatcherLost is errors.DispatcherLost
    assert client.ClusterUnavailable is errors.ClusterUnavailable
    assert persistence.ModelFileError is errors.ModelFileError
    assert tls.TLSError is errors.TLSError
    assert messages.ProtocolError is errors.ProtocolError
    assert messages.LimitError is errors.LimitError
    assert worker_session.StaleView is errors.StaleView
    assert CorpusFormatError is errors.CorpusFormatError
    assert VocabularyFilterError is errors.VocabularyFilterError
    for name in errors.__all__:
        assert getattr(errors, name) is not None
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018
