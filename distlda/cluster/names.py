"""The cluster's names in the Pyro5 name server, in one place.

The dispatcher registers as :data:`DISPATCHER`; each worker as ``WORKER_PREFIX + host.pid``
(:func:`worker_name`). The client looks the dispatcher up, the dispatcher lists the workers by
prefix, and the name server checks these registrations alone (:data:`CHECKED`).
"""

from __future__ import annotations

#: The dispatcher's registration (and its metadata tag).
DISPATCHER = "distlda.dispatcher"
#: Every worker's registration starts with this.
WORKER_PREFIX = "distlda.worker."
#: Registrations the name server checks and removes when they stop answering.
CHECKED = (WORKER_PREFIX, DISPATCHER)


def worker_name(host: str, pid: int) -> str:
    """A worker's default registration: ``distlda.worker.<host>.<pid>``."""
    return f"{WORKER_PREFIX}{host}.{pid}"
