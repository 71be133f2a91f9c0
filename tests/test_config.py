"""distlda.config: every environment knob, its default and its error."""

import os
import subprocess
import sys

import pytest

from distlda import config


def test_defaults_when_unset(monkeypatch):
    for name in ("DISTLDA_TLS", "DISTLDA_CHECK", "DISTLDA_IDLE_TIMEOUT", "DISTLDA_PIECE_BYTES",
                 "DISTLDA_TEST_HOLD", "PYRO_HOST", "PYRO_NS_HOST", "PYRO_BROADCAST_ADDRS"):
        monkeypatch.delenv(name, raising=False)
    assert config.tls_folder() is None and config.test_hold() is None
    assert config.check_mode() is False
    assert config.idle_timeout() == 30.0
    assert config.piece_bytes() == 32 << 20
    assert config.pyro_host() is None and config.ns_host() is None
    assert config.broadcast_addrs() is None


def test_values_are_read_when_called(monkeypatch):
    monkeypatch.setenv("DISTLDA_CHECK", "1")
    monkeypatch.setenv("DISTLDA_IDLE_TIMEOUT", "2.5")
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "999")
    monkeypatch.setenv("DISTLDA_TLS", "/some/dir")
    assert config.check_mode() is True
    assert config.idle_timeout() == 2.5
    assert config.piece_bytes() == 999
    assert config.tls_folder() == "/some/dir"
    monkeypatch.setenv("DISTLDA_CHECK", "0")
    monkeypatch.setenv("DISTLDA_TLS", "")  # empty is unset
    assert config.check_mode() is False and config.tls_folder() is None


@pytest.mark.parametrize("name, value", [("DISTLDA_PIECE_BYTES", "32M"),
                                         ("DISTLDA_PIECE_BYTES", "0"),
                                         ("DISTLDA_IDLE_TIMEOUT", "-1"),
                                         ("DISTLDA_IDLE_TIMEOUT", "nan")])
def test_a_bad_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    read = config.piece_bytes if name == "DISTLDA_PIECE_BYTES" else config.idle_timeout
    default = "33554432" if name == "DISTLDA_PIECE_BYTES" else "30.0"
    with pytest.raises(ValueError, match=rf"\${name}={value!r}.*unset it for the default "
                                         rf"{default}$"):
        read()


def test_a_bad_cluster_knob_leaves_in_process_training_alone(monkeypatch):
    """distributed=False imports none of the cluster (whose piece size is read at import)."""
    code = ("import sys; from distlda.models import LdaModel; "
            "LdaModel([[(0, 2), (1, 1)]], num_topics=2, iterations=2, distributed=False); "
            "sys.exit(1 if 'distlda.cluster.codec' in sys.modules else 0)")
    env = {**os.environ, "DISTLDA_PIECE_BYTES": "0"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_bad_value_stops_a_cluster_process_with_its_name():
    """The piece size is fixed at import: a worker started with a bad one says which variable."""
    env = {**os.environ, "DISTLDA_PIECE_BYTES": "lots"}
    r = subprocess.run([sys.executable, "-c", "import distlda.cluster.codec"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "$DISTLDA_PIECE_BYTES='lots'" in r.stderr
