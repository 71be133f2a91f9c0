"""The cluster: how a training runs on Pyro5 workers with exact counts.

State is kept apart from transport; only :mod:`~distlda.cluster.transport` talks to Pyro5:

- :mod:`~distlda.cluster.messages`: every message as a frozen class that checks itself on
  arrival (:class:`~distlda.cluster.messages.ProtocolError` names the field);
  :mod:`~distlda.cluster.codec`: numpy arrays inside msgpack.
- :mod:`~distlda.cluster.transport`: name server, registration, serving, proxies with
  timeouts, polled jobs, errors that cross typed (:mod:`distlda.errors`); :mod:`~distlda.cluster.process`: the processes' options and logging.
- Dispatcher side, pure: :mod:`~distlda.cluster.membership` (the workers and what they hold),
  :mod:`~distlda.cluster.plan` (which worker sweeps which chunk and block),
  :mod:`~distlda.cluster.ledger` (the committed state: results read, checked, committed and
  forwarded), :mod:`~distlda.cluster.step` (one step's decisions: events in, actions out),
  :mod:`~distlda.cluster.telemetry`. :mod:`~distlda.cluster.coordinator` runs a session's
  sweeps on them through the transport.
- Worker side, pure: :mod:`~distlda.cluster.worker_session` (chunks, the model slice, a job
  in named phases).
- :mod:`~distlda.cluster.client`: the executor ``LdaModel`` uses; :mod:`~distlda.cluster.
  _kernels`: the compiled helpers.

The process shells that users start are :mod:`distlda.models.lda_worker` and
:mod:`distlda.models.lda_dispatcher`.
"""
