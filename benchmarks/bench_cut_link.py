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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from hosts_bench import CLIENT, PlainCluster  # noqa: E402

import netns  # noqa: E402


def main() -> int:
    reason = netns.available()
    if reason:
        print(f"needs network namespaces: {reason}", file=sys.stderr)
        return 2
    with netns.Hosts(("a", "b", "c")) as h:
        c = PlainCluster(h)
        while c.workers() < 2:
            time.sleep(0.5)
        print("registrations:", json.dumps(c.query("list"), indent=1))
        argv = ["train", "6000", "200", "50", "350", "3"]
        clean = c.query(*argv)
        print("undisturbed:", clean)
        pid = h.start("a", "client", [sys.executable, str(CLIENT), *argv], c.env)
        time.sleep(5.0)
        h.cut("c")
        h._proc(pid).wait(900)
        text = h.log_path(pid).read_text()
        r = json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])
        print("with C's link cut 5 s in:", r)
        print(f"{c.query('stats')['lost_workers']} worker lost; "
              f"{r['seconds'] / clean['seconds']:.2f}x the undisturbed time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
