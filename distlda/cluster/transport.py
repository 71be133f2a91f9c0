"""The cluster's transport: the only module that talks to Pyro5.

Name-server lookup and registration, serving an object, proxies with timeouts, and the
polled-job helper both processes use (a long call returns a job id at once and the caller
polls for the result, so a long sweep is never mistaken for a dead peer). Everything above
this module (planning, the ledger of committed counts, a worker's session) sees only plain
Python values and the messages of :mod:`distlda.cluster.messages`, so another transport
could drive the same state classes.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, Callable

import Pyro5.api
import Pyro5.errors
from Pyro5 import config as _config

logger = logging.getLogger("distlda.transport")

SERIALIZER = "msgpack"

#: Re-exported so that callers can classify failures without importing Pyro5.
PyroError = Pyro5.errors.PyroError
CommunicationError = Pyro5.errors.CommunicationError
NamingError = Pyro5.errors.NamingError
expose = Pyro5.api.expose


def configure() -> None:
    """Make msgpack the serializer of every proxy this process creates (name server included)."""
    _config.SERIALIZER = SERIALIZER


def proxy(uri, timeout: float | None) -> Pyro5.api.Proxy:
    """A msgpack proxy with a communication timeout (None: wait forever)."""
    p = Pyro5.api.Proxy(uri)
    p._pyroSerializer = SERIALIZER
    p._pyroTimeout = timeout
    return p


def claim(p: Pyro5.api.Proxy, timeout: float | None) -> None:
    """Take over a proxy made in another thread, with a new timeout."""
    p._pyroClaimOwnership()
    p._pyroTimeout = timeout


def set_timeout(p: Pyro5.api.Proxy, timeout: float | None) -> None:
    p._pyroTimeout = timeout


def release(p: Pyro5.api.Proxy) -> None:
    """Close a proxy's connection (it reconnects on its next call)."""
    p._pyroRelease()


def ns_proxy(host: str, port: int, timeout: float) -> Pyro5.api.Proxy:
    """The name server at exactly ``host:port`` (no broadcast), bound, or a Pyro5 error."""
    host = str(host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    p = proxy(f"PYRO:Pyro.NameServer@{host}:{int(port)}", timeout)
    p._pyroBind()
    return p


def locate_ns(host=None, port=None, timeout: float = 5.0, broadcast: bool = False):
    """Name server proxy: ``host:port``, else PYRO_NS_HOST/PYRO_NS_PORT, else localhost:9090.

    With ``broadcast`` and no host given, Pyro5's broadcast discovery is tried as well
    (up to about 2 s more when nothing answers).
    """
    if host is None and port is None and broadcast:
        p = Pyro5.api.locate_ns()
        p._pyroSerializer = SERIALIZER
        p._pyroTimeout = timeout
        return p
    return ns_proxy(host or _config.NS_HOST, port or _config.NS_PORT, timeout)


def ns_address(host=None, port=None) -> str:
    return f"{host or _config.NS_HOST}:{port or _config.NS_PORT}"


def list_names(ns_host, ns_port, prefix: str, timeout: float = 3.0) -> dict:
    """``{name: uri}`` of the registrations starting with ``prefix``."""
    with locate_ns(ns_host, ns_port, timeout=timeout) as ns:
        return ns.list(prefix=prefix)


def lookup(ns_host, ns_port, name: str, timeout: float = 2.0):
    """The URI registered as ``name``, or None."""
    with locate_ns(ns_host, ns_port, timeout=timeout) as ns:
        try:
            return ns.lookup(name)
        except Pyro5.errors.NamingError:
            return None


def unregister(ns_host, ns_port, name: str, timeout: float = 2.0) -> None:
    """Remove ``name`` from the name server (quietly: it may be gone already)."""
    try:
        with locate_ns(ns_host, ns_port, timeout=timeout) as ns:
            ns.remove(name)
    except Exception:
        pass


def call(uri, method: str, *args, timeout: float = 2.0):
    """One remote call on a fresh connection, closed afterwards."""
    with proxy(uri, timeout) as p:
        return getattr(p, method)(*args)


def register(ns_host, ns_port, name, uri, meta):
    ns = locate_ns(ns_host, ns_port, timeout=10.0, broadcast=ns_host is None)
    with ns:
        ns.register(name, uri, safe=False, metadata={meta})


def keep_registered(ns_host, ns_port, name, uri, stop: threading.Event, meta, every: float = 5.0):
    """Re-register when the name is gone (name server restarted, or we were declared dead)."""
    while not stop.wait(every):
        try:
            ns = locate_ns(ns_host, ns_port, timeout=5.0, broadcast=False)
            with ns:
                try:
                    ns.lookup(name)
                except Pyro5.errors.NamingError:
                    ns.register(name, uri, safe=False, metadata={meta})
                    logger.info("registered again as %s", name)
        except Exception as e:  # name server away: try again later
            logger.debug("name server check failed: %s", e)


def serve_forever(obj, name: str, host, port, ns_host, ns_port, meta: str) -> int:
    """Serve ``obj`` as ``name`` until SIGTERM or Ctrl-C: register it with the name server,
    keep the registration alive, then remove it.

    Returns the process exit status (1 when the name server cannot be reached).
    """
    stop = threading.Event()
    with Pyro5.api.Daemon(host=host, port=port) as daemon:
        uri = daemon.register(obj, name)
        try:
            register(ns_host, ns_port, name, uri, meta)
        except Pyro5.errors.PyroError as e:
            logger.error("cannot register with the name server at %s: %s",
                         ns_address(ns_host, ns_port), e)
            return 1
        threading.Thread(target=keep_registered, daemon=True,
                         args=(ns_host, ns_port, name, uri, stop, meta)).start()
        logger.info("%s ready at %s", name, uri)
        try:
            daemon.requestLoop()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            unregister(ns_host, ns_port, name)
            logger.info("%s stopped", name)
    return 0


class _Job:
    def __init__(self):
        self.done = threading.Event()
        self.result: Any = None
        self.error: str | None = None


class PolledJobs:
    """Jobs run in threads, their results fetched by polling (:meth:`wait`).

    The remote method that starts a long piece of work returns a job id at once; the caller
    polls :meth:`wait` with a short timeout, so every remote call stays short and a caller
    tells a slow peer (it answers polls) from a dead one (it does not).
    """

    def __init__(self, what: str = "job"):
        self.what = what
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def start(self, fn: Callable[[], Any], job: str | None = None, name: str = "job") -> str:
        """Run ``fn()`` in a daemon thread; returns the job id (``job`` or a fresh one)."""
        job = job or uuid.uuid4().hex
        j = _Job()
        with self._lock:
            self._jobs[job] = j

        def run():
            try:
                j.result = fn()
            except Exception as e:  # reported to the caller through wait()
                logger.exception("%s %s failed", self.what, job[:8])
                j.error = f"{type(e).__name__}: {e}"
            finally:
                j.done.set()

        threading.Thread(target=run, daemon=True, name=f"{name}-{job[:8]}").start()
        return job

    def wait(self, job: str, timeout: float = 1.0, prefix: str = ""):
        """The job's result once it is done, waiting at most ``timeout`` s (<= 30); None while
        it runs. Raises RuntimeError for an unknown job or with the job's error."""
        with self._lock:
            j = self._jobs.get(job)
        if j is None:
            raise RuntimeError(f"{prefix}no {self.what} {job}")
        if not j.done.wait(min(float(timeout), 30.0)):
            return None
        with self._lock:
            self._jobs.pop(job, None)
        if j.error is not None:
            raise RuntimeError(f"{prefix}{j.error}")
        return j.result

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()


def poll(start: Callable[[], str], result: Callable[[str, float], Any], every: float = 1.0):
    """Caller side of :class:`PolledJobs`: start a job and poll until its result comes."""
    job = start()
    while True:
        r = result(job, every)
        if r is not None:
            return r


def new_id() -> str:
    """A fresh, unguessable id for a session or a job."""
    return uuid.uuid4().hex
