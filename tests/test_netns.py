"""The network-namespace harness itself (tests/netns.py): reachability, isolation, Pyro5
broadcast discovery across hosts, faults (cut, freeze, kill, shaping), and that nothing is left.

Skipped with the reason where namespaces cannot be made (not root, no iproute2).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netns import (
    NETNS_DIR,
    HarnessUnavailable,
    Hosts,
    available,
    clean_stale,
    hosts_or_skip,
    list_netns,
    netem_available,
    netns_pids,
)

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

PORT = 7000  # each host has its own port space

SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    if sys.argv[3] == "sink":          # read to EOF, answer the byte count
        n = 0
        while d := c.recv(1 << 16):
            n += len(d)
        c.sendall(str(n).encode())
    else:                              # echo
        while d := c.recv(1 << 16):
            c.sendall(d)
    c.close()
"""

CLIENT = r"""
import errno, socket, sys, time
addr, port, timeout, n = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket()
s.settimeout(timeout)
try:
    s.connect((addr, port))
except socket.timeout:
    sys.exit(print("connect-timeout"))
except OSError as e:
    sys.exit(print("connect-error", errno.errorcode.get(e.errno, e.errno)))
best = 1e9
try:
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(b"ping")
        d = b""
        while len(d) < 4:
            d += s.recv(4 - len(d)) or sys.exit(print("closed"))
        best = min(best, time.perf_counter() - t)
except socket.timeout:
    sys.exit(print("echo-timeout"))
print("ok", best)
"""

BULK = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
t = time.perf_counter()
s.sendall(b"x" * int(sys.argv[3]))
s.shutdown(socket.SHUT_WR)
n = int(s.recv(64))
print(n, time.perf_counter() - t)
"""


def serve(h: Hosts, host: str, mode: str = "echo") -> int:
    pid = h.start(host, mode, [sys.executable, "-c", SERVER, h.addr(host), PORT, mode])
    h.wait_tcp(host, h.addr(host), PORT, timeout=10)
    return pid


def client(h: Hosts, host: str, addr: str, port: int = PORT, timeout: float = 2.0,
           n: int = 1) -> str:
    r = h.run(host, [sys.executable, "-c", CLIENT, addr, port, timeout, n], timeout=timeout + 20)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def in_parallel(*calls):
    """Run the calls (functions of no arguments) at once; their results in order."""
    out = [None] * len(calls)
    threads = [threading.Thread(target=lambda i=i, f=f: out.__setitem__(i, f()))
               for i, f in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def ip_out(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_hosts_reach_each_other_and_nothing_else():
    with hosts_or_skip(("a", "b", "c")) as h:
        assert len({h.addr(n) for n in "abc"}) == 3
        assert all(h.addr(n) in map(str, h.subnet.hosts()) for n in "abc")
        assert not h.subnet.overlaps(__import__("ipaddress").ip_network("10.0.0.0/16"))
        serve(h, "a")
        assert client(h, "b", h.addr("a")).startswith("ok")
        assert client(h, "c", h.addr("a")).startswith("ok")
        assert client(h, "c", h.addr("b")) == "connect-error ECONNREFUSED"  # b is there, no server

        # Isolation: routes are the subnet only (no default anywhere), the root namespace
        # holds no address of the subnet, and 127.0.0.1 on a host is the host's own.
        for ns in h.netns.values():
            assert ip_out("-n", ns, "-4", "route", "show").split()[0] == str(h.subnet)
            assert len(ip_out("-n", ns, "-4", "route", "show").strip().splitlines()) == 1
            for fam in ("-4", "-6"):
                assert "default" not in ip_out("-n", ns, fam, "route", "show", "table", "all")
            addrs = ip_out("-n", ns, "-o", "addr", "show").split("\n")
            host = next(n for n, v in h.netns.items() if v == ns)
            assert sorted(line.split()[3] for line in addrs if line and " lo " not in line) \
                == [f"{h.addr(host)}/24"]
        assert str(h.subnet.network_address)[:-1] not in ip_out("-o", "addr", "show")
        with socket.socket() as root_srv:  # a service of the root namespace on 127.0.0.1
            root_srv.bind(("127.0.0.1", 0))
            root_srv.listen(1)
            port = root_srv.getsockname()[1]
            assert client(h, "a", "127.0.0.1", port) == "connect-error ECONNREFUSED"


def test_pyro_name_server_found_by_broadcast_across_hosts():
    with hosts_or_skip(("a", "b")) as h:
        env = h.env({"EXTRA": "1"})
        assert env["PYRO_BROADCAST_ADDRS"] == h.broadcast == str(h.subnet.broadcast_address)
        assert not {"PYRO_NS_HOST", "PYRO_NS_PORT", "PYRO_HOST"} & set(env)
        assert env["NUMBA_NUM_THREADS"] == "1" and env["EXTRA"] == "1"
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(__file__).parents[1])
        h.start("a", "ns", [sys.executable, "-m", "Pyro5.nameserver", "-n", h.addr("a")])
        h.wait_tcp("b", h.addr("a"), 9090)
        r = h.run("b", [sys.executable, "-c",
                        "import Pyro5.api; print(Pyro5.api.locate_ns()._pyroUri)"], timeout=30)
        assert r.returncode == 0, r.stderr + h.logs()
        assert r.stdout.strip() == f"PYRO:Pyro.NameServer@{h.addr('a')}:9090"


def test_cut_is_a_silent_partition_and_restore_heals_it():
    with hosts_or_skip(("a", "b")) as h:
        pid = serve(h, "a")
        assert client(h, "b", h.addr("a")).startswith("ok")
        h.cut("a")
        # Longer than an ARP failure (about 3 s) would take to turn into EHOSTUNREACH; both
        # ways: b -> a's server, and a -> b (no server there: would be refused if it got there).
        t = time.monotonic()
        to_a, to_b = in_parallel(lambda: client(h, "b", h.addr("a"), timeout=4.0),
                                 lambda: client(h, "a", h.addr("b"), timeout=4.0))
        assert (to_a, to_b) == ("connect-timeout", "connect-timeout")
        assert time.monotonic() - t >= 4.0
        assert pid in h.alive()
        h.restore("a")
        assert client(h, "b", h.addr("a")).startswith("ok")
        assert client(h, "a", h.addr("b")) == "connect-error ECONNREFUSED"


def test_processes_by_pid_freeze_thaw_kill_and_nothing_left():
    with hosts_or_skip(("a", "b")) as h:
        echo = serve(h, "a")
        # The PID is the real process (ip netns exec execs it), in the host's namespace.
        assert os.path.realpath(f"/proc/{echo}/exe") == os.path.realpath(sys.executable)
        assert echo in netns_pids(h.netns["a"])
        assert os.getpgid(echo) == echo and os.getsid(echo) == echo
        sleeper = h.start("b", "sleep", ["sleep", "60"])
        stubborn = h.start("b", "stubborn", [sys.executable, "-c",
                           "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                           "print('up', flush=True); time.sleep(60)"])
        frozen_at_exit = h.start("b", "frozen", ["sleep", "60"])
        pids = [echo, sleeper, stubborn, frozen_at_exit]
        assert sorted(h.alive()) == sorted(pids)

        h.freeze(echo)
        assert "T" in Path(f"/proc/{echo}/status").read_text().split("State:")[1][:4]
        # The kernel still completes the handshake; nothing answers.
        assert client(h, "b", h.addr("a"), timeout=1.0) == "echo-timeout"
        h.thaw(echo)
        assert client(h, "b", h.addr("a")).startswith("ok")

        assert h.kill(sleeper) == -signal.SIGKILL
        assert sleeper not in h.alive() and gone(sleeper)
        h.freeze(frozen_at_exit)
        h.term_timeout = 1.0  # stubborn ignores SIGTERM: SIGKILL after 1 s
        tag, made = h.tag, list(h.netns.values()) + [h.bridge_ns]
        assert set(made) <= set(list_netns())
    assert not [n for n in list_netns() if n.startswith(tag)]
    assert not any((NETNS_DIR / n).exists() for n in made)
    assert all(gone(p) for p in pids), [p for p in pids if not gone(p)]
    assert h.alive() == []
    assert h._proc(stubborn).returncode == -signal.SIGKILL
    assert h._proc(frozen_at_exit).returncode == -signal.SIGTERM
    assert not h.logdir.exists()


def test_stale_cleaner_removes_dead_owners_namespaces_only():
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # can never be a live PID
    stale = f"dl-{dead}-deadbeef-a"
    other = f"dl-{dead}-keepme"   # not the harness's pattern: never touched
    sleeper = None
    try:
        for n in (stale, other):
            subprocess.run(["ip", "netns", "add", n], check=True)
        sleeper = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "60"],
                                   start_new_session=True)
        deadline = time.monotonic() + 5
        while sleeper.pid not in netns_pids(stale) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sleeper.pid in netns_pids(stale)
        with hosts_or_skip(("a",)) as live:
            assert stale in live.removed_stale or stale not in list_netns()
            assert sleeper.wait(5) == -signal.SIGKILL  # its process went with it
            names = list_netns()
            assert stale not in names and other in names
            with Hosts(("a",)) as second:  # the first is alive: its namespaces stay
                assert live.tag != second.tag and live.subnet is not None
                assert set(live.netns.values()) | {live.bridge_ns} <= set(list_netns())
                assert clean_stale() == []  # both owners (this process) are alive
    finally:
        if sleeper and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        for n in (stale, other):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


OWNER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from netns import Hosts
h = Hosts(("a", "b"))
pid = h.start("b", "sleep", ["sleep", "60"])
print(h.tag, pid, h.logdir, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_owner_killed_leaves_nothing_behind(sig):
    """SIGTERM: the owner tears down itself; SIGKILL: the next Hosts() cleans up after it."""
    p = subprocess.Popen([sys.executable, "-c", OWNER, str(Path(__file__).parent)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    logdir = None
    try:
        tag, child, logdir = p.stdout.readline().split()
        child = int(child)
        assert [n for n in list_netns() if n.startswith(tag)]
        p.send_signal(sig)
        assert p.wait(10) == -sig
        if sig == signal.SIGTERM:  # it said where it kept its logs
            assert f"logs kept in {logdir}" in p.stderr.read()
        if sig == signal.SIGKILL:
            assert not gone(child)
            with hosts_or_skip(("a",)) as h:
                assert {f"{tag}-a", f"{tag}-b", f"{tag}-br"} <= set(h.removed_stale)
        assert not [n for n in list_netns() if n.startswith(tag)]
        deadline = time.monotonic() + 5
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gone(child)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if logdir:
            shutil.rmtree(logdir, ignore_errors=True)


def test_netem_shaped_link_delays_round_trips():
    with hosts_or_skip(("a", "b")) as h:
        why = netem_available()
        if why:
            with pytest.raises(HarnessUnavailable, match="netem"):
                h.shape("b", rate="1gbit", delay="5ms")
            pytest.skip(why)
        serve(h, "a")
        h.shape("b", rate="1gbit", delay="5ms")  # both ways on b's link: 10 ms a round trip
        rtt = float(client(h, "b", h.addr("a"), n=3).split()[1])
        assert 0.009 <= rtt < 0.5, rtt
        h.unshape("b")
        rtt = float(client(h, "b", h.addr("a"), n=3).split()[1])
        assert rtt < 0.005, rtt


def test_rate_limited_link():
    """``shape(delay=None)``: netem's rate, or tbf where the kernel has no netem."""
    with hosts_or_skip(("a", "b")) as h:
        serve(h, "a", "sink")
        size = 2_000_000  # 16 Mbit: 0.8 s at 20 Mbit/s

        def send() -> float:
            r = h.run("b", [sys.executable, "-c", BULK, h.addr("a"), PORT, size], timeout=30)
            assert r.returncode == 0, r.stderr
            n, dt = r.stdout.split()
            assert int(n) == size
            return float(dt)

        fast = send()
        try:
            h.shape("b", rate="20mbit", delay=None)
        except HarnessUnavailable as e:
            pytest.skip(str(e))
        slow = send()
        assert slow >= 0.5 and slow > 3 * fast, (fast, slow)
