"""What the worker and dispatcher processes share: command-line options, logging, serving."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from distlda.cluster import transport


def add_common_args(p: argparse.ArgumentParser) -> None:
    """The name-server, address and logging options of both cluster processes."""
    p.add_argument("--ns-host", default=None,
                   help="name server host (default: $PYRO_NS_HOST, else localhost, then broadcast)")
    p.add_argument("--ns-port", type=int, default=None,
                   help="name server port (default: $PYRO_NS_PORT, else 9090)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind and advertise; use this machine's LAN address on a "
                        "multi-machine cluster (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind (default: any free port)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more logging (-v info is the default, -vv debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")


def setup(args) -> None:
    """Logging to stderr at the level of ``-q``/``-v``, msgpack everywhere, SIGTERM exits."""
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose >= 2 else logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s")
    transport.configure()
    signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum, frame):
    raise SystemExit(0)


def serve(obj, name: str, args, meta: str) -> int:
    """Serve ``obj`` as ``name`` with the options of :func:`add_common_args`; exit status."""
    return transport.serve_forever(obj, name, args.host, args.port, args.ns_host, args.ns_port,
                                   meta)
