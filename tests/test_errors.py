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
           "OwnedElsewhere": RuntimeError, "RemoteJobError": RuntimeError,
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


# ---------------------------------------------------------------- across Pyro5
@pytest.fixture(scope="module")
def server():
    """A distlda daemon (in a thread) serving an object that raises what it is told to."""
    import threading

    from distlda.cluster import transport

    @transport.expose
    class Raiser:
        def fail(self, kind: str, message: str):
            raise {"protocol": errors.ProtocolError, "limit": errors.LimitError,
                   "owned": errors.OwnedElsewhere, "stale": errors.StaleView,
                   "tls": errors.TLSError, "value": ValueError,
                   "key": KeyError}[kind](message)

        def job(self):
            jobs = transport.PolledJobs()
            j = jobs.start(lambda: 1 // 0)
            return jobs.wait(j, 5.0, prefix="peer: ")

    daemon = transport._Daemon(host="127.0.0.1")
    uri = daemon.register(Raiser())
    t = threading.Thread(target=daemon.requestLoop, daemon=True)
    t.start()
    yield uri
    daemon.shutdown()
    t.join(10)


@pytest.mark.parametrize("kind, cls", [("protocol", errors.ProtocolError),
                                       ("limit", errors.LimitError),
                                       ("owned", errors.OwnedElsewhere),
                                       ("stale", errors.StaleView)])
def test_distlda_errors_arrive_at_a_distlda_peer_as_their_class(server, kind, cls):
    from distlda.cluster import transport
    with transport.proxy(server, 5.0) as p:
        with pytest.raises(errors.DistldaError) as info:
            p.fail(kind, "why it failed")
    assert type(info.value) is cls and str(info.value) == "why it failed"
    assert transport.is_remote(info.value)


def test_other_errors_arrive_as_builtins_and_a_failed_job_as_job_failed(server):
    from distlda.cluster import transport
    with transport.proxy(server, 5.0) as p:
        with pytest.raises(ValueError) as info:  # not rebuilt: not a class that crosses typed
            p.fail("tls", "no folder")
        assert type(info.value) is ValueError and str(info.value) == "TLSError: no folder"
        with pytest.raises(KeyError):
            p.fail("key", "k")
        with pytest.raises(ValueError, match="^plain$"):
            p.fail("value", "plain")
        with pytest.raises(errors.RemoteJobError, match="^peer: ZeroDivisionError: "):
            p.job()
    local = errors.ProtocolError("here")
    assert not transport.is_remote(local)


def test_a_plain_pyro5_client_reads_builtins_with_the_class_named(server):
    import subprocess
    import sys
    code = ("import sys, Pyro5.api\n"
            "p = Pyro5.api.Proxy(sys.argv[1]); p._pyroSerializer = 'msgpack'\n"
            "for kind in ('protocol', 'owned'):\n"
            "    try:\n        p.fail(kind, 'why')\n"
            "    except Exception as e:\n        print(type(e).__name__, e)\n"
            "print('distlda' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(server)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.splitlines() == ["ValueError ProtocolError: why",
                                       "RuntimeError OwnedElsewhere: why", "False"], out
