"""The dispatcher's counters of a session: traffic, failures, and where each sweep's time went.

``stats()["per_sweep"][i]["jobs"]`` has, per job, the seconds of sampling, of the worker's
whole job, of its update of the rows and of packing its result, of the result's way back
since the job was sent, and of reading it here, with the form of the result. Byte counts are
array payload (the part that grows with the data), not message framing.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("distlda.dispatcher")

#: Sweeps of per-sweep records kept.
KEEP_SWEEPS = 200


class Telemetry:
    """Counters of one session (see the module docstring)."""

    def __init__(self, lost_before: int = 0):
        self.totals: dict[str, Any] = dict(sweeps=0, tokens=0, bytes_down=0, bytes_up=0,
                           bytes_load=0, lost_workers=0, redispatched_chunks=0, seconds=0.0,
                           longest_sweep_s=0.0, per_sweep=[])
        self.lost_before = lost_before

    def loaded(self, nbytes: int) -> None:
        self.totals["bytes_load"] += nbytes

    @staticmethod
    def new_sweep() -> dict:
        return dict(bytes_down=0, bytes_up=0, bytes_load=0, lost=0, redispatched=0,
                    prepare_s=0.0, commit_s=0.0, worker_s=0.0, worker_cpu_s=0.0, steps=0)

    @staticmethod
    def job(rec: dict, worker: str, step: int, r: dict) -> None:
        """Record one committed job (``r``: the coordinator's task outcome)."""
        res, t = r["result"], r["result"].timings
        rec["worker_cpu_s"] += t.get("cpu_seconds", 0.0)
        rec.setdefault("jobs", []).append(dict(
            worker=worker, step=step, tokens=res.tokens, sample=t.get("seconds"),
            job=t.get("job_seconds"), update=t.get("update_seconds"), pack=t.get("pack_seconds"),
            received=r["received_s"], read=r["read_s"], moved=r["reading"].moved,
            form=r["reading"].form))

    def end_sweep(self, rec: dict, seconds: float, cpu: float, workers: int, tokens: int) -> dict:
        s = self.totals
        s["sweeps"] += 1
        s["tokens"] = tokens
        s["seconds"] += seconds
        s["longest_sweep_s"] = max(s["longest_sweep_s"], seconds)
        s["bytes_down"] += rec["bytes_down"]
        s["bytes_up"] += rec["bytes_up"]
        s["bytes_load"] += rec["bytes_load"]
        rec.update(sweep=s["sweeps"], seconds=seconds, workers=workers, dispatcher_cpu_s=cpu,
                   tokens_per_s=tokens / max(seconds, 1e-9))
        s["per_sweep"].append(rec)
        del s["per_sweep"][:-KEEP_SWEEPS]
        # at info level the first sweep, every 100th and any with a failure (-vv: all)
        quiet = rec["sweep"] > 1 and rec["sweep"] % 100 and not (rec["lost"] or
                                                                  rec["redispatched"])
        logger.log(logging.DEBUG if quiet else logging.INFO,
                   "sweep %d: %d tokens on %d workers in %d steps, %.3f s, %.2f bytes/token "
                   "(%d lost, %d chunks re-dispatched)", rec["sweep"], tokens, workers,
                   rec["steps"], seconds, (rec["bytes_down"] + rec["bytes_up"]) / max(tokens, 1),
                   rec["lost"], rec["redispatched"])
        return rec

    def snapshot(self, lost_now: int) -> dict:
        """The counters as ``stats()`` returns them (the last 50 sweeps' records)."""
        s = dict(self.totals, per_sweep=list(self.totals["per_sweep"][-50:]))
        s["lost_workers"] = lost_now - self.lost_before
        n = max(s["tokens"], 1) * max(s["sweeps"], 1)
        s["bytes_per_token_per_sweep"] = (s["bytes_down"] + s["bytes_up"]) / n
        return s
