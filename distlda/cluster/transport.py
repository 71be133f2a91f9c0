"""The cluster's transport: the only module that talks to Pyro5.

Name-server lookup and registration, serving an object, proxies with timeouts, and the
polled-job helper both processes use (a long call returns a job id at once and the caller
polls for the result, so a long sweep is never mistaken for a dead peer). Everything above
this module (planning, the ledger of committed counts, a worker's session) sees only plain
Python values and the messages of :mod:`distlda.cluster.messages`, so another transport
could drive the same state classes.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
import uuid
from typing import Any, Callable

import Pyro5.api
import Pyro5.core
import Pyro5.errors
from Pyro5 import config as _config

from distlda import config, errors

logger = logging.getLogger("distlda.transport")

SERIALIZER = "msgpack"

#: Re-exported so that callers can classify failures without importing Pyro5.
PyroError = Pyro5.errors.PyroError
CommunicationError = Pyro5.errors.CommunicationError
NamingError = Pyro5.errors.NamingError
expose = Pyro5.api.expose


#: Seconds a server keeps a connection that sends nothing: then it closes it, so idle
#: sockets cannot hold a server's threads. Our own proxies reconnect before that
#: (:data:`RECONNECT_AFTER`).
IDLE_TIMEOUT = config.idle_timeout()  # $DISTLDA_IDLE_TIMEOUT: tests set it short
RECONNECT_AFTER = IDLE_TIMEOUT * 2 / 3
#: Threads of a thread-pool server (Pyro5's default of 80 is filled by 80 idle sockets),
#: and the most connections one remote (non-loopback) address may hold at once.
THREADPOOL_SIZE = 512
MAX_PER_PEER = 32


def configure() -> None:
    """Make msgpack the serializer of every proxy this process creates (name server
    included), whatever ``PYRO_SERIALIZER`` says: Pyro5 refuses to make any proxy when that
    names a serializer it lacks (``pickle``), and distlda's servers accept msgpack only."""
    _config.SERIALIZER = SERIALIZER


configure()  # on import: even a client's first name-server lookup must speak msgpack


def _builtin_parent(cls: type) -> type:
    """The first builtin class among ``cls`` and its bases (ValueError for ProtocolError)."""
    return next(c for c in cls.__mro__ if c.__module__ == "builtins")


def _plain(exc: BaseException) -> BaseException:
    """What a server sends for ``exc``: our own classes as their builtin parent with the class
    named in the message, so that an outsider's plain Pyro5 client reads why (it could not
    rebuild our classes: 'unsupported serialized class'). A class of :data:`errors.REMOTE`
    also carries its name and message as attributes, from which a distlda peer rebuilds it
    (:func:`_typed`)."""
    if not isinstance(exc, (errors.DistldaError, ValueError, RuntimeError)):
        return exc  # Pyro5's own errors: every Pyro5 client rebuilds them
    base = _builtin_parent(type(exc))
    if type(exc) is base:
        return exc
    out = base(f"{type(exc).__name__}: {exc}")
    if errors.REMOTE.get(type(exc).__name__) is type(exc):
        out.distlda_error = type(exc).__name__
        out.distlda_message = str(exc)
    return out


def _typed(classname: str, data: dict) -> BaseException:
    """A builtin exception from a peer, as the distlda class it stands for (:func:`_plain`)
    when it names one of :data:`errors.REMOTE` (by name: nothing else is ever built)."""
    from Pyro5.serializers import SerializerBase
    base = _WIRE_BASES[classname]
    attrs = data.get("attributes")
    attrs = attrs if isinstance(attrs, dict) else {}
    name = attrs.get("distlda_error")
    cls = errors.REMOTE.get(name) if isinstance(name, str) else None
    message = attrs.get("distlda_message")
    if cls is None or not issubclass(cls, base) or not isinstance(message, str):
        return SerializerBase.make_exception(base, data)
    ex = cls(message)
    ex._pyroTraceback = attrs.get("_pyroTraceback")  # type: ignore[attr-defined]
    return ex


#: The builtin parents of the classes that cross typed, by their name on the wire.
_WIRE_BASES = {f"builtins.{b.__name__}": b
               for b in {_builtin_parent(cls) for cls in errors.REMOTE.values()}}


def _remote_errors() -> None:
    from Pyro5.serializers import SerializerBase
    for name in _WIRE_BASES:
        SerializerBase.register_dict_to_class(name, _typed)


_remote_errors()


def is_remote(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by the peer of a remote call (it carries Pyro5's remote
    traceback), not here."""
    return hasattr(exc, "_pyroTraceback")


class _Proxy(Pyro5.api.Proxy):
    """A proxy that opens a new connection when its last call is older than
    :data:`RECONNECT_AFTER`, so that a server's idle timeout never fails a call of ours."""

    _last_call = 0.0

    def _pyroInvoke(self, methodname, vargs, kwargs, flags=0, objectId=None):
        now = time.monotonic()
        if self._pyroConnection is not None and now - self._last_call > RECONNECT_AFTER:
            self._pyroRelease()
        object.__setattr__(self, "_last_call", now)  # Pyro5's __setattr__ would go remote
        try:
            return super()._pyroInvoke(methodname, vargs, kwargs, flags, objectId)
        finally:
            object.__setattr__(self, "_last_call", time.monotonic())


_tls_files: list = [None]


def use_tls(ca: str | None, cert: str | None = None, key: str | None = None) -> None:
    """Mutual TLS (Pyro5's ``SSL`` settings) for every connection this process makes or serves
    from now on: ``cert``/``key`` are presented both as server and as client certificate, and
    peers must present one signed by ``ca``. ``ca`` None: plain connections.

    Pyro5 caches one server and one client SSL context per process; they are made again when
    the files change, and set to TLS 1.2 at least (:func:`distlda.cluster.tls.harden`).
    """
    from Pyro5 import socketutil

    from distlda.cluster import tls
    if (ca, cert, key) != _tls_files[0]:
        setattr(socketutil, "__ssl_server_context", None)
        setattr(socketutil, "__ssl_client_context", None)
        _tls_files[0] = (ca, cert, key)
    _config.SSL = ca is not None
    if ca is None:
        return
    _config.SSL_CACERTS, _config.SSL_REQUIRECLIENTCERT = ca, True
    _config.SSL_SERVERCERT = _config.SSL_CLIENTCERT = cert or ""
    _config.SSL_SERVERKEY = _config.SSL_CLIENTKEY = key or ""
    _config.SSL_SERVERKEYPASSWD = _config.SSL_CLIENTKEYPASSWD = ""
    # A TLS message goes out as many records (one write each): without TCP_NODELAY, Nagle
    # holds the last one back until the previous ones are acknowledged.
    _config.SOCK_NODELAY = True
    if cert:
        tls.harden(socketutil.get_ssl_context(servercert=cert, serverkey=key or "", cacerts=ca),
                   server=True)
    tls.harden(socketutil.get_ssl_context(clientcert=cert or "", clientkey=key or "",
                                          cacerts=ca), server=False)


def proxy(uri, timeout: float | None) -> Pyro5.api.Proxy:
    """A msgpack proxy with a communication timeout (None: wait forever)."""
    p = _Proxy(uri)
    p._pyroSerializer = SERIALIZER
    p._pyroTimeout = timeout
    return p


class _Refusing:
    """Stands in for a serializer other than msgpack in a distlda server: it can send an
    error back, but reads nothing (marshal, serpent and json are not for untrusted input)."""

    def __init__(self, inner):
        self._inner = inner
        self.serializer_id = inner.serializer_id

    def __getattr__(self, name):
        if name.startswith("loads"):
            raise Pyro5.errors.SerializeError(
                "a distlda server accepts msgpack only (set the proxy's serializer to msgpack)")
        return getattr(self._inner, name)


def _server_limits() -> None:
    """What every distlda server of this process runs with: msgpack only, a thread pool of
    :data:`THREADPOOL_SIZE`, connections closed after :data:`IDLE_TIMEOUT` of silence."""
    _msgpack_only()
    _config.SERVERTYPE = "thread"
    _config.THREADPOOL_SIZE = max(_config.THREADPOOL_SIZE, THREADPOOL_SIZE)
    _config.COMMTIMEOUT = IDLE_TIMEOUT  # read when a connection is accepted


def _msgpack_only() -> None:
    """Let this process's servers read msgpack messages only."""
    import Pyro5.serializers as ser
    for sid, s in list(ser.serializers_by_id.items()):
        if s.serializer_id != ser.serializers[SERIALIZER].serializer_id and not isinstance(
                s, _Refusing):
            ser.serializers_by_id[sid] = _Refusing(s)


class _Daemon(Pyro5.api.Daemon):
    """Pyro5's daemon with distlda's limits: msgpack only, idle connections closed after
    :data:`IDLE_TIMEOUT`, at most :data:`MAX_PER_PEER` connections per remote address.

    Loopback peers are not counted per address (every local process shares 127.0.0.1, so a
    cap would lock the real client out along with a local intruder); the thread pool of
    :data:`THREADPOOL_SIZE` and the idle timeout bound them.
    """

    def __init__(self, host=None, port=0):
        _server_limits()
        self._peers: dict[str, int] = {}
        self._peer_lock = threading.Lock()
        super().__init__(host=host, port=port)

    @staticmethod
    def _peer(conn) -> str | None:
        try:
            addr = conn.sock.getpeername()[0]
        except (OSError, AttributeError, IndexError):
            return None
        return None if ipaddress.ip_address(addr).is_loopback else addr

    def validateHandshake(self, conn, data):
        peer = self._peer(conn)
        if peer is not None:
            with self._peer_lock:
                n = self._peers.get(peer, 0)
                if n >= MAX_PER_PEER:
                    logger.warning("refused a connection from %s: it holds %d already",
                                   peer, n)
                    raise Pyro5.errors.SecurityError(
                        f"too many connections from {peer} (at most {MAX_PER_PEER})")
                self._peers[peer] = n + 1
            conn.distlda_peer = peer
        return super().validateHandshake(conn, data)

    def _sendExceptionResponse(self, connection, seq, serializer_id, exc_value, tbinfo,
                               flags=0, annotations=None):
        exc_value = _plain(exc_value)
        super()._sendExceptionResponse(connection, seq, serializer_id, exc_value, tbinfo, flags,
                                       annotations)

    def clientDisconnect(self, conn):
        peer = getattr(conn, "distlda_peer", None)
        if peer is not None:
            with self._peer_lock:
                left = self._peers.get(peer, 1) - 1
                if left > 0:
                    self._peers[peer] = left
                else:
                    self._peers.pop(peer, None)


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

    With ``broadcast`` and neither a host nor ``$PYRO_NS_HOST``, a name server on localhost is
    tried first, then one answering a broadcast (:func:`broadcast_ns`).
    """
    if host is None and broadcast and not config.ns_host():
        try:
            return ns_proxy("localhost", port or _config.NS_PORT, min(timeout, 1.0))
        except Pyro5.errors.PyroError:
            pass
        uri = broadcast_ns(port=None)
        if uri is None:
            raise Pyro5.errors.NamingError(
                f"no name server answered a broadcast to {', '.join(_broadcast_addrs())} "
                f"(port {_config.NS_BCPORT})")
        found = Pyro5.core.URI(uri)
        return ns_proxy(found.host, found.port, timeout)
    return ns_proxy(host or _config.NS_HOST, port or _config.NS_PORT, timeout)


def ns_address(host=None, port=None) -> str:
    return f"{host or _config.NS_HOST}:{port or _config.NS_PORT}"


def _broadcast_addrs() -> list[str]:
    addrs = config.broadcast_addrs() or _config.BROADCAST_ADDRS
    if isinstance(addrs, str):
        addrs = [a.strip() for a in addrs.split(",") if a.strip()]
    return list(addrs)


def broadcast_ns(port=None, wait: float = 0.7, rounds: int = 1) -> str | None:
    """The URI of a name server that answers Pyro5's ``GET_NSURI`` broadcast, or None.

    Sends to every address of ``PYRO_BROADCAST_ADDRS`` (Pyro5's ``BROADCAST_ADDRS``; default
    the local network's broadcast address) on the name servers' broadcast port, ``rounds``
    times, waiting ``wait`` seconds for an answer each time.
    """
    port = port or _config.NS_BCPORT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.settimeout(wait)
        for _ in range(rounds):
            for addr in _broadcast_addrs():
                target = "255.255.255.255" if addr == "<broadcast>" else addr
                try:
                    sock.sendto(b"GET_NSURI", (target, port))
                except OSError:
                    continue  # an address this host cannot send to
            try:
                data, _ = sock.recvfrom(200)
                return data.decode("iso-8859-1")
            except (socket.timeout, OSError):
                continue
    return None


def ns_location(p: Pyro5.api.Proxy) -> tuple[str, int]:
    """(host, port) of the name server behind a proxy."""
    return p._pyroUri.host, p._pyroUri.port


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def route_address(host: str, port: int = 9) -> str:
    """The local address of the interface that routes to ``host`` (no packet is sent: a UDP
    socket is only connected)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((socket.gethostbyname(host), port))
        return s.getsockname()[0]


def interface_addresses() -> list[tuple[str, str]]:
    """(interface, IPv4 address) of every interface that is up (Linux; [] elsewhere)."""
    try:
        import fcntl
        import struct
    except ImportError:  # not on a Unix
        return []
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            req = struct.pack("256s", name[:15].encode())
            try:
                flags = struct.unpack("H", fcntl.ioctl(s.fileno(), 0x8913, req)[16:18])[0]
                if not flags & 1:  # IFF_UP
                    continue
                addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])
            except OSError:  # no IPv4 address
                continue
            out.append((name, addr))
    return out


def lan_address() -> str | None:
    """This machine's first non-loopback IPv4 address on an interface that is up, or None."""
    for _, addr in interface_addresses():
        if not ipaddress.ip_address(addr).is_loopback:
            return addr
    return None


def find_ns(host=None, port=None, what: str = "process", stop: threading.Event | None = None,
            max_wait: float | None = None):
    """:func:`locate_ns` (``--ns-host``, else ``$PYRO_NS_HOST``, else broadcast), retried with
    backoff until a name server answers, so that start order never matters. Logs each retry.
    Returns ``(host, port)`` of the name server; raises NamingError after ``max_wait`` s."""
    delay, t0 = 0.5, time.monotonic()
    while True:
        try:
            with locate_ns(host, port, timeout=3.0, broadcast=True) as ns:
                ns.ping()
                return ns_location(ns)
        except Pyro5.errors.PyroError as e:
            if max_wait is not None and time.monotonic() - t0 > max_wait:
                raise Pyro5.errors.NamingError(f"no name server found: {e}") from None
            logger.warning("%s: no name server yet (%s); retrying in %.0f s", what, e, delay)
        if stop is not None and stop.wait(delay):
            raise Pyro5.errors.NamingError("stopped while looking for the name server")
        if stop is None:
            time.sleep(delay)
        delay = min(delay * 2, 10.0)


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
    with locate_ns(ns_host, ns_port, timeout=10.0) as ns:
        ns.register(name, uri, safe=False, metadata={meta})


def keep_registered(ns_host, ns_port, name, uri, stop: threading.Event, meta, every: float = 2.0,
                    genuine: Callable[[Any], bool] | None = None, on_yield=None):
    """Keep ``name`` pointing at ``uri``: register again when the name is gone (name server
    restarted, or we were declared dead) or points elsewhere.

    When it points elsewhere and ``genuine(other_uri)`` says the other holder is a real peer
    of ours (a dispatcher started while this one was frozen), this process yields instead:
    ``on_yield()`` is called and the loop ends. Any other holder (a stale or an impostor's
    entry) loses the name, with a warning.
    """
    while not stop.wait(every):
        try:
            with locate_ns(ns_host, ns_port, timeout=5.0, broadcast=False) as ns:
                try:
                    current = ns.lookup(name)
                except Pyro5.errors.NamingError:
                    current = None
                if current is not None and str(current) != str(uri):
                    if genuine is not None and genuine(current):
                        logger.warning("%s is now served by %s; this one (%s) stops", name,
                                       current, uri)
                        if on_yield is not None:
                            on_yield()
                        return
                    logger.warning("the name %s pointed to %s, which is not this process and "
                                   "does not answer as one of ours; taking it back", name,
                                   current)
                if current is None or str(current) != str(uri):
                    ns.register(name, uri, safe=False, metadata={meta})
                    if current is None:
                        logger.info("registered again as %s", name)
        except Exception as e:  # name server away: try again later
            logger.debug("name server check failed: %s", e)


def serve_forever(obj, name: str, host, port, ns_host, ns_port, meta: str,
                  genuine: Callable[[Any], bool] | None = None) -> int:
    """Serve ``obj`` as ``name`` until SIGTERM or Ctrl-C: register it with the name server,
    keep the registration alive (see :func:`keep_registered` for ``genuine``), then remove it.

    Returns the process exit status (1 when another genuine server took the name over).
    """
    stop = threading.Event()
    yielded = threading.Event()
    with _Daemon(host=host, port=port) as daemon:
        uri = daemon.register(obj, name)
        try:
            register(ns_host, ns_port, name, uri, meta)
        except Pyro5.errors.PyroError as e:  # gone since it was found: keep_registered retries
            logger.warning("cannot register with the name server at %s yet: %s",
                           ns_address(ns_host, ns_port), e)

        def give_up():
            yielded.set()
            daemon.shutdown()

        threading.Thread(target=keep_registered, daemon=True,
                         args=(ns_host, ns_port, name, uri, stop, meta),
                         kwargs=dict(genuine=genuine, on_yield=give_up)).start()
        logger.info("%s ready at %s", name, uri)
        try:
            daemon.requestLoop()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            if not yielded.is_set():
                unregister(ns_host, ns_port, name)
            logger.info("%s stopped", name)
    return 1 if yielded.is_set() else 0


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
        it runs. Raises RuntimeError for an unknown job, :class:`~distlda.errors.RemoteJobError`
        naming the job's error."""
        with self._lock:
            j = self._jobs.get(job)
        if j is None:
            raise RuntimeError(f"{prefix}no {self.what} {job}")
        if not j.done.wait(min(float(timeout), 30.0)):
            return None
        with self._lock:
            self._jobs.pop(job, None)
        if j.error is not None:
            raise errors.RemoteJobError(f"{prefix}{j.error}")
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


def run_name_server(host: str, port: int, bcport: int) -> None:
    """Pyro5's name server with its broadcast responder, served until interrupted, with
    distlda's limits: msgpack only, a thread pool of :data:`THREADPOOL_SIZE` and idle
    connections closed after :data:`IDLE_TIMEOUT` (Pyro5's stock name server is locked by 80
    idle sockets). Not the multiplex server: one slow sender would stall it for everyone."""
    import Pyro5.nameserver
    configure()
    _server_limits()
    Pyro5.nameserver.start_ns_loop(host, port, enableBroadcast=True, bcport=bcport)


def new_id() -> str:
    """A fresh, unguessable id for a session or a job."""
    return uuid.uuid4().hex

