"""Several "hosts" on one Linux machine, made of network namespaces, for multi-host cluster tests.

One bridge namespace and one namespace per host, joined by veth pairs, on a private /24 picked
per run; no default route and no address outside the namespaces, so traffic stays between the
test's own hosts. Processes started here are remembered by PID and stopped by PID (or their
own process group), never by name; every namespace made here is deleted on exit or SIGTERM, and
a later run deletes those of a run whose owner PID is gone (names carry it:
``dl-<pid>-<rand>-<host>``). Needs root and iproute2; :func:`available` says why not.

Usage::

    with hosts_or_skip(("a", "b")) as hosts:
        pid = hosts.start("a", "ns", [sys.executable, "-m", "Pyro5.nameserver",
                                      "-n", hosts.addr("a")])
        hosts.run("b", [sys.executable, "-c", "..."], timeout=10)
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
PREFIX = "dl-"
NETNS_DIR = Path("/var/run/netns")  # where iproute2 keeps its named namespaces
_NAME = re.compile(r"^dl-(\d+)-([0-9a-f]{8})-([a-z0-9]+)$")  # owner PID, rand, host
_HOST = re.compile(r"^[a-z][a-z0-9]{0,9}$")
DEV = "eth0"  # the host's end of its veth pair


class HarnessUnavailable(RuntimeError):
    """The harness (or one of its faults) cannot run on this machine; the message says why."""


# ------------------------------------------------------------------ probes
def _ip(*args: str, ns: str | None = None, stdin: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}\n"
                           f"{stdin or ''}")
    return p


def _probe_name() -> str:
    return f"{PREFIX}{os.getpid()}-{random.getrandbits(32):08x}-probe"


@functools.cache
def available() -> str | None:
    """None if namespaces can be made here, else why not (for ``pytest.skip``).

    Probes once per process with a throwaway namespace (a bridge and a veth pair in it),
    because being root is not enough inside some containers.
    """
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux, not {sys.platform}"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    name = _probe_name()
    p = _ip("netns", "add", name, check=False)
    if p.returncode != 0:
        return f"ip netns add failed: {p.stderr.strip()}"
    try:
        p = _ip("-b", "-", ns=name, check=False,
                stdin="link add br0 type bridge\nlink add v0 type veth peer name v1\n")
        if p.returncode != 0:
            return f"cannot make a bridge and a veth pair in a namespace: {p.stderr.strip()}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


@functools.cache
def _qdisc_reason(kind: str, args: tuple[str, ...]) -> str | None:
    why = available()
    if why:
        return why
    if shutil.which("tc") is None:
        return "iproute2's tc is not installed"
    name = _probe_name()
    _ip("netns", "add", name)
    try:
        p = subprocess.run(["tc", "-n", name, "qdisc", "add", "dev", "lo", "root", kind, *args],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            return (f"tc qdisc {kind} is not supported on this kernel "
                    f"({os.uname().release}): {p.stderr.strip()}")
    finally:
        _ip("netns", "del", name, check=False)
    return None


def netem_available() -> str | None:
    """None if ``tc qdisc ... netem`` works here (delay and rate), else why not."""
    return _qdisc_reason("netem", ("delay", "1ms"))


def tbf_available() -> str | None:
    """None if ``tc qdisc ... tbf`` works here (rate only, the fallback without netem)."""
    return _qdisc_reason("tbf", ("rate", "1mbit", "burst", "16kb", "latency", "50ms"))


def hosts_or_skip(names: Sequence[str] = ("a", "b", "c")) -> Hosts:
    """A :class:`Hosts`, or ``pytest.skip`` with the reason it cannot run here."""
    import pytest
    why = available()
    if why:
        pytest.skip(why)
    return Hosts(names)


# ------------------------------------------------------------------ namespaces on this machine
def list_netns() -> list[str]:
    """Names of every named network namespace on this machine (``ip netns list``)."""
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_pids(name: str) -> list[int]:
    """PIDs of the processes whose network namespace is ``name`` (as ``ip netns pids``)."""
    try:
        st = os.stat(NETNS_DIR / name)
    except FileNotFoundError:
        return []
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if (s.st_ino, s.st_dev) == (st.st_ino, st.st_dev):
            pids.append(int(d))
    return pids


def _kill_all(pids: Sequence[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL processes that are not our children and wait until they are gone; the rest."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if _pid_alive(p) and not _zombie(p)]
        time.sleep(0.02)
    return left


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return False


def clean_stale() -> list[str]:
    """Delete the namespaces (and kill their processes) of runs whose owner PID is gone.

    Only names of this harness's pattern (``dl-<pid>-<8 hex>-<host>``) are looked at, so other
    namespaces on the machine are never touched; a run killed with SIGKILL is cleaned up by
    the next one.
    """
    removed = []
    for name in list_netns():
        m = _NAME.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        _kill_all(netns_pids(name))
        if _ip("netns", "del", name, check=False).returncode == 0:
            removed.append(name)
    return removed


# ------------------------------------------------------------------ the hosts
def _pick_subnet(rand: int) -> ipaddress.IPv4Network:
    """A 10.X.Y.0/24 with X in 100..249 (clear of 10.0.x and the usual ones) and Y random,
    not overlapping any address of the root namespace."""
    used = [ipaddress.ip_interface(w).network
            for line in _ip("-4", "-o", "addr", "show").stdout.splitlines()
            for w in line.split()[3:4]]
    rng = random.Random(os.getpid() * 1_000_003 + rand)
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{100 + rng.randrange(150)}.{rng.randrange(256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free 10.X.Y.0/24 subnet")


_OPEN: list[Hosts] = []
_prev_sigterm = None
_sigterm_lock = threading.Lock()


def _on_sigterm(signum, frame):
    """Tear every open Hosts down (keeping logs), then behave as before we were installed."""
    for h in list(_OPEN):
        try:
            h.close(keep_logs=True)
        except Exception as e:  # report, and still die as asked
            print(f"netns teardown on SIGTERM: {e}", file=sys.stderr)
    prev = _prev_sigterm
    if callable(prev):
        prev(signum, frame)
    elif prev != signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm() -> None:
    global _prev_sigterm
    with _sigterm_lock:
        if threading.current_thread() is not threading.main_thread():
            return
        cur = signal.getsignal(signal.SIGTERM)
        if cur is _on_sigterm:
            return
        _prev_sigterm = cur
        signal.signal(signal.SIGTERM, _on_sigterm)


@atexit.register
def _close_open() -> None:
    """A Hosts never closed (or an interpreter leaving early) still cleans up."""
    for h in list(_OPEN):
        try:
            h.close(keep_logs=True)
        except Exception as e:
            print(f"netns teardown at exit: {e}", file=sys.stderr)


class Hosts:
    """Hosts on one bridge, each its own network namespace with one address on a private /24.

    Parameters
    ----------
    names : sequence of str
        Host names (lower-case letters and digits, at most 10, not ``br``).
    term_timeout : float
        On teardown, how long processes get between SIGTERM and SIGKILL.

    Attributes
    ----------
    subnet : ipaddress.IPv4Network
        This run's /24; host ``i`` (in ``names`` order) is ``.i+1``.
    netns : dict
        Host name -> namespace name; :attr:`bridge_ns` holds the bridge.
    logdir : Path
        Where the processes' logs go.
    """

    def __init__(self, names: Sequence[str] = ("a", "b", "c"), term_timeout: float = 5.0):
        why = available()
        if why:
            raise HarnessUnavailable(why)
        names = list(names)
        if not names or len(set(names)) != len(names) or len(names) > 250:
            raise ValueError(f"host names must be 1..250 distinct names: {names}")
        for n in names:
            if not _HOST.match(n) or n == "br":
                raise ValueError(f"bad host name {n!r} (lower-case letters and digits, <= 10)")
        self.names = names
        self.term_timeout = term_timeout
        self.removed_stale = clean_stale()
        rand = random.getrandbits(32)
        self.tag = f"{PREFIX}{os.getpid()}-{rand:08x}"
        self.subnet = _pick_subnet(rand)
        self.bridge_ns = f"{self.tag}-br"
        self.netns = {n: f"{self.tag}-{n}" for n in names}
        self._addr = {n: str(self.subnet[i + 1]) for i, n in enumerate(names)}
        self.logdir = Path(tempfile.mkdtemp(prefix="distlda-netns-"))
        self.procs: dict[int, tuple[str, str, subprocess.Popen]] = {}
        self._log_paths: dict[int, Path] = {}
        self.frozen: set[int] = set()
        self.shaped: set[str] = set()
        self._made: list[str] = []
        self._closed = False
        _OPEN.append(self)
        _install_sigterm()
        try:
            self._build()
        except BaseException:
            self.close(keep_logs=False)
            raise

    # -------------------------------------------------------------- network
    def _mac(self, host: str) -> str:
        b = ipaddress.ip_address(self._addr[host]).packed
        return "02:00:" + ":".join(f"{x:02x}" for x in b)

    def _build(self) -> None:
        for ns in [self.bridge_ns, *self.netns.values()]:
            _ip("netns", "add", ns)
            self._made.append(ns)
        br = ["link add br0 type bridge", "link set br0 addrgenmode none", "link set br0 up"]
        for n, ns in self.netns.items():
            br += [f"link add v-{n} type veth peer name {DEV} address {self._mac(n)} netns {ns}",
                   f"link set v-{n} addrgenmode none", f"link set v-{n} master br0",
                   f"link set v-{n} up"]
        _ip("-b", "-", ns=self.bridge_ns, stdin="\n".join(br) + "\n")
        plen = self.subnet.prefixlen
        for n, ns in self.netns.items():
            # Permanent neighbour entries: no ARP, so a cut link drops packets silently
            # (a failed ARP would turn a partition into a quick EHOSTUNREACH).
            cmds = [f"link set {DEV} addrgenmode none", "link set lo up",
                    f"addr add {self._addr[n]}/{plen} brd + dev {DEV}", f"link set {DEV} up"]
            cmds += [f"neigh replace {self._addr[m]} lladdr {self._mac(m)} dev {DEV} nud permanent"
                     for m in self.names if m != n]
            _ip("-b", "-", ns=ns, stdin="\n".join(cmds) + "\n")

    def addr(self, host: str) -> str:
        """The host's IPv4 address."""
        return self._addr[host]

    @property
    def broadcast(self) -> str:
        """The subnet's broadcast address (``PYRO_BROADCAST_ADDRS``)."""
        return str(self.subnet.broadcast_address)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for processes on the hosts: this checkout importable, Pyro5
        discovery by broadcast on this subnet only, and no name server address inherited."""
        env = dict(os.environ, PYRO_BROADCAST_ADDRS=self.broadcast,
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
        for k in ("PYRO_NS_HOST", "PYRO_NS_PORT", "PYRO_NS_BCPORT", "PYRO_HOST"):
            env.pop(k, None)
        env.update(extra or {})
        return env

    # -------------------------------------------------------------- processes
    def _argv(self, host: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns[host], *map(str, argv)]

    def start(self, host: str, name: str, argv: Sequence[str],
              env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` on ``host`` in its own session, output to a log; its PID.

        ``ip netns exec`` enters the namespace and then execs ``argv`` in the same process, so
        the PID is the real one; we wait until the exec is done (the process is in the
        namespace and no longer runs ``ip``), so a signal reaches ``argv``, not ``ip``.
        """
        log_path = self.logdir / f"{host}-{name}-{len(self.procs)}.log"
        with open(log_path, "wb") as log:
            p = subprocess.Popen(self._argv(host, argv), env=dict(env or self.env()),
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=str(REPO), start_new_session=True)
        self.procs[p.pid] = (host, name, p)
        self._log_paths[p.pid] = log_path
        self._wait_exec(p, host)
        return p.pid

    def _wait_exec(self, p: subprocess.Popen, host: str, timeout: float = 10.0) -> None:
        ip_exe = os.path.realpath(shutil.which("ip") or "ip")
        ns = os.stat(NETNS_DIR / self.netns[host])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                return  # exited already (its log says why)
            try:
                s = os.stat(f"/proc/{p.pid}/ns/net")
                exe = os.readlink(f"/proc/{p.pid}/exe")
            except OSError:
                time.sleep(0.002)
                continue
            if (s.st_ino, s.st_dev) == (ns.st_ino, ns.st_dev) and exe != ip_exe:
                return
            time.sleep(0.002)
        raise RuntimeError(f"process {p.pid} on {host} did not exec within {timeout} s")

    def run(self, host: str, argv: Sequence[str], timeout: float = 30.0,
            env: Mapping[str, str] | None = None, input: str | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run a short command on ``host`` and collect its output (text); on timeout its
        process group is killed and ``subprocess.TimeoutExpired`` raised."""
        cmd = self._argv(host, argv)
        p = subprocess.Popen(cmd, env=dict(env or self.env()), cwd=str(REPO), text=True,
                             stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal(p, signal.SIGKILL)
            p.communicate()
            raise
        except BaseException:
            _signal(p, signal.SIGKILL)
            p.wait()
            raise
        cp = subprocess.CompletedProcess(cmd, p.returncode, out, err)
        if check:
            cp.check_returncode()
        return cp

    def wait_tcp(self, host: str, addr: str, port: int, timeout: float = 20.0) -> None:
        """Wait until ``addr:port`` accepts a TCP connection from ``host`` (a server is up)."""
        code = ("import socket,sys,time\n"
                f"d=time.monotonic()+{timeout}\n"
                "while time.monotonic()<d:\n"
                "    try:\n"
                f"        socket.create_connection(({addr!r},{int(port)}),1).close(); sys.exit(0)\n"
                "    except OSError: time.sleep(0.05)\n"
                "sys.exit(1)\n")
        r = self.run(host, [sys.executable, "-c", code], timeout=timeout + 10)
        if r.returncode != 0:
            raise TimeoutError(f"{addr}:{port} not reachable from {host} in {timeout} s: "
                               f"{r.stderr}\n{self.logs()}")

    def _proc(self, pid: int) -> subprocess.Popen:
        return self.procs[pid][2]

    def stop(self, pid: int, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Send ``sig`` to a process we started (and its process group), wait for it (SIGKILL
        after ``timeout``); its return code. A frozen process is thawed so it gets the signal."""
        p = self._proc(pid)
        if p.poll() is None:
            _signal(self._proc(pid), sig)
            if pid in self.frozen:
                _signal(self._proc(pid), signal.SIGCONT)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal(self._proc(pid), signal.SIGKILL)
                p.wait(10)
        self.frozen.discard(pid)
        return p.returncode

    def kill(self, pid: int) -> int:
        """SIGKILL a process we started (and its process group); its return code."""
        return self.stop(pid, signal.SIGKILL)

    def freeze(self, pid: int) -> None:
        """SIGSTOP a process we started (its group), and wait until it is stopped: the
        kernel still accepts connections to it; nothing answers."""
        _signal(self._proc(pid), signal.SIGSTOP)
        self.frozen.add(pid)
        self._wait_state(pid, stopped=True)

    def thaw(self, pid: int) -> None:
        """SIGCONT a process frozen by :meth:`freeze`."""
        _signal(self._proc(pid), signal.SIGCONT)
        self.frozen.discard(pid)
        self._wait_state(pid, stopped=False)

    def _wait_state(self, pid: int, stopped: bool, timeout: float = 5.0) -> None:
        """Signals arrive asynchronously: return once the process is (no longer) stopped."""
        deadline = time.monotonic() + timeout
        while self._proc(pid).poll() is None and time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return
            if (state in "Tt") == stopped:
                return
            time.sleep(0.002)

    def alive(self) -> list[int]:
        """PIDs of the processes we started that have not exited."""
        return [pid for pid, (_, _, p) in self.procs.items() if p.poll() is None]

    def log_path(self, pid: int) -> Path:
        """The log file of a process we started (stdout and stderr)."""
        return self._log_paths[pid]

    def logs(self) -> str:
        """The tail of every process's log, for a failing test's report."""
        out = []
        for pid, (host, name, p) in self.procs.items():
            f = self._log_paths[pid]
            text = f.read_text(errors="replace")[-4000:] if f.exists() else ""
            out.append(f"----- {host} {name} pid {pid} (exit {p.returncode}) {f.name}\n{text}")
        return "\n".join(out)

    # -------------------------------------------------------------- faults
    def _port(self, host: str) -> str:
        if host not in self.netns:
            raise KeyError(host)
        return f"v-{host}"

    def cut(self, host: str) -> None:
        """A silent partition of ``host``: its bridge port goes down and packets both ways are
        dropped (no RST, no ICMP, no ARP failure); its processes run on."""
        _ip("link", "set", self._port(host), "down", ns=self.bridge_ns)

    def restore(self, host: str) -> None:
        """Undo :meth:`cut`."""
        _ip("link", "set", self._port(host), "up", ns=self.bridge_ns)

    def shape(self, host: str, rate: str | None = "1gbit", delay: str | None = "0.5ms") -> None:
        """Shape ``host``'s link both ways (its egress and the bridge's egress towards it): a
        round trip to an unshaped host takes ``2 * delay`` more.

        Uses ``tc netem``; with ``delay=None`` and no netem, a ``tbf`` rate limit. Raises
        :class:`HarnessUnavailable` when the kernel lacks what is asked for.
        """
        port = self._port(host)
        if delay is None and rate is None:
            raise ValueError("shape needs a rate or a delay")
        why = netem_available()
        if why is None:
            args = ["netem", "limit", "10000"] + (["delay", delay] if delay else []) + (["rate", rate] if rate
                                                                      else [])
        elif delay is None and tbf_available() is None:
            bps = _bits_per_s(rate)
            burst = max(int(bps / 8 / 100), 16 * 1024)  # 10 ms of traffic, at least 16 KiB
            args = ["tbf", "rate", rate, "burst", str(burst), "latency", "100ms"]
        else:
            raise HarnessUnavailable(why)
        self.unshape(host)
        for ns, dev in ((self.netns[host], DEV), (self.bridge_ns, port)):
            p = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *args],
                               capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                raise RuntimeError(f"tc qdisc add {' '.join(args)} on {ns}/{dev}: {p.stderr}")
        self.shaped.add(host)

    def unshape(self, host: str) -> None:
        """Remove :meth:`shape`'s qdiscs."""
        port = self._port(host)
        if host in self.shaped:
            for ns, dev in ((self.netns[host], DEV), (self.bridge_ns, port)):
                subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"],
                               capture_output=True, timeout=30)
            self.shaped.discard(host)

    # -------------------------------------------------------------- teardown
    def stop_all(self, timeout: float | None = None) -> None:
        """Stop every process we started, by PID: SIGTERM (thawing frozen ones), then
        SIGKILL; then SIGKILL anything else still in our namespaces (a child that left its
        process group)."""
        running = self.alive()
        for pid in running:
            _signal(self._proc(pid), signal.SIGTERM)
            _signal(self._proc(pid), signal.SIGCONT)
        self.frozen.clear()
        deadline = time.monotonic() + (self.term_timeout if timeout is None else timeout)
        for pid in running:
            p = self._proc(pid)
            try:
                p.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(self._proc(pid), signal.SIGKILL)
                p.wait(10)
        left = _kill_all([q for ns in self._made for q in netns_pids(ns)])
        if left:
            raise RuntimeError(f"processes left in the namespaces: {left}")

    def close(self, keep_logs: bool = False) -> None:
        """Stop every process, delete every namespace of this run and check none is left;
        the logs are removed unless ``keep_logs`` (then their folder is printed)."""
        if self._closed:
            return
        self._closed = True
        errors = []
        try:
            self.stop_all()
        except Exception as e:  # still delete the namespaces
            errors.append(str(e))
        for ns in self._made:
            _ip("netns", "del", ns, check=False)
        left = [ns for ns in list_netns() if ns.startswith(self.tag + "-")]
        if left:
            errors.append(f"namespaces left: {left}")
        if self in _OPEN:
            _OPEN.remove(self)
        if keep_logs and any(self.logdir.iterdir()):
            print(f"netns hosts logs kept in {self.logdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.logdir, ignore_errors=True)
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # Logs are kept when the block failed; pytest.skip inside it is no failure.
        skipped = (exc_type is not None and exc_type.__name__ == "Skipped"
                   and exc_type.__module__.startswith("_pytest"))
        self.close(keep_logs=exc_type is not None and not skipped)


def _signal(p: subprocess.Popen, sig: int) -> None:
    """Signal the process group led by ``p`` (started in its own session), only while ``p`` is
    not reaped: its PID (the group's ID) cannot have been reused by another process then."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass


_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
          "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12}


def _bits_per_s(rate: str) -> float:
    m = re.fullmatch(r"([\d.]+)\s*([a-z]*)", rate.strip().lower())
    if not m or (m.group(2) or "bit") not in _UNITS:
        raise ValueError(f"rate {rate!r}: use tc's units, e.g. 1gbit, 100mbit, 10mbps")
    return float(m.group(1)) * _UNITS[m.group(2) or "bit"]
