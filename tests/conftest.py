"""Fixtures: the planted corpus, and real clusters (``@pytest.mark.cluster(...)`` options)."""

import os
import socket
import uuid

import pytest

from helpers import planted_corpus, to_bow, topic_recovery  # noqa: F401  (older imports)

# A model in auto mode with no ns_conf looks for a cluster on localhost and by broadcast. In
# the suite that lookup may find no cluster but the tests' own: broadcasts go to this machine
# only, and to a port no name server uses, and localhost's name-server port is one nobody
# listens on (the multi-host tests set their own; tests/cluster.py sets its clusters' ports).
os.environ["PYRO_BROADCAST_ADDRS"] = "127.0.0.1"


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


os.environ["PYRO_NS_PORT"] = str(_free_port())
os.environ["PYRO_NS_BCPORT"] = str(_free_port(socket.SOCK_DGRAM))



@pytest.fixture(scope="session")
def planted():
    """(X, phi) of a planted corpus: 1000 docs x 100 tokens, V=500, K=10, alpha=0.5.

    Documents mix several topics (alpha=0.5), so Gibbs sampling finds every planted topic
    from most seeds (mean cosine 0.99; about 1 seed in 5 stalls after 60 sweeps in a mode where
    two planted topics share one learned topic, 0.87-0.90); with alpha=0.1, 40% of seeds do.
    """
    return planted_corpus(alpha=0.5)


@pytest.fixture
def cluster(request):
    """A real cluster (:class:`cluster.Cluster`) on free ports of 127.0.0.1, stopped by PID
    after the test, which fails if any process it started is left.

    Options by marker, as named arguments of :class:`cluster.Cluster`, e.g.
    ``@pytest.mark.cluster(workers=1, check=False)``; default 2 workers with the dispatcher's
    self-check (``DISTLDA_CHECK``: workers verify every model update).
    """
    from cluster import Cluster
    marker = request.node.get_closest_marker("cluster")
    options = dict(marker.kwargs) if marker else {}
    c = Cluster(**options)
    try:
        yield c
    finally:
        c.stop()
        print(c.logs())  # shown by pytest when the test fails
        c.cleanup()
        assert c.alive() == [], "every process the test started is stopped"


@pytest.fixture
def s3_bucket(monkeypatch):
    """(s3fs filesystem, a new bucket's name) on moto's S3 server on a free loopback port, with
    s3fs's standard environment pointing at it (moto keeps its buckets in the process, so the
    bucket is new and moto is reset after the test); skipped without moto[server] and s3fs."""
    pytest.importorskip("s3fs", reason="the S3 round trip needs s3fs (pip install s3fs)")
    moto_server = pytest.importorskip(
        "moto.server", reason='the S3 round trip needs moto\'s server (pip install "moto[server]")')
    import socket
    import urllib.request

    import s3fs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ENDPOINT_URL": endpoint,
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    bucket = f"distlda-test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    try:
        yield fs, bucket
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset",
                                                      method="POST")).close()
        server.stop()
