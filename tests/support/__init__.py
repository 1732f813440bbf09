"""Shared test helpers: an in-memory ``ClusterPort`` (``support.cluster``), real-shaped objects
and model facts (``support.objects``), and a reconciler wired to them with the real planner
(``support.reconcile``). Nothing here re-implements kubellm's own decisions."""
