#!/usr/bin/env python
"""A cut link as a user meets it, across three namespaced hosts (as root).

    python benchmarks/bench_cut_link.py

A plain ``python -m Pyro5.nameserver -n <A>`` and the dispatcher on A, one worker on each of B
and C, all but the name server started with no flags; a client on A trains (~30 s here), then
trains again with C's link cut (packets dropped, no reset) 5 s in. Prints both times and
whether ``sstats`` are exact.
"""
import json
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
import netns

PY = sys.executable
CLIENT = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests" / "multihost_client.py")
with netns.Hosts(("a", "b", "c")) as h:
    a, env = h.addr("a"), h.env()
    h.start("a", "ns", [PY, "-m", "Pyro5.nameserver", "-n", a], env)
    h.wait_tcp("a", a, 9090)
    h.start("a", "dispatcher", [PY, "-m", "distlda.models.lda_dispatcher"], env)
    for host in ("b", "c"):
        h.start(host, f"worker-{host}", [PY, "-m", "distlda.models.lda_worker"], env)
    def q(*w):
        out = h.run("a", [PY, CLIENT, *w], timeout=900, env=env)
        assert out.returncode == 0, out.stdout + out.stderr + h.logs()
        return json.loads(out.stdout.strip().splitlines()[-1])
    while sum(n.startswith("distlda.worker.") for n in q("list")) < 2:
        time.sleep(0.5)
    names = q("list")
    print("registrations:", json.dumps(names, indent=1))
    argv = ["train", "6000", "200", "50", "350", "3"]
    clean = q(*argv)
    print("undisturbed:", clean)
    pid = h.start("a", "client", [PY, CLIENT, *argv], env)
    time.sleep(5.0)
    h.cut("c")
    h._proc(pid).wait(900)
    text = h.log_path(pid).read_text()
    r = json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])
    print("with C's link cut 5 s in:", r)
    print("stats:", q("stats")["lost_workers"], "lost;", "ratio %.2f" % (r["seconds"] / clean["seconds"]))
