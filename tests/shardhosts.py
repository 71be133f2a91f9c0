"""A cluster that trains shard sets across three hosts (network namespaces, tests/netns.py),
with an S3-compatible store: moto's S3 server as a process on host A, the name server and
the dispatcher on A, one worker on each of B and C (``--threads T``), and every process
given the standard S3 client environment (``AWS_ENDPOINT_URL`` pointing at A). Used by
tests/test_multihost_shards.py and benchmarks/bench_shards.py.

Clients run on A as ``tests/multihost_client.py`` commands and print one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import netns

PY = sys.executable
CLIENT = str(netns.REPO / "tests" / "multihost_client.py")
S3_PORT = 5000  # a fresh namespace: nothing else listens on A
BUCKET = "distlda-mh"


def moto_reason() -> str | None:
    """None if moto's server and s3fs can be imported here, else why not (for a skip)."""
    for mod, pkg in (("moto.server", '"moto[server]"'), ("s3fs", "s3fs")):
        try:
            __import__(mod)
        except ImportError as e:
            return f"the S3 store needs {mod} (pip install {pkg}): {e}"
    return None


def vm_hwm(pid: int) -> int:
    """Peak resident bytes (``VmHWM`` of ``/proc/PID/status``) of a live process."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


class S3Grid:
    """moto S3 server, name server and dispatcher on A; a worker on each of B and C.

    Parameters
    ----------
    hosts : netns.Hosts
        With hosts ``a``, ``b``, ``c``.
    threads : int
        ``--threads`` of each worker.
    timeout : float
        The dispatcher's ``--timeout`` (reply deadline, s).
    worker_env : dict, optional
        Extra environment of the workers (e.g. ``DISTLDA_TEST_HOLD``).
    """

    def __init__(self, hosts: netns.Hosts, threads: int = 2, timeout: float = 3.0,
                 worker_env: dict | None = None):
        self.h = hosts
        a = hosts.addr("a")
        self.endpoint = f"http://{a}:{S3_PORT}"
        self.aws = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                    "AWS_DEFAULT_REGION": "us-east-1"}
        self.s3 = hosts.start("a", "s3", [PY, "-m", "moto.server", "-H", a, "-p",
                                          str(S3_PORT)], self.env())
        hosts.wait_tcp("a", a, S3_PORT)
        self.ns = hosts.start("a", "ns", [PY, "-m", "Pyro5.nameserver", "-n", a], self.env())
        hosts.wait_tcp("a", a, 9090)
        self.threads, self.timeout, self.worker_env = threads, timeout, worker_env
        self.start_cluster()

    def start_cluster(self) -> None:
        """Start the dispatcher (on A) and the workers (on B and C); wait until registered."""
        self.dispatcher = self.h.start("a", "dispatcher", [
            PY, "-m", "distlda.models.lda_dispatcher", "--timeout", str(self.timeout),
            "--worker-wait", "20"], self.env())
        self.workers = {w: self.h.start(w, f"worker-{w}", [
            PY, "-m", "distlda.models.lda_worker", "--threads", str(self.threads)],
            self.env(self.worker_env)) for w in ("b", "c")}
        self.wait(lambda names: sum(n.startswith("distlda.worker.") for n in names) == 2
                  and "distlda.dispatcher" in names, "the dispatcher and 2 workers")

    def stop_cluster(self) -> None:
        """Stop the dispatcher and the workers (SIGTERM, by PID), and drop their names from
        the name server (plain Pyro5 keeps a dead process's registration)."""
        for pid in (*self.workers.values(), self.dispatcher):
            self.h.stop(pid)
        self.client("prune", "all", timeout=60)

    def env(self, extra: dict | None = None) -> dict:
        """The hosts' environment plus the S3 client's (and ``extra``)."""
        return self.h.env({**self.aws, **(extra or {})})

    def url(self, name: str) -> str:
        return f"s3://{BUCKET}/{name}"

    def client(self, *args, timeout: float = 300) -> dict:
        """Run ``multihost_client.py ARGS`` on A; its JSON line."""
        out = self.h.run("a", [PY, CLIENT, *map(str, args)], timeout=timeout, env=self.env())
        if out.returncode != 0:
            raise RuntimeError(f"client {args} failed ({out.returncode}):\n{out.stdout}\n"
                               f"{out.stderr}\n{self.h.logs()}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start_client(self, *args) -> int:
        """Start ``multihost_client.py ARGS`` on A in the background; its PID."""
        return self.h.start("a", "client", [PY, CLIENT, *map(str, args)], self.env())

    def result(self, pid: int, timeout: float = 300) -> dict:
        """The JSON line of a client started with :meth:`start_client`, once it ends."""
        p = self.h._proc(pid)
        p.wait(timeout)
        text = self.h.log_path(pid).read_text()
        if p.returncode != 0:
            raise RuntimeError(f"client failed ({p.returncode}):\n{text}\n{self.h.logs()}")
        return json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])

    def write_set(self, name: str, docs: int, terms: int, doc_len: int, shards: int,
                  seed: int = 0) -> dict:
        """Write a :class:`helpers.ZipfCorpus` as a shard set ``s3://BUCKET/name`` from A."""
        return self.client("write-set", self.url(name), docs, terms, doc_len, shards, seed)

    def stats(self) -> dict:
        return self.client("stats", timeout=30)

    def wait(self, cond, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond(self.client("list", timeout=30)):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{what}\n{self.h.logs()}")

    def wait_sweeps(self, n: int, timeout: float = 120) -> None:
        """Until the running training has done ``n`` sweeps."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (self.stats().get("sweeps") or 0) >= n:
                    return
            except RuntimeError:  # no session yet
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{n} sweeps\n{self.h.logs()}")

    def log(self, pid: int) -> str:
        return self.h.log_path(pid).read_text(errors="replace")


def held(folder: Path) -> list[int]:
    """PIDs of the workers waiting at a ``DISTLDA_TEST_HOLD`` point in ``folder``."""
    return sorted(int(f.stem) for f in Path(folder).glob("*.held"))
