"""The operator shell (no kopf): what runs the reconciler, below the kopf handlers.

``config`` (the one frozen ``OperatorConfig``, built once from ``kubellm run``'s flags and the
environment), ``workqueue`` (the one ``WorkQueue``: per-key dedup, level-triggered re-runs,
retries with capped exponential backoff), ``operator`` (``Operator``: adapters, the reconciler,
the queue and who to wake on which event) and ``election`` (run only while holding the leader
Lease).
"""
