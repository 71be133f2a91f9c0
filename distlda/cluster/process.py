"""What the worker and dispatcher processes share: command-line options, logging, serving."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from distlda import config
from distlda.cluster import tls, transport
from distlda.errors import DistldaError

logger = logging.getLogger("distlda.process")


class AddressError(DistldaError, RuntimeError):
    """The address to serve on cannot work (other hosts could not reach it)."""


def add_common_args(p: argparse.ArgumentParser) -> None:
    """The name-server, address and logging options of both cluster processes."""
    p.add_argument("--ns-host", default=None,
                   help="name server address (default: $PYRO_NS_HOST, else localhost, else "
                        "found by broadcast; retried until one answers)")
    p.add_argument("--ns-port", type=int, default=None,
                   help="name server port (default: $PYRO_NS_PORT, else 9090)")
    p.add_argument("--host", default=None,
                   help="address to bind and advertise (default: $PYRO_HOST, else the address "
                        "of the interface that routes to the name server)")
    p.add_argument("--port", type=int, default=0, help="port to bind (default: any free port)")
    p.add_argument("--max-memory", type=_gib, default=None, metavar="GIB",
                   help="most memory a training session may need here, in GiB: a larger one is "
                        "refused before anything is allocated (default: 80%% of this machine's "
                        "memory)")
    p.add_argument("--tls", default=config.tls_folder(), metavar="DIR",
                   help="mutual TLS with the certificates of 'python -m distlda certs DIR' "
                        "(default: $DISTLDA_TLS; without either, plain connections)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more logging (-v info is the default, -vv debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")


def _gib(text: str) -> int:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of GiB, got {text!r}")
    return int(v * 2**30)


def default_max_memory() -> int:
    """80% of this machine's physical memory, in bytes."""
    from distlda.gibbs.state import memory_bytes
    return int(0.8 * memory_bytes())


def setup(args) -> None:
    """Logging to stderr at the level of ``-q``/``-v``, msgpack everywhere, SIGTERM exits."""
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose >= 2 else logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s")
    transport.configure()
    signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum, frame):
    raise SystemExit(0)


def connect(args, what: str) -> None:
    """Find the name server (retrying until one answers) and choose the address to serve on;
    sets ``args.ns_host``, ``args.ns_port`` (where it was found) and ``args.host``.

    The address is ``--host``, else ``$PYRO_HOST``, else the local address of the interface
    that routes to the name server (127.0.0.1 when it is on this machine's loopback).

    Raises
    ------
    AddressError
        A loopback address while the name server is on another host: other hosts could not
        reach it.
    distlda.cluster.tls.TLSError
        With ``--tls``: an unusable TLS folder, or no certificate in it for the address.
    """
    folder = None
    if getattr(args, "tls", None):
        folder = tls.TLSFolder(args.tls)  # a host certificate to find the name server with
        transport.use_tls(str(folder.ca_file), *folder.any_host())
        known = args.host or config.pyro_host()
        if known:  # fail before waiting for the name server
            folder.for_address(known)
    ns_host, ns_port = transport.find_ns(args.ns_host, args.ns_port, what)
    if args.host:
        host, source = args.host, "--host"
    elif config.pyro_host():
        host, source = str(config.pyro_host()), "$PYRO_HOST"
    else:
        host, source = transport.route_address(ns_host), "the route to the name server"
    if transport.is_loopback(host) and not transport.is_loopback(ns_host):
        raise AddressError(
            f"{what} would serve on {host}, which other hosts cannot reach, while the name "
            f"server is at {ns_host}: pass --host <this machine's LAN address> or set PYRO_HOST")
    logger.info("%s: name server at %s:%d; serving on %s (from %s)", what, ns_host, ns_port,
                host, source)
    if folder is not None:
        cert, key = folder.for_address(host)
        transport.use_tls(str(folder.ca_file), cert, key)
        logger.info("%s: TLS with certificate %s", what, cert)
    if not getattr(args, "tls", None) and not transport.is_loopback(host):
        warn_plain(what, host)
    args.ns_host, args.ns_port, args.host = ns_host, ns_port, host


def warn_plain(what: str, host: str) -> None:
    """Say once that a plain (non-TLS) process listens where other machines can reach it."""
    logger.warning("%s listens on %s in plain mode: every process that can reach it may "
                   "register as a worker or call it (no data or training is exposed, but "
                   "workers are trusted). To require certificates: python -m distlda certs DIR "
                   "--hosts <every host>, then start every process with --tls DIR (see "
                   "docs/security.rst)", what, host)


def serve(obj, name: str, args, meta: str, genuine=None) -> int:
    """Serve ``obj`` as ``name`` with the options of :func:`add_common_args` (after
    :func:`connect`); returns the exit status. ``genuine(uri)``: whether another holder of
    the name is a real peer (see :func:`distlda.cluster.transport.keep_registered`)."""
    return transport.serve_forever(obj, name, args.host, args.port, args.ns_host, args.ns_port,
                                   meta, genuine)


def run(what: str, start) -> int:
    """``start()`` with the errors a user can fix printed as one line (exit status 2)."""
    try:
        return start()
    except (AddressError, tls.TLSError) as e:
        logger.error("%s", e)
        return 2
    except KeyboardInterrupt:
        return 0
