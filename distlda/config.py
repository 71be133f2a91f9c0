"""Every environment variable distlda reads, with its default, in one module.

Nothing else in the package reads ``os.environ`` (a test keeps it so), so this page is the
whole list of knobs outside the call signatures and command-line options. Each knob is read
when its function is called, not at import, unless the module using it says otherwise (the
cluster's piece size and idle timeout are fixed when :mod:`distlda.cluster.codec` and
:mod:`distlda.cluster.transport` are imported: a process sets them before it starts).

========================  ==================  ==============================================
variable                  default             what it sets
========================  ==================  ==============================================
``DISTLDA_TLS``           (plain)             folder of ``python -m distlda certs``: mutual
                                              TLS for the client and every cluster process
``DISTLDA_CHECK``         off                 ``1``: check mode (count fallback draws, verify
                                              every worker's model slice)
``DISTLDA_IDLE_TIMEOUT``  30                  seconds of silence before a server closes a
                                              connection
``DISTLDA_PIECE_BYTES``   33554432 (32 MiB)   arrays above this size cross the cluster in
                                              pieces of it
``DISTLDA_TEST_HOLD``     (none)              tests only: ``PHASE:DIR`` makes a worker wait
                                              at PHASE while ``DIR/hold`` exists
``PYRO_HOST``             (LAN address)       Pyro5's: the address a server binds
``PYRO_NS_HOST``          (broadcast)         Pyro5's: the name server's host (no broadcast)
``PYRO_BROADCAST_ADDRS``  Pyro5's default     Pyro5's: where to broadcast for a name server
========================  ==================  ==============================================

Pyro5 reads its other ``PYRO_*`` settings itself (``PYRO_NS_PORT`` among them).
"""

from __future__ import annotations

import os

#: Defaults of the knobs that have one.
IDLE_TIMEOUT_DEFAULT = 30.0
PIECE_BYTES_DEFAULT = 32 << 20


def _text(name: str) -> str | None:
    """The variable's value, None when unset or empty."""
    return os.environ.get(name) or None


def _number(name: str, default: float, kind: type, minimum: float):
    raw = _text(name)
    if raw is None:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value >= minimum:
        raise ValueError(f"${name}={raw!r} is not a valid setting: use "
                         f"{'an integer' if kind is int else 'a number'} >= {kind(minimum)}, "
                         f"or unset it for the default {kind(default)}")
    return value


def tls_folder() -> str | None:
    """``$DISTLDA_TLS``: the certificate folder every distlda process uses by default."""
    return _text("DISTLDA_TLS")


def check_mode() -> bool:
    """``$DISTLDA_CHECK``: executors count fallback draws and workers verify their slices."""
    return os.environ.get("DISTLDA_CHECK", "") not in ("", "0")


def idle_timeout() -> float:
    """``$DISTLDA_IDLE_TIMEOUT``: seconds before a server closes a silent connection (> 0).

    Raises
    ------
    ValueError
        For a value that is not a positive number (naming the variable).
    """
    return _number("DISTLDA_IDLE_TIMEOUT", IDLE_TIMEOUT_DEFAULT, float, 0.001)


def piece_bytes() -> int:
    """``$DISTLDA_PIECE_BYTES``: the largest array part one cluster call carries (>= 1).

    Raises
    ------
    ValueError
        For a value that is not a positive integer (naming the variable).
    """
    return _number("DISTLDA_PIECE_BYTES", PIECE_BYTES_DEFAULT, int, 1)


def test_hold() -> str | None:
    """``$DISTLDA_TEST_HOLD`` (tests only): ``PHASE:DIR``."""
    return _text("DISTLDA_TEST_HOLD")


def pyro_host() -> str | None:
    """``$PYRO_HOST``: the address Pyro5 servers bind."""
    return _text("PYRO_HOST")


def ns_host() -> str | None:
    """``$PYRO_NS_HOST``: the name server's host; when set, nobody broadcasts for one."""
    return _text("PYRO_NS_HOST")


def broadcast_addrs() -> str | None:
    """``$PYRO_BROADCAST_ADDRS``: comma-separated addresses to broadcast to (None: Pyro5's)."""
    return _text("PYRO_BROADCAST_ADDRS")
