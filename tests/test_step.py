"""The coordinator's step as bare state, driven by events (as dask drives a bare WorkerState):
failures with no sockets, threads or processes; and how the coordinator classifies a job's
failure."""

from __future__ import annotations

import pytest

from distlda.cluster import step as S
from distlda.cluster.coordinator import failure_kind
from distlda.errors import ProtocolError


def new_step(owner=None, members=("a", "b"), sizes=(10, 10, 10, 10), **kw) -> S.Step:
    owner = {0: "a", 1: "a", 2: "b", 3: "b"} if owner is None else owner
    return S.Step(owner, list(members), list(sizes), **kw)


def submits(actions) -> dict:
    return {a.member: (a.job, a.chunks) for a in actions if isinstance(a, S.Submit)}


def test_a_clean_step_submits_each_members_chunks_and_commits_every_result():
    st = new_step()
    sent = submits(st.handle(S.Begin()))
    assert {m: c for m, (_, c) in sent.items()} == {"a": (0, 1), "b": (2, 3)}
    ja, jb = sent["a"][0], sent["b"][0]
    assert st.handle(S.JobDone(ja)) == [S.Commit(ja)]
    assert not st.done and st.remaining == {2, 3}
    assert st.handle(S.JobDone(jb)) == [S.Commit(jb), S.StepDone(clean=True)]
    assert st.done and st.handle(S.JobDone(jb)) == []


def test_a_lost_workers_chunks_leave_the_step():
    # their topics died with the worker: no one sweeps them again in this step (the shell
    # brings them back from their checkpoints, or the client, and recounts)
    st = new_step(members=("a", "b", "c"))
    sent = submits(st.handle(S.Begin()))
    assert "c" not in sent  # c holds nothing
    out = st.handle(S.JobFailed(sent["a"][0], "lost", "ConnectionClosedError"))
    assert out == [S.Drop("a", "ConnectionClosedError", unregister=True)]
    assert st.lost == {0, 1} and st.remaining == {2, 3} and not st.clean
    assert st.handle(S.JobDone(sent["b"][0])) == [S.Commit(sent["b"][0]),
                                                   S.StepDone(clean=False)]
    assert st.failures == 1


def test_a_bad_result_drops_its_worker_and_the_others_finish_the_step():
    st = new_step()
    sent = submits(st.handle(S.Begin()))
    out = st.handle(S.JobFailed(sent["a"][0], "bad", "bad result: topic out of range"))
    assert out == [S.Drop("a", "bad result: topic out of range", unregister=False)]
    out = st.handle(S.JobDone(sent["b"][0]))
    assert out == [S.Commit(sent["b"][0]), S.StepDone(clean=False)] and st.lost == {0, 1}


def test_two_failures_in_a_row_and_no_worker_left_end_the_step_with_every_chunk_lost():
    st = new_step()
    sent = submits(st.handle(S.Begin()))
    st.handle(S.JobFailed(sent["a"][0], "failed", "RuntimeError: worker a is not in that session"))
    out = st.handle(S.WorkerLost("b"))  # its heartbeat failed: its job is given up
    assert out == [S.Abandon(sent["b"][0], "b", (2, 3)), S.StepDone(clean=False)]
    assert st.failures == 2 and not st.inflight and st.lost == {0, 1, 2, 3}
    assert st.handle(S.JobDone(sent["b"][0])) == []  # the abandoned job's late result: ignored


def test_a_stale_result_of_a_dropped_member_is_never_committed():
    st = new_step()
    sent = submits(st.handle(S.Begin()))
    st.handle(S.WorkerLost("a"))
    assert st.handle(S.JobDone(sent["a"][0])) == []
    assert {0, 1} <= st.lost and not {0, 1} & st.remaining
    # a failure reported for it afterwards drops nobody
    assert st.handle(S.JobFailed(sent["a"][0], "lost", "timeout")) == []


def test_an_internal_error_fails_the_sweep_and_drops_no_worker():
    st = new_step()
    sent = submits(st.handle(S.Begin()))
    out = st.handle(S.JobFailed(sent["a"][0], "internal", "KeyError: 7"))
    assert out == [S.FailSweep("internal error: KeyError: 7")]
    assert st.done and st.members == ["a", "b"] and st.failures == 0
    assert st.handle(S.JobDone(sent["b"][0])) == []


def test_too_many_failures_in_a_sweep_fail_it():
    st = new_step(members=("a", "b", "c"), failures=19, max_failures=20)
    sent = submits(st.handle(S.Begin()))
    out = st.handle(S.JobFailed(sent["a"][0], "failed", "RuntimeError: x"))
    assert not any(isinstance(a, S.FailSweep) for a in out)
    out = st.handle(S.JobFailed(sent["b"][0], "lost", "TimeoutError: y"))
    assert out[-1] == S.FailSweep("21 worker failures in one sweep; the last: TimeoutError: y")
    assert st.done


def test_chunks_of_a_member_gone_before_the_step_are_lost_from_the_start():
    st = new_step(owner={0: "a", 1: "gone", 2: "b", 3: "gone"})
    out = st.handle(S.Begin())
    assert [(a.member, a.chunks) for a in out if isinstance(a, S.Submit)] == [
        ("a", (0,)), ("b", (2,))]
    assert st.lost == {1, 3} and not st.clean


def test_no_member_ends_the_step_and_a_chunk_nobody_sweeps_is_an_internal_error():
    st = S.Step({}, [], [5])  # chunk 0 held by nobody: lost (the shell waits for workers)
    assert st.handle(S.Begin()) == [S.StepDone(clean=False)] and st.lost == {0}
    st = S.Step({0: "a"}, ["a"], [5])
    st.handle(S.Begin())
    st.remaining.add(7)  # a chunk nobody owns or sweeps: the bookkeeping is broken
    st.owner[7] = "a"
    out = st.handle(S.JobDone(1))
    assert out[-1] == S.FailSweep("internal error: chunks [7] not swept")


def test_failure_kinds():
    from distlda.cluster import transport
    remote = RuntimeError("worker w: StaleView: ...")
    remote._pyroTraceback = ["..."]
    assert failure_kind(transport.CommunicationError("closed")) == "lost"
    assert failure_kind(remote) == "failed"
    assert failure_kind(ProtocolError("malformed result")) == "bad"
    for bug in (KeyError(3), TypeError("x"), ValueError("y"), IndexError(1)):
        assert failure_kind(bug) == "internal"


def test_unknown_events_and_kinds_are_refused():
    st = new_step()
    with pytest.raises(TypeError):
        st.handle("job done")
    with pytest.raises(ValueError):
        st.handle(S.JobFailed(1, "weird", ""))


# ---------------------------------------------------------------- the coordinator's shell
K, V = 4, 30


def coordinator(names=("a", "b"), chunks=4):
    """A coordinator with members that no process stands behind, each holding half the
    chunks: tests replace ``_task`` (the one method that talks to a worker in a step)."""
    import concurrent.futures as cf
    import threading

    import numpy as np

    from distlda.cluster.coordinator import Coordinator
    from distlda.cluster.messages import DenseSlice, SessionConfig, ShardSet
    from distlda.cluster.roster import Roster
    cfg = SessionConfig(K, V, np.full(K, 0.1), 0.05, "sparse", None, "t", chunks, 40 * chunks,
                        ShardSet.of_chunks([40] * chunks, 0))
    roster = Roster("127.0.0.1", 1, 1.0, threading.RLock())
    co = Coordinator("s" * 32, cfg, roster, cf.ThreadPoolExecutor(4), 0.1, 0.3, False)
    rng = np.random.default_rng(0)
    nwk = np.zeros((V, K), np.int32)
    members = [roster.membership.admit(n, "PYRO:nobody@127.0.0.1:1") for n in names]
    for i in range(chunks):
        words = np.sort(rng.integers(0, V, 40)).astype(np.int32)
        np.add.at(nwk, (words, rng.integers(0, K, 40)), 1)
        uniq, freq = np.unique(words, return_counts=True)
        co.ledger.learn(i, uniq.astype(np.int32), freq)
        m = members[i * len(members) // chunks]
        m.chunks.add(i)
        co.owner[i] = m
    for m in members:
        m.joined(co.key)
        m.chunks = {i for i, o in co.owner.items() if o is m}
    rows = np.arange(V, dtype=np.int32)
    co.ledger.replace_counts([DenseSlice(rows, nwk)], set(range(chunks)))
    return co


def unchanged(co, fail: dict):
    """A ``_task`` whose workers change nothing, read by the real ledger, except that member
    ``name`` raises ``fail[name]`` (once)."""
    from distlda.cluster.messages import JobResult
    calls = []

    def task(m, job, idxs):
        calls.append((m.name, tuple(idxs)))
        if m.name in fail:
            raise fail.pop(m.name)
        res = JobResult(job["job"], 40 * len(idxs), 0, [], {"seconds": 0.0})
        return {"result": res, "reading": co.ledger.read(res, idxs, m.name),
                "received_s": 0.0, "read_s": 0.0}

    co._task = task
    return calls


def run_step(co):
    import numpy as np
    rec = co.telemetry.new_sweep()
    co._step(np.arange(co.ledger.num_chunks, dtype=np.uint32), 0, None, rec)
    return rec


def test_shell_drops_a_worker_with_a_malformed_result_and_its_chunks_leave_the_step():
    co = coordinator()
    before = co.ledger.summary()
    held = tuple(sorted(co.roster.membership.get("a").chunks))
    calls = unchanged(co, {"a": ProtocolError("malformed result from worker a")})
    restored = []
    co.shards.restore = lambda lost, rec: restored.append(lost)  # (its own tests: real ones)
    rec = run_step(co)
    assert co.roster.membership.names() == ["b"]
    assert rec["lost"] == 1 and rec["steps"] == 1
    assert len(held) == 2 and restored == [list(held)]  # brought back after the step ...
    assert ("b", held) not in calls  # ... not swept by another worker within it
    assert co.ledger.summary() == before  # nothing of the failed job was committed


def test_shell_fails_the_sweep_on_an_internal_error_and_keeps_the_workers():
    co = coordinator()
    unchanged(co, {"a": KeyError(3)})  # a bug of the dispatcher's own, not a bad result
    with pytest.raises(RuntimeError, match=r"^internal error: KeyError: 3") as info:
        run_step(co)
    assert isinstance(info.value.__cause__, KeyError)
    assert co.roster.membership.names() == ["a", "b"]


def test_shell_waits_for_workers_when_none_is_left_then_fails():
    co = coordinator(names=("a",))
    unchanged(co, {"a": ProtocolError("malformed")})
    with pytest.raises(RuntimeError, match="no workers"):
        run_step(co)
    assert co.roster.membership.names() == []
