"""How a model finds the cluster: the serial/distributed decision (filled in by the cluster issue)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def choose_executor(distributed, ns_conf: dict, workers: int):
    """Return a cluster executor, or None to train in-process.

    distributed=False never touches the network; None falls back to serial when no dispatcher
    is registered; True raises when there is none.
    """
    if distributed is True:
        raise RuntimeError("distributed=True, but distributed mode is not available yet")
    logger.info("serial: training in-process with %d thread(s)", workers)
    return None
