"""``python -m distlda nameserver``: Pyro5's name server with distlda's defaults.

It binds to ``--host``, else ``$PYRO_HOST``, else this machine's LAN address (never only
loopback when there is a network, so that other machines can join), answers broadcasts
(Pyro5's ``GET_NSURI`` on port 9091) so that workers and dispatchers started with no address
find it, logs the one line the other machines need, and removes the registrations of workers
and dispatchers that stop answering: every ``--check-every`` seconds each one is pinged, and
one that has not answered for ``--grace`` seconds is unregistered (a frozen or unreachable
process; one that comes back registers again). Unlike Pyro5's stock name server it cannot be
locked by idle sockets (a pool of 512 threads, connections closed after 30 s of silence) and
reads msgpack only. Plain ``python -m Pyro5.nameserver -n ADDR`` works too, without those
limits.

With ``--tls DIR`` every connection is mutual TLS (:mod:`distlda.cluster.tls`): the name server
presents the certificate of ``DIR/hosts`` valid for the address it binds to, and refuses any
peer without a certificate of the same CA. The broadcast responder stays plain UDP: it only
tells the name server's URI, and a client reached by a forged answer still checks the TLS
certificate of the server it connects to.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import logging
import threading
import time

from distlda import config
from distlda.cluster import names, process, tls, transport

logger = logging.getLogger("distlda.nameserver")

#: Registrations the name server checks (the cluster's own; others are left alone).
CHECKED_PREFIXES = names.CHECKED


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None,
                   help="address to bind (default: $PYRO_HOST, else this machine's LAN "
                        "address, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=9090, help="port to bind")
    p.add_argument("--bc-port", type=int, default=9091,
                   help="UDP port of the broadcast responder")
    p.add_argument("--grace", type=float, default=20.0,
                   help="seconds a registered worker or dispatcher may go unanswered before "
                        "its registration is removed")
    p.add_argument("--tls", default=config.tls_folder(), metavar="DIR",
                   help="mutual TLS with the certificates of 'python -m distlda certs DIR' "
                        "(default: $DISTLDA_TLS; without either, plain connections)")
    p.add_argument("--check-every", type=float, default=5.0,
                   help="seconds between two checks of the registrations")


def choose_host(host: str | None) -> tuple[str, str]:
    """(address to bind, where the choice came from)."""
    if host:
        return host, "--host"
    if config.pyro_host():
        return str(config.pyro_host()), "$PYRO_HOST"
    lan = transport.lan_address()
    if lan:
        return lan, "this machine's LAN address"
    return "127.0.0.1", "no network interface but loopback"


class Reaper:
    """Unregisters the cluster's registrations that stop answering (see the module docstring)."""

    def __init__(self, host: str, port: int, grace: float, every: float):
        self.host, self.port, self.grace, self.every = host, port, grace, every
        self.stop = threading.Event()
        self._silent: dict[str, float] = {}  # name -> when it first failed to answer
        self._pool = cf.ThreadPoolExecutor(8, thread_name_prefix="ns-check")

    def run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.check()
            except Exception as e:  # the name server is stopping, or busy: next round
                logger.debug("registration check failed: %s", e)

    def check(self) -> None:
        names: dict = {}
        for prefix in CHECKED_PREFIXES:
            names.update(transport.list_names(self.host, self.port, prefix))
        answers = {n: self._pool.submit(self._answers, uri) for n, uri in names.items()}
        now = time.monotonic()
        for name, f in answers.items():
            if f.result():
                self._silent.pop(name, None)
                continue
            first = self._silent.setdefault(name, now)
            if now - first >= self.grace:
                logger.warning("removing %s: no answer for %.0f s", name, now - first)
                transport.unregister(self.host, self.port, name)
                self._silent.pop(name, None)
        for name in set(self._silent) - set(names):
            del self._silent[name]

    @staticmethod
    def _answers(uri) -> bool:
        try:
            transport.call(uri, "ping", timeout=2.0)
            return True
        except Exception:
            return False


def run(args) -> int:
    """Serve until interrupted; returns the exit status."""
    host, source = choose_host(args.host)
    if getattr(args, "tls", None):
        folder = tls.TLSFolder(args.tls)
        cert, key = folder.for_address(host)
        transport.use_tls(str(folder.ca_file), cert, key)
        logger.info("TLS: the name server presents %s and requires certificates of %s", cert,
                    folder.ca_file)
    if transport.is_loopback(host):
        how = ("with no options" if args.port == 9090 and args.bc_port == 9091 else
               f"with --ns-port {args.port} (or PYRO_NS_PORT={args.port})")
        logger.info("the name server binds to %s (%s): only this machine can join (pass "
                    "--host <LAN address> for a multi-machine cluster); workers and the "
                    "dispatcher here find it %s", host, source, how)
    else:
        logger.info("the name server binds to %s (%s)", host, source)
        if not getattr(args, "tls", None):
            process.warn_plain("the name server", host)
        logger.info("on every machine: python -m distlda.models.lda_worker%s  (found by "
                    "broadcast; or add --ns-host %s --ns-port %d); firewall: TCP %d and UDP "
                    "%d, and the workers' ports", f" --tls {args.tls}" if args.tls else "",
                    host, args.port, args.port, args.bc_port)
    reaper = Reaper(host, args.port, args.grace, args.check_every)
    threading.Thread(target=reaper.run, daemon=True, name="ns-reaper").start()
    try:
        transport.run_name_server(host, args.port, args.bc_port)
    except KeyboardInterrupt:
        pass
    finally:
        reaper.stop.set()
    return 0
