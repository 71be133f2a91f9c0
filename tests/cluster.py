"""A real Pyro5 cluster on 127.0.0.1 for tests: name server, dispatcher and workers as subprocesses.

Every process is started here, remembered by PID and stopped by PID (SIGTERM, then SIGKILL),
never by name. Logs go to files in a temporary directory, shown when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import Pyro5.errors

REPO = Path(__file__).resolve().parents[1]


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Name server + dispatcher + workers on free ports of 127.0.0.1.

    Parameters
    ----------
    workers : int
        Workers to start (more with :meth:`add_worker`).
    timeout : float
        The dispatcher's dead-worker timeout.
    dispatcher : bool
        Start a dispatcher.
    check : bool
        ``DISTLDA_CHECK=1``: workers verify every sparse model update against the dense rows.
    repo : path, optional
        Where the processes import distlda from (default this checkout; a benchmark passes
        an older revision's tree to compare).
    piece_bytes : int, optional
        ``DISTLDA_PIECE_BYTES``: arrays above this size travel in pieces of it (tests of big
        messages on small models).
    hold : str, optional
        A phase of a worker's job (:data:`distlda.cluster.worker_session.HOLD_POINTS`): the
        workers stop at its start while :attr:`hold_file` exists (:meth:`held` lists them).
    threads : int
        ``--threads`` of the workers (default 1: tests compare chains with serial runs;
        :meth:`add_worker` may ask for more).
    tls : path, optional
        A folder of ``python -m distlda certs`` (with a ``localhost`` host certificate): the
        name server is ``python -m distlda nameserver --tls``, every process gets
        ``DISTLDA_TLS``, and this process connects with the folder's client certificate
        (until :meth:`stop`).
    """

    def __init__(self, workers: int = 2, timeout: float = 10.0, dispatcher: bool = True,
                 check: bool = True, hold: str | None = None, repo=None,
                 piece_bytes: int | None = None, tls=None, threads: int = 1):
        self.threads = threads
        self.port = free_port()
        self.repo = Path(repo or REPO)
        self.logdir = Path(tempfile.mkdtemp(prefix="distlda-cluster-"))
        self.env = dict(os.environ, PYRO_NS_HOST="127.0.0.1", PYRO_NS_PORT=str(self.port),
                        PYTHONPATH=str(self.repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", PYRO_BROADCAST_ADDRS="127.0.0.1",
                        DISTLDA_CHECK="1" if check else "0")
        if hold:
            self.env["DISTLDA_TEST_HOLD"] = f"{hold}:{self.logdir}"
        if piece_bytes:
            self.env["DISTLDA_PIECE_BYTES"] = str(piece_bytes)
        self.tls = tls
        if tls:
            from distlda.cluster import client
            self.env["DISTLDA_TLS"] = str(tls)
            client.use_tls(tls)
        self.procs: dict[int, tuple[str, subprocess.Popen]] = {}
        self._index: dict[int, int] = {}
        self.workers: list[int] = []
        self.dispatcher = None
        try:
            ns = ([sys.executable, "-m", "distlda", "nameserver", "--tls", str(tls),
                   "--host", "127.0.0.1", "--port", str(self.port), "--bc-port",
                   str(free_port(socket.SOCK_DGRAM))] if tls else
                  [sys.executable, "-m", "Pyro5.nameserver", "-n", "127.0.0.1", "-p",
                   str(self.port)])
            self._start("ns", ns)
            self._wait(self._ns_up, 20, "the name server")
            self.timeout = timeout
            if dispatcher:
                self.start_dispatcher()
            for _ in range(workers):
                self.add_worker(wait=False)
            if workers:
                self.wait_workers(workers)
        except BaseException:
            self.stop()
            raise

    @property
    def ns_conf(self) -> dict:
        return {"host": "127.0.0.1", "port": self.port}

    # ------------------------------------------------------------ processes
    def _start(self, name, cmd, env=None) -> int:
        index = len(self.procs)
        log = open(self.logdir / f"{name}-{index}.log", "wb")
        p = subprocess.Popen(cmd, env=dict(self.env, **(env or {})), stdout=log, stderr=subprocess.STDOUT,
                             cwd=str(self.repo), start_new_session=True)
        log.close()
        self.procs[p.pid] = (name, p)
        self._index[p.pid] = index
        return p.pid

    def start_dispatcher(self) -> int:
        """Start a dispatcher (again, after :meth:`kill`) and wait for its registration."""
        self.dispatcher = self._start("dispatcher", [
            sys.executable, "-m", "distlda.models.lda_dispatcher", "--timeout",
            str(self.timeout), "--worker-wait", "20"])
        self._wait(lambda: self._dispatcher_up(self.dispatcher), 30, "the dispatcher")
        return self.dispatcher

    def add_worker(self, wait: bool = True, env: dict | None = None,
                   threads: int | None = None) -> int:
        """Start a worker (``env``: more environment variables for it; ``threads``: its
        ``--threads``, default the cluster's)."""
        threads = self.threads if threads is None else threads
        pid = self._start("worker", [sys.executable, "-m", "distlda.models.lda_worker", "-v",
                                     "--threads", str(threads)], env)
        self.workers.append(pid)
        if wait:
            self._wait(lambda: any(n.endswith(f".{pid}") for n in self.worker_names()), 30,
                       f"worker {pid} to register")
        return pid

    def kill(self, pid: int, sig=signal.SIGKILL) -> None:
        """Send ``sig`` to one process we started (by PID) and reap it."""
        name, p = self.procs[pid]
        if p.poll() is None:
            os.kill(pid, sig)
            p.wait(10)
        if pid in self.workers:
            self.workers.remove(pid)

    def stop(self) -> None:
        """Stop every process this cluster started, by PID: SIGTERM, then SIGKILL."""
        if self.tls:
            from distlda.cluster import transport
            transport.use_tls(None)
        for pid, (name, p) in self.procs.items():
            if p.poll() is None:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for pid, (name, p) in self.procs.items():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                p.wait(5)

    @property
    def hold_file(self) -> Path:
        return self.logdir / "hold"

    def held(self) -> list[int]:
        """PIDs of the workers waiting at the hold point now."""
        return sorted(int(f.stem) for f in self.logdir.glob("*.held"))

    def alive(self) -> list[int]:
        return [pid for pid, (_, p) in self.procs.items() if p.poll() is None]

    def logs(self) -> str:
        out = []
        for f in sorted(self.logdir.glob("*.log")):
            out.append(f"----- {f.name}\n{f.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    # ------------------------------------------------------------ state
    def _ns(self):
        from distlda.cluster import transport as _wire
        return _wire.ns_proxy("127.0.0.1", self.port, 2.0)

    def _ns_up(self) -> bool:
        try:
            with self._ns() as ns:
                ns.ping()
            return True
        except Pyro5.errors.PyroError:
            return False

    def _dispatcher_up(self, pid=None) -> bool:
        """A dispatcher is registered (that of process ``pid``, when given, and answering)."""
        try:
            with self._ns() as ns:
                uri = ns.lookup("distlda.dispatcher")
            if pid is None:
                return True
            from distlda.cluster import transport
            return transport.call(uri, "ping", timeout=2.0) is not None and \
                self.procs[pid][1].poll() is None and self._registered_by(pid)
        except Pyro5.errors.PyroError:
            return False

    def _registered_by(self, pid) -> bool:
        """The dispatcher of process ``pid`` says it registered (its log)."""
        log = self.logdir / f"dispatcher-{self._index[pid]}.log"
        return "ready at" in log.read_text(errors="replace")

    def worker_names(self) -> list[str]:
        with self._ns() as ns:
            return sorted(ns.list(prefix="distlda.worker."))

    def dispatcher_proxy(self, timeout=10.0):
        from distlda.cluster import transport as _wire
        with self._ns() as ns:
            uri = ns.lookup("distlda.dispatcher")
        return _wire.proxy(uri, timeout)

    def wait_workers(self, n: int, timeout: float = 60) -> None:
        """Wait until the dispatcher sees ``n`` workers."""
        def ok():
            if len(self.worker_names()) < n:
                return False
            if self.dispatcher is None:
                return True
            with self.dispatcher_proxy() as d:
                return d.ping()["workers"] >= n
        self._wait(ok, timeout, f"{n} workers")

    def _wait(self, cond, timeout, what) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [f"{n} {pid} exited {p.returncode}" for pid, (n, p) in self.procs.items()
                    if p.poll() is not None and pid in self.workers + [self.dispatcher]]
            if dead:
                raise RuntimeError(f"while waiting for {what}: {dead}\n{self.logs()}")
            try:
                if cond():
                    return
            except Pyro5.errors.PyroError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what}\n{self.logs()}")

    def __enter__(self):
        return self

    def cleanup(self) -> None:
        """Remove the log files."""
        shutil.rmtree(self.logdir, ignore_errors=True)

    def __exit__(self, exc_type, *exc):
        self.stop()
        if exc_type is None:
            self.cleanup()
        else:
            print(f"cluster logs kept in {self.logdir}")
