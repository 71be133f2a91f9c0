"""A shard set in an S3-compatible store trains across three hosts (network namespaces,
tests/netns.py): moto's S3 server, the name server and the dispatcher on A, a worker with
``--threads 2`` on each of B and C, every process given only the standard S3 client
environment. The set is written from A; the client on A sends only its address. Skipped with
the reason where namespaces cannot be made (not root, no ``ip``) or moto/s3fs are missing."""

import re

import pytest

import netns
from helpers import wait_for
from shardhosts import S3Grid, held, moto_reason

# A Zipf-like corpus of about 300,000 tokens, V = 25,000, in 6 shards (3 a worker).
D, V, L, SHARDS, K = 1500, 25_000, 200, 6, 20


@pytest.fixture
def hosts():
    reason = netns.available() or moto_reason()
    if reason:
        pytest.skip(reason)
    with netns.Hosts(("a", "b", "c")) as h:
        yield h
        print(h.logs())  # shown when the test fails
    assert not any(n.startswith(h.tag) for n in netns.list_netns())
    assert h.alive() == []


def assert_exact(r, tokens):
    assert r["sstats"] == r["tokens"] == r["set_tokens"] == tokens, r
    assert r["words_exact"], r  # each word's column of sstats sums to its count in the set
    assert r["exact"], r        # the counts are those of the checkpointed assignments


def test_a_shard_set_in_s3_trains_exactly_on_workers_of_two_hosts(hosts):
    grid = S3Grid(hosts, threads=2)
    w = grid.write_set("set", D, V, L, SHARDS, seed=1)
    assert w["num_terms"] == V and w["shards"] == SHARDS and 250_000 < w["tokens"] < 350_000
    r = grid.client("train-set", grid.url("set"), K, 30, 1, "check")
    assert_exact(r, w["tokens"])
    assert r["executor"].startswith("distributed"), r
    assert r["chunks_held"] == 0  # the client holds counts and checkpoint references only
    assert r["checkpoint"].startswith(grid.url("set") + "/checkpoints/"), r
    assert r["refs"] == [30] * SHARDS, r
    s = grid.stats()
    assert s["sweeps"] == 30 and s["lost_workers"] == 0, s
    # both workers, on their own hosts, took part in the sweeps
    assert len(s["job_workers"]) == 2, s
    assert s["bytes_load"] < 0.01 * s["tokens"], s  # no token went through the dispatcher
    for host in ("b", "c"):
        assert "sweeping on 2 threads" in grid.log(grid.workers[host])


def test_a_worker_killed_mid_training_its_shards_come_back_from_s3_checkpoints(hosts):
    hold = hosts.logdir / "hold"
    grid = S3Grid(hosts, threads=2, worker_env={"DISTLDA_TEST_HOLD": f"sample:{hosts.logdir}"})
    w = grid.write_set("set", D, V, L, SHARDS, seed=2)
    # 100 sweeps: room for the polls (a process each) between sweep 12 and the hold
    pid = grid.start_client("train-set", grid.url("set"), K, 100, 2, "check")
    grid.wait_sweeps(12)
    # kill after the first checkpoint: every shard's commit mark (z-SHARD-SWEEP.json) is in
    # the store (older ones are pruned: look for any)
    def checkpointed():
        names = grid.client("ls", grid.url("set/checkpoints"))
        return {n[2:7] for n in names if n.startswith("z-") and n.endswith(".json")} == {
            f"{i:05d}" for i in range(SHARDS)}

    wait_for(checkpointed, 60, f"a checkpoint of every shard\n{hosts.logs()}")
    hold.touch()
    victim = grid.workers["b"]
    wait_for(lambda: victim in held(hosts.logdir), 30,
             f"worker b to reach its sample phase\n{hosts.logs()}")
    hosts.kill(victim)  # SIGKILL in the middle of a sweep
    hold.unlink()
    r = grid.result(pid)
    assert_exact(r, w["tokens"])
    assert r["refs"] == [100] * SHARDS, r
    s = grid.stats()
    assert s["sweeps"] == 100 and s["lost_workers"] >= 1 and s["restored_shards"] >= 1, s
    log = grid.log(grid.dispatcher)
    lines = [ln for ln in log.splitlines() if "restored shards" in ln]
    assert lines, log
    # "training N: restored shards I (sweep S, DIR/FILE), ... onto worker NAME": every shard
    # from a checkpoint file in the store, none from its seed
    ckpt = re.escape(r["checkpoint"])
    pat = (rf"restored shards (\d+ \(sweep \d+, {ckpt}/z-[^)]+\.npy\)(, )?)+ onto worker \S+")
    assert any(re.search(pat, ln) for ln in lines), lines
    assert "from its seed" not in "\n".join(lines)
