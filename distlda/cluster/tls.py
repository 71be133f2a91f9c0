"""Mutual TLS for the cluster: the CA and certificates of ``python -m distlda certs``, the
choice of the certificate a process presents, and the server side of the handshake.

A TLS folder (``certs DIR``) holds::

    DIR/ca.pem                 the cluster's CA certificate (every machine, every user)
    DIR/ca-key.pem             the CA's key (0600): only to add hosts later, keep it offline
    DIR/hosts/HOST.pem         a host's certificate, SAN = HOST, serverAuth + clientAuth
    DIR/hosts/HOST-key.pem     its key (0600): only on that machine
    DIR/client.pem             the certificate of LdaModel users (clientAuth)
    DIR/client-key.pem         its key (0600)

Keys are EC P-256, signed with SHA-256 by the ``cryptography`` library. A process serving on
address A presents the host certificate whose SAN is A (clients check the server's name, so
no other certificate would do); ``localhost``/127.0.0.1/::1 share one loopback certificate,
valid for all three, made only when one of them is asked for (a certificate valid for
loopback is only usable by a process already on that machine).

A server checks the handshake itself, in the connection's thread on its first read
(:class:`ServerSocket`), with a time limit; a refused peer is logged as one line with its
address and the connection closed, and the server keeps serving.
"""

from __future__ import annotations

import datetime as _dt
import errno
import ipaddress
import logging
import os
import re
import socket
import ssl
import tempfile
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from distlda.errors import TLSError

logger = logging.getLogger("distlda.tls")

CA_CERT, CA_KEY, HOSTS = "ca.pem", "ca-key.pem", "hosts"
CLIENT_CERT, CLIENT_KEY = "client.pem", "client-key.pem"
CA_DAYS = 3650
#: A certificate that expires within this many days is issued again by ``certs``.
RENEW_DAYS = 30
#: Seconds a peer has to complete its TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
LOOPBACK = ("localhost", "127.0.0.1", "::1")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


# ---------------------------------------------------------------------- host names
def check_host(host: str) -> str:
    """``host`` normalised (an IP address, or a lower-case DNS name); TLSError if invalid."""
    h = host.strip().lower()
    try:
        return str(ipaddress.ip_address(h.strip("[]")))
    except ValueError:
        pass
    if (not h or len(h) > 253 or not all(_LABEL.match(p) for p in h.rstrip(".").split("."))
            or h.replace(".", "").isdigit()):
        raise TLSError(f"invalid host name {host!r}: give an IP address or a DNS name "
                       f"(letters, digits, '-' and '.')")
    return h.rstrip(".")


def parse_hosts(text: str) -> list[str]:
    """``HOST1,HOST2,...`` as normalised, distinct names (loopback names become one)."""
    hosts = []
    for part in (text or "").split(","):
        if part.strip():
            h = check_host(part)
            h = "localhost" if h in LOOPBACK else h
            if h not in hosts:
                hosts.append(h)
    if not hosts:
        raise TLSError("no hosts given: pass --hosts HOST1,HOST2,... (the addresses or names "
                       "the machines serve on)")
    return hosts


def _sans(host: str) -> list[x509.GeneralName]:
    names = LOOPBACK if host == "localhost" else (host,)
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _stem(host: str) -> str:
    return host.replace(":", "_")


# ---------------------------------------------------------------------- files
def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (renamed over
    it), with permissions ``mode`` from the start."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise TLSError(f"{path} is not a PEM certificate") from None


def _load_key(path: Path):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), None)
    except (ValueError, TypeError):
        raise TLSError(f"{path} is not an unencrypted PEM private key") from None


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:  # InvalidSignature, or another key type or issuer
        return False


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# ---------------------------------------------------------------------- issuing
class CertificateAuthority:
    """The cluster's CA in a TLS folder: created there, or loaded to add certificates."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.cert: x509.Certificate
        self.key: ec.EllipticCurvePrivateKey

    def open(self) -> bool:
        """Load the CA of the folder, or create one; True if it was created. Raises
        TLSError when the folder holds another CA's files, or a CA without its key."""
        d = self.folder
        cert_p, key_p = d / CA_CERT, d / CA_KEY
        if cert_p.exists():
            if not key_p.exists():
                raise TLSError(f"{cert_p} has no {CA_KEY} beside it: certificates can only be "
                               f"added where the CA's key is; run certs in that folder, or "
                               f"give an empty DIR for a new cluster")
            self.cert, self.key = _load_cert(cert_p), _load_key(key_p)
            if self.key.public_key() != self.cert.public_key():
                raise TLSError(f"{key_p} is not the key of {cert_p}: this folder holds files "
                               f"of two CAs; give an empty DIR for a new cluster")
            return False
        stray = [p for p in (key_p, d / CLIENT_CERT) if p.exists()]
        stray += sorted((d / HOSTS).glob("*.pem")) if (d / HOSTS).is_dir() else []
        if stray:
            raise TLSError(f"{d} holds certificate files but no {CA_CERT} ({stray[0]}...): "
                           f"they belong to another CA; give an empty DIR")
        self._create()
        return True

    def _create(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "distlda cluster"),
                          x509.NameAttribute(NameOID.COMMON_NAME,
                                             f"distlda cluster CA {uuid.uuid4().hex[:8]}")])
        now, pub = _now(), self.key.public_key()
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(pub).serial_number(x509.random_serial_number())
                     .not_valid_before(now - _dt.timedelta(minutes=5))
                     .not_valid_after(now + _dt.timedelta(days=CA_DAYS))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
                     .sign(self.key, hashes.SHA256()))
        write_atomic(self.folder / CA_KEY, _pem_key(self.key), 0o600)
        write_atomic(self.folder / CA_CERT, self.cert.public_bytes(serialization.Encoding.PEM),
                     0o644)

    def issue(self, cert_p: Path, key_p: Path, cn: str, sans, client_only: bool,
              days: int) -> str:
        """Issue (or keep) a certificate: returns "kept", "created" or "renewed"."""
        action = "created"
        if cert_p.exists():
            old = _load_cert(cert_p)
            if not _signed_by(old, self.cert):
                raise TLSError(f"{cert_p} was signed by another CA than {self.folder / CA_CERT}: "
                               f"give an empty DIR, or remove that file")
            fresh = old.not_valid_after_utc - _now() > _dt.timedelta(days=RENEW_DAYS)
            if fresh and key_p.exists() and _load_key(key_p).public_key() == old.public_key():
                return "kept"
            action = "renewed"
        key = ec.generate_private_key(ec.SECP256R1())
        now, pub = _now(), key.public_key()
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH] if client_only else [
            ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                         "distlda cluster"),
                                      x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(self.cert.subject).public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - _dt.timedelta(minutes=5))
             .not_valid_after(min(now + _dt.timedelta(days=days), self.cert.not_valid_after_utc))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), critical=True)
             .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        write_atomic(key_p, _pem_key(key), 0o600)
        write_atomic(cert_p, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return action


def create(folder, hosts: list[str], days: int = 730) -> list[tuple[str, Path]]:
    """``python -m distlda certs``: the CA (created, or reused), a certificate per host and
    the client certificate in ``folder``.

    Returns ``[(action, path), ...]``, action "created", "renewed" or "kept". Raises TLSError
    for a folder that cannot be used (see :meth:`CertificateAuthority.open`).
    """
    d = Path(folder)
    if days < 1:
        raise TLSError("--days must be at least 1")
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        (d / HOSTS).mkdir(mode=0o755, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=d)
        probe.close()
    except OSError as e:
        raise TLSError(f"cannot write to {d}: {e.strerror or e}") from None
    ca = CertificateAuthority(d)
    out = [("created" if ca.open() else "kept", d / CA_CERT)]
    for h in hosts:
        cert_p, key_p = d / HOSTS / f"{_stem(h)}.pem", d / HOSTS / f"{_stem(h)}-key.pem"
        out.append((ca.issue(cert_p, key_p, h, _sans(h), False, days), cert_p))
    cert_p, key_p = d / CLIENT_CERT, d / CLIENT_KEY
    out.append((ca.issue(cert_p, key_p, "distlda client", None, True, days), cert_p))
    return out


# ---------------------------------------------------------------------- using
class TLSFolder:
    """The files a process uses from a TLS folder: the CA, and the certificate it presents.

    Raises TLSError (naming the file) when ``ca.pem`` is missing, or a certificate is not
    signed by it, does not match its key, or has expired.
    """

    def __init__(self, folder):
        self.folder = Path(folder).expanduser()
        self.ca_file = self.folder / CA_CERT
        if not self.folder.is_dir():
            raise TLSError(f"TLS folder {self.folder} does not exist (create it with "
                           f"'python -m distlda certs {self.folder} --hosts ...')")
        if not self.ca_file.is_file():
            raise TLSError(f"{self.ca_file} is missing: copy the cluster's ca.pem there")
        self.ca = _load_cert(self.ca_file)
        self.hosts: list[tuple[Path, Path, x509.Certificate]] = []
        for p in sorted((self.folder / HOSTS).glob("*.pem")):
            if not p.name.endswith("-key.pem"):
                self.hosts.append((p, p.with_name(p.stem + "-key.pem"), _load_cert(p)))

    def _check(self, cert_p: Path, key_p: Path, cert: x509.Certificate) -> tuple[str, str]:
        if not _signed_by(cert, self.ca):
            raise TLSError(f"{cert_p} is not signed by {self.ca_file} (another cluster's CA?)")
        if not key_p.is_file():
            raise TLSError(f"{key_p} is missing: copy it with {cert_p.name}")
        if _now() > cert.not_valid_after_utc:
            raise TLSError(f"{cert_p} expired on {cert.not_valid_after_utc:%Y-%m-%d}: issue it "
                           f"again with 'python -m distlda certs DIR --hosts ...'")
        if key_p.stat().st_mode & 0o077:
            logger.warning("%s is readable by other users: chmod 600 it", key_p)
        return str(cert_p), str(key_p)

    def for_address(self, host: str) -> tuple[str, str]:
        """(certificate, key) of the host certificate valid for ``host``, the address a process
        serves on; TLSError naming the folder when none is."""
        try:
            want: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            want = x509.DNSName(host.lower().rstrip("."))
        for cert_p, key_p, cert in self.hosts:
            try:
                sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                continue
            if want in list(sans):
                return self._check(cert_p, key_p, cert)
        have = ", ".join(p.name for p, _, _ in self.hosts) or "none"
        raise TLSError(f"no certificate in {self.folder / HOSTS} is valid for {host}, the address "
                       f"this process serves on (there: {have}); create one with 'python -m "
                       f"distlda certs DIR --hosts {host}' where the CA key is, or serve on a "
                       f"certificate's address with --host")

    def for_client(self) -> tuple[str, str]:
        """(certificate, key) a client presents: ``client.pem``, else the folder's only host
        certificate (on a cluster machine)."""
        p = self.folder / CLIENT_CERT
        if p.is_file():
            return self._check(p, self.folder / CLIENT_KEY, _load_cert(p))
        if len(self.hosts) == 1:
            return self._check(*self.hosts[0])
        raise TLSError(f"{p} is missing: copy the cluster's client.pem and client-key.pem there")

    def any_host(self) -> tuple[str, str]:
        """A host certificate to look for the name server with, before the address is known."""
        if not self.hosts:
            raise TLSError(f"no host certificate in {self.folder / HOSTS}: copy this machine's "
                           f"HOST.pem and HOST-key.pem there")
        return self._check(*self.hosts[0])


# ---------------------------------------------------------------------- handshakes
def _peer(addr) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"[{addr[0]}]:{addr[1]}" if ":" in str(addr[0]) else f"{addr[0]}:{addr[1]}"
    return str(addr)


def explain(e: BaseException) -> str:
    """Why a TLS handshake failed, in words."""
    reason = str(getattr(e, "reason", "") or "")
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"no TLS handshake within {HANDSHAKE_TIMEOUT:.0f} s"
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL",
                  "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return "not TLS (a process without --tls DIR / tls=DIR?)"
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "no certificate"
    if reason == "CERTIFICATE_VERIFY_FAILED":
        return (f"its certificate is not signed by this cluster's CA "
                f"({getattr(e, 'verify_message', '')})")
    if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
        return "it rejected this server's certificate (it trusts another CA)"
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"):
        return "a TLS version below 1.2"
    if isinstance(e, (ssl.SSLEOFError, ConnectionError)) or not reason:
        return "the connection closed during the handshake"
    return reason.lower().replace("_", " ")


class ServerSocket(ssl.SSLSocket):
    """A server's TLS socket (``SSLContext.sslsocket_class``) whose accepted connections do
    their handshake on their first read or write, in the connection's own thread and within
    :data:`HANDSHAKE_TIMEOUT` s, rather than in ``accept`` (where one silent peer would stall
    every other). A failed handshake is logged as one line with the peer's address."""

    _handshake_due = False
    _peer_addr = None

    def accept(self):
        sock, addr = socket.socket.accept(self)
        conn = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False,
                                        suppress_ragged_eofs=self.suppress_ragged_eofs)
        conn._handshake_due, conn._peer_addr = True, addr
        return conn, addr

    def _ensure_handshake(self) -> None:
        if not self._handshake_due:
            return
        self._handshake_due = False
        old = self.gettimeout()
        self.settimeout(HANDSHAKE_TIMEOUT if old is None else min(old, HANDSHAKE_TIMEOUT))
        try:
            self.do_handshake()
        except (ssl.SSLError, OSError) as e:
            logger.warning("TLS: refused a connection from %s: %s", _peer(self._peer_addr),
                           explain(e))
            raise ConnectionResetError(errno.ECONNRESET, f"TLS handshake failed: {explain(e)}")
        self.settimeout(old)
        subject: Any = (self.getpeercert() or {}).get("subject", ())
        logger.debug("TLS: connection from %s (%s)", _peer(self._peer_addr),
                     dict(x[0] for x in subject).get("commonName"))

    def recv(self, *args, **kwargs):
        self._ensure_handshake()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._ensure_handshake()
        return super().recv_into(*args, **kwargs)

    def send(self, *args, **kwargs):
        self._ensure_handshake()
        return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._ensure_handshake()
        return super().sendall(*args, **kwargs)


def harden(ctx: ssl.SSLContext, server: bool) -> None:
    """TLS 1.2 at least, and (servers) the handshake of :class:`ServerSocket`."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if server:
        ctx.sslsocket_class = ServerSocket
