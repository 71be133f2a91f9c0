"""Who the workers are, kept current in the background: discovery, heartbeats, dead names.

A prober thread lists ``distlda.worker.`` on the name server every ``probe_every`` seconds.
A new name is admitted once it answers a ping; a name that does not answer is tried again
with a growing delay (1 s, 2 s, 4 s ... 30 s), and its registration is removed from the name
server once it has failed for ``grace`` seconds. Admitted members that nobody has heard from
for ``heartbeat`` seconds are pinged (in the dispatcher's pool, never on a sweep's path), and
dropped when a ping fails. So a sweep only reads the membership: a dead or frozen
registration costs it nothing, and a dead member is found by its heartbeat or by its job's
reply deadline (``timeout``), whichever comes first. A worker that was dropped and comes back
registers again and is admitted as a new member (reset into the session with fresh state).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time

from distlda.cluster import names, transport
from distlda.cluster.membership import Member, Membership
from distlda.errors import OwnedElsewhere

logger = logging.getLogger("distlda.dispatcher")

WORKER_PREFIX = names.WORKER_PREFIX


class Roster:
    """The membership as the name server and the workers' answers tell it.

    Parameters
    ----------
    ns_host, ns_port
        The name server.
    timeout : float
        Seconds a worker may take to answer a call before it is declared lost.
    lock : threading.RLock
        Guards the membership (shared with the dispatcher's state).
    """

    def __init__(self, ns_host, ns_port, timeout: float, lock: threading.RLock,
                 probe_every: float = 0.5, heartbeat: float = 2.0, grace: float = 30.0):
        self.ns_host, self.ns_port = ns_host, ns_port
        self.timeout = timeout
        self.lock = lock
        self.membership = Membership()
        self.probe_every, self.heartbeat, self.grace = probe_every, heartbeat, grace
        self.lost = 0
        self._failing: dict[str, tuple[float, float, float]] = {}  # name -> first, next, delay
        self._beating: set[str] = set()
        self._joining: set[str] = set()
        self._stop = threading.Event()
        #: Set once the first round has listed and pinged the registered workers: until then
        #: "no worker" would be a guess (a dispatcher that has just started).
        self.first_round = threading.Event()
        self._thread: threading.Thread | None = None
        self.pool: cf.Executor | None = None  # set by the owner: where heartbeats run
        #: This dispatcher's secret, handed to a worker when it joins a session (never to the
        #: name server): the worker then takes jobs and resets from this dispatcher only.
        self.secret = transport.new_id()
        self._refused: dict[str, float] = {}  # name -> when to ask again (owned elsewhere)

    # ------------------------------------------------------------ the prober
    def start(self, pool) -> None:
        self.pool = pool
        self._thread = threading.Thread(target=self._loop, daemon=True, name="roster")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:  # the first round at once: a new dispatcher knows its workers at once
            try:
                self.probe()
            except Exception:  # never let the prober die
                logger.exception("probing the workers failed")
            finally:
                self.first_round.set()
            if self._stop.wait(self.probe_every):
                return

    def probe(self) -> None:
        """One round: admit answering newcomers, drop leavers, back off from dead names, and
        send heartbeats to quiet members."""
        try:
            listed = transport.list_names(self.ns_host, self.ns_port, WORKER_PREFIX)
        except transport.PyroError as e:
            logger.warning("cannot list workers on the name server: %s", e)
            return
        with self.lock:
            known = dict(self.membership.members)
        now = time.monotonic()
        for name, uri in listed.items():
            m = known.get(name)
            if m is not None and str(m.uri) != str(uri):  # the same name, a new process
                self.lose(m, "it registered again at a new address", unregister=False)
                m = None
            if m is None:
                self._try_newcomer(name, uri, now)
            elif now - m.seen > self.heartbeat and name not in self._beating and self.pool:
                self._beating.add(name)
                self.pool.submit(self._beat, m)
        for name in set(known) - set(listed):
            self.lose(known[name], "it left the name server", unregister=False)
        for name in set(self._failing) - set(listed):
            del self._failing[name]

    def _try_newcomer(self, name: str, uri, now: float) -> None:
        first, due, delay = self._failing.get(name, (now, now, 0.5))
        if now < due:
            return
        try:
            transport.call(uri, "ping", timeout=min(self.timeout, 1.0))
        except Exception as e:
            delay = min(delay * 2, 30.0)
            self._failing[name] = (first, now + delay, delay)
            if now - first > self.grace:
                logger.warning("removing worker registration %s: no answer for %.0f s (%s)",
                               name, now - first, e)
                transport.unregister(self.ns_host, self.ns_port, name)
                del self._failing[name]
            else:
                logger.info("worker %s is registered but does not answer (%s); next try in "
                            "%.0f s", name, e, delay)
            return
        self._failing.pop(name, None)
        with self.lock:
            m = self.membership.admit(name, uri)
            m.seen = time.monotonic()
        logger.info("found worker %s", name)

    def _beat(self, m: Member) -> None:
        try:  # a live worker answers a ping at once, even while it samples (nogil kernels)
            transport.call(m.uri, "ping", self.secret, timeout=min(self.timeout, 2.0))
            m.seen = time.monotonic()
        except Exception as e:
            self.lose(m, f"no heartbeat: {type(e).__name__}: {e}",
                      unregister=isinstance(e, transport.CommunicationError))
        finally:
            self._beating.discard(m.name)

    # ------------------------------------------------------------ used by sweeps
    def lose(self, m: Member, why: str, unregister: bool = True) -> bool:
        """Forget ``m`` (and its registration); False if it was gone already."""
        with self.lock:
            if not self.membership.remove(m):
                return False
            self.lost += 1
        logger.warning("lost worker %s (%s); its %d shards go to the other workers", m.name, why,
                       len(m.chunks))
        if unregister:
            transport.unregister(self.ns_host, self.ns_port, m.name)
        return True

    def join(self, session: str, config, wait: float = 1.0) -> None:
        """Bring every member into ``session`` (a newcomer starts with no chunks).

        The resets run in the pool; this waits at most ``wait`` seconds for them, so a member
        that froze since it was admitted delays a sweep once by that much, never by the
        reply deadline: it joins later, or its heartbeat drops it.
        """
        now = time.monotonic()
        with self.lock:
            fresh = [m for m in self.membership.members.values()
                     if m.session != session and m.name not in self._joining
                     and self._refused.get(m.name, 0.0) <= now]
            pool = self.pool
            if not fresh:
                return
            if pool is None:
                raise RuntimeError("the roster was not started (no pool for the resets)")
            self._joining.update(m.name for m in fresh)
        cf.wait([pool.submit(self._reset, m, session, config) for m in fresh], timeout=wait)

    def _reset(self, m: Member, session: str, config) -> None:
        try:
            transport.call(m.uri, "reset", session, config.to_wire(), self.secret,
                           timeout=self.timeout)
            with self.lock:
                m.joined(session)
                m.seen = time.monotonic()
                self._refused.pop(m.name, None)
        except OwnedElsewhere as e:
            if m.name not in self._refused:
                logger.info("%s; asking again", e)
            self._refused[m.name] = time.monotonic() + 1.0  # it answers: ask again soon
        except Exception as e:
            self.lose(m, f"reset failed: {e}")
        finally:
            with self.lock:
                self._joining.discard(m.name)
