"""``bench_distributed.py --hosts``: the cluster benchmark across real links.

Three hosts are made of network namespaces (tests/netns.py, as root): A runs the name
servers, the dispatchers and the benchmark's client (and the serial runs), B and C one worker
each. A 1-worker cluster (worker on B) and a 2-worker cluster (workers on B and C) run side by
side on two name-server ports. Every host's link is shaped with ``tc``: rate ``--link-rate``
(tbf, or netem) and delay ``--link-delay`` (netem only; where the kernel has no netem the
delay is left out and the output says so). The client runs inside A and counts the bytes on
A's interface, which carries all the cluster's traffic: framing included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def run(args, argv) -> int:
    import common
    import netns

    reason = netns.available()
    if reason:
        print(f"--hosts needs network namespaces: {reason}", file=sys.stderr)
        return 2
    delay = args.link_delay
    if delay and netns.netem_available():
        common.log(f"no tc netem here ({netns.netem_available()}): links get the rate only")
        delay = None
    py = sys.executable
    with netns.Hosts(("a", "b", "c")) as h:
        for host in ("a", "b", "c"):
            h.shape(host, rate=args.link_rate, delay=delay)
        a = h.addr("a")
        env = h.env()
        sizes = {1: ("b",), 2: ("b", "c")}
        via = []
        for n, workers in sizes.items():
            port = 9090 + 100 * n
            flags = ["--ns-host", a, "--ns-port", str(port)]
            h.start("a", f"ns{n}", [py, "-m", "distlda", "nameserver", "--host", a, "--port",
                                    str(port), "--bc-port", str(port + 1)], env)
            h.wait_tcp("a", a, port)
            h.start("a", f"dispatcher{n}", [py, "-m", "distlda.models.lda_dispatcher", *flags],
                    env)
            for w in workers:
                h.start(w, f"worker{n}{w}", [py, "-m", "distlda.models.lda_worker", *flags], env)
            via.append(f"{n}={a}:{port}")
        child = [a for a in argv if a != "--hosts"]
        child += ["--workers", "1,2", "--via", ",".join(via), "--wire-iface", "eth0",
                  "--link-delay", delay or ""]
        cmd = h._argv("a", [py, str(HERE / "bench_distributed.py"), *child])
        out = subprocess.run(cmd, env=env, timeout=3600)
        if out.returncode:
            print(h.logs(), file=sys.stderr)
        return out.returncode


CLIENT = HERE.parent / "tests" / "multihost_client.py"


class PlainCluster:
    """Hosts A, B, C: a plain ``python -m Pyro5.nameserver -n <A>`` and the dispatcher on A,
    one worker on each of B and C, all but the name server started with no flags (the
    README's recipe); :meth:`query` runs ``tests/multihost_client.py`` on A."""

    def __init__(self, hosts):
        py = sys.executable
        self.h = h = hosts
        a, self.env = h.addr("a"), h.env()
        h.start("a", "ns", [py, "-m", "Pyro5.nameserver", "-n", a], self.env)
        h.wait_tcp("a", a, 9090)
        h.start("a", "dispatcher", [py, "-m", "distlda.models.lda_dispatcher"], self.env)
        for host in ("b", "c"):
            h.start(host, f"worker-{host}", [py, "-m", "distlda.models.lda_worker"], self.env)

    def query(self, *what, timeout=900):
        import json
        out = self.h.run("a", [sys.executable, str(CLIENT), *what], timeout=timeout, env=self.env)
        if out.returncode:
            raise RuntimeError(out.stdout + out.stderr + self.h.logs())
        return json.loads(out.stdout.strip().splitlines()[-1])

    def workers(self) -> int:
        return sum(n.startswith("distlda.worker.") for n in self.query("list"))
