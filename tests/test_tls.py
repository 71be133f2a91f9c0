"""Mutual TLS: ``python -m distlda certs``, and a TLS cluster that refuses every peer without
a certificate of its CA (clients, workers, a plain client), while it keeps serving and training
exactly."""

import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from distlda import cli
from distlda.cluster import client, tls
from distlda.models import LdaModel

from cluster import Cluster
from helpers import assert_exact, planted_corpus


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(the cluster's folder, another CA's folder), both with a localhost certificate."""
    good, other = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("other")
    tls.create(good, ["localhost", "node1"])
    tls.create(other, ["localhost"])
    return good, other


@pytest.fixture(scope="module")
def tls_cluster(folders):
    c = Cluster(workers=2, tls=folders[0])
    try:
        yield c
    finally:
        c.stop()
        print(c.logs())
        c.cleanup()
        assert c.alive() == []


@pytest.fixture(scope="module")
def corpus():
    X, _ = planted_corpus(D=300, V=200, K=5, L=50, alpha=0.5)
    return X


def _train(c, X, **kw):
    return LdaModel(X, num_topics=5, iterations=3, chunksize=50, ns_conf=c.ns_conf,
                    random_state=1, workers=1, **kw)


def _ns_log(c) -> str:
    return next(c.logdir.glob("ns-*.log")).read_text(errors="replace")


def _wait_for(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_tls_cluster_trains_exact_and_a_foreign_worker_never_joins(tls_cluster, folders, corpus):
    c, (good, other) = tls_cluster, folders
    foreign = c.add_worker(wait=False, env={"DISTLDA_TLS": str(other)})
    log = c.logdir / f"worker-{c._index[foreign]}.log"
    assert _wait_for(lambda: "no name server yet" in log.read_text(errors="replace")), c.logs()
    lda = _train(c, corpus, distributed=True, tls=good)
    assert lda.executor_info.startswith("distributed (2 workers")
    assert_exact(lda, int(corpus.sum()))
    client.use_tls(good)  # this process's helpers talk to the cluster again
    assert not any(n.endswith(f".{foreign}") for n in c.worker_names())
    with c.dispatcher_proxy() as d:
        assert not any(n.endswith(f".{foreign}") for n in d.ping()["names"])
    text = log.read_text(errors="replace")
    assert "joined session" not in text and "ready at" not in text
    assert "CERTIFICATE_VERIFY_FAILED" in text  # it does not trust the cluster either
    assert "TLS: refused a connection from 127.0.0.1:" in _ns_log(c)
    c.kill(foreign)


def test_plain_and_foreign_clients_are_refused(tls_cluster, folders, corpus, monkeypatch):
    c, (good, other) = tls_cluster, folders
    with pytest.raises(RuntimeError, match="if the cluster uses TLS, pass tls=DIR"):
        _train(c, corpus, distributed=True)
    assert _train(c, corpus, distributed=None).executor_info.startswith("serial")
    assert "not TLS" in _ns_log(c)
    with pytest.raises(RuntimeError, match="certificates of the same CA"):
        _train(c, corpus, distributed=True, tls=other)
    monkeypatch.setenv("DISTLDA_TLS", str(other))  # the same through the environment
    assert _train(c, corpus, distributed=None).executor_info.startswith("serial")
    monkeypatch.delenv("DISTLDA_TLS")
    client.use_tls(good)
    assert len(c.worker_names()) == 2  # still serving


def _handshake(port, ca, cert=None) -> None:
    """A raw TLS client: handshake and one read (TLS 1.3 reports a refused client
    certificate only then)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(cert).replace(".pem", "-key.pem"))
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"PYRO")
            if not s.recv(1):
                raise ConnectionResetError("closed")


def test_the_name_server_refuses_missing_and_foreign_client_certificates(tls_cluster, folders):
    c, (good, other) = tls_cluster, folders
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(c.port, good / "ca.pem")  # trusts the CA, presents nothing
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(c.port, good / "ca.pem", other / "hosts" / "localhost.pem")
    assert _wait_for(lambda: "no certificate" in _ns_log(c))
    assert _wait_for(lambda: "not signed by this cluster's CA" in _ns_log(c))
    # a client without client.pem is stopped before it connects
    bare = c.logdir / "bare"
    bare.mkdir()
    shutil.copy(good / "ca.pem", bare / "ca.pem")
    with pytest.raises(tls.TLSError, match="client.pem is missing"):
        _train(c, planted_corpus(D=20, V=20, K=2, L=5)[0], distributed=True, tls=bare)
    client.use_tls(good)
    assert len(c.worker_names()) == 2


def test_a_worker_without_a_certificate_for_its_address_exits_with_one_line(tls_cluster, folders):
    c, (good, _) = tls_cluster, folders
    only = c.logdir / "only-node1"
    (only / "hosts").mkdir(parents=True)
    for f in ("ca.pem", "hosts/node1.pem", "hosts/node1-key.pem"):
        shutil.copy(good / f, only / f)
    r = subprocess.run([sys.executable, "-m", "distlda.models.lda_worker", "--tls", str(only)],
                       env=c.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "no certificate in" in r.stderr and "valid for 127.0.0.1" in r.stderr
    assert "Traceback" not in r.stderr


def test_contexts_require_tls_1_2_and_client_certificates(folders):
    import Pyro5.socketutil as su
    good = folders[0]
    try:
        client.use_tls(good)
        ctx = su.get_ssl_context(clientcert=str(good / "client.pem"))
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2 and ctx.check_hostname
        cert, key = tls.TLSFolder(good).for_address("127.0.0.1")
        from distlda.cluster import transport
        transport.use_tls(str(good / "ca.pem"), cert, key)
        srv = su.get_ssl_context(servercert=cert, serverkey=key)
        assert srv.minimum_version == ssl.TLSVersion.TLSv1_2
        assert srv.verify_mode == ssl.CERT_REQUIRED and srv.sslsocket_class is tls.ServerSocket
    finally:
        client.use_tls(None)


def _ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls).value


def test_certs_files_keys_and_names(tmp_path, capsys):
    d = tmp_path / "c"
    assert cli.main(["certs", str(d), "--hosts", "10.0.0.7,Node-2.example.org,127.0.0.1"]) == 0
    out = capsys.readouterr().out
    assert "ca.pem" in out and "10.0.0.7.pem" in out and "client-key.pem" in out
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    keys = [d / "ca-key.pem", d / "client-key.pem", *(d / "hosts").glob("*-key.pem")]
    assert len(keys) == 5
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600, k
    load = lambda p: x509.load_pem_x509_certificate(Path(p).read_bytes())  # noqa: E731
    ca, ip = load(d / "ca.pem"), load(d / "hosts" / "10.0.0.7.pem")
    assert _ext(ca, x509.BasicConstraints).ca and isinstance(ip.public_key(), ec.EllipticCurvePublicKey)
    ip.verify_directly_issued_by(ca)
    import ipaddress
    assert list(_ext(ip, x509.SubjectAlternativeName)) == [
        x509.IPAddress(ipaddress.ip_address("10.0.0.7"))]
    assert set(_ext(ip, x509.ExtendedKeyUsage)) == {ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH}
    dns = _ext(load(d / "hosts" / "node-2.example.org.pem"), x509.SubjectAlternativeName)
    assert list(dns) == [x509.DNSName("node-2.example.org")]
    assert x509.DNSName("localhost") in list(_ext(load(d / "hosts" / "localhost.pem"),
                                                  x509.SubjectAlternativeName))
    assert list(_ext(load(d / "client.pem"), x509.ExtendedKeyUsage)) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    before = (d / "ca.pem").read_bytes(), (d / "hosts" / "10.0.0.7.pem").read_bytes()
    assert cli.main(["certs", str(d), "--hosts", "10.0.0.7,10.0.0.8"]) == 0  # adds one host
    assert ((d / "ca.pem").read_bytes(), (d / "hosts" / "10.0.0.7.pem").read_bytes()) == before
    load(d / "hosts" / "10.0.0.8.pem").verify_directly_issued_by(ca)


@pytest.mark.parametrize("args, message", [
    (["--hosts", ""], "no hosts given"),
    (["--hosts", "bad_host!"], "invalid host name"),
    (["--hosts", "a..b"], "invalid host name"),
])
def test_certs_bad_input_is_one_line(tmp_path, capsys, args, message):
    assert cli.main(["certs", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_certs_refuses_unwritable_and_foreign_folders(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["certs", str(blocker / "d"), "--hosts", "h1"]) == 2
    assert "cannot write to" in capsys.readouterr().err
    a, b = tmp_path / "a", tmp_path / "b"
    tls.create(a, ["h1"])
    tls.create(b, ["h1"])
    shutil.copy(b / "hosts" / "h1.pem", a / "hosts" / "h1.pem")  # another CA's certificate
    assert cli.main(["certs", str(a), "--hosts", "h1"]) == 2
    assert "signed by another CA" in capsys.readouterr().err
    (b / "ca-key.pem").unlink()
    assert cli.main(["certs", str(b), "--hosts", "h2"]) == 2
    assert "has no ca-key.pem" in capsys.readouterr().err
    c = tmp_path / "c"
    (c / "hosts").mkdir(parents=True)
    shutil.copy(a / "hosts" / "h1.pem", c / "hosts" / "h1.pem")
    assert cli.main(["certs", str(c), "--hosts", "h2"]) == 2
    assert "no ca.pem" in capsys.readouterr().err
