"""Evaluate what was deployed: application checks against the deployment's endpoint (pure).

- ``checks``: read and validate checks (inline or a ConfigMap key's JSON Lines / YAML) and score
  one answer (contains, regex, exact, jsonSchema, numeric);
- ``runner``: send every check through a ``Complete`` function and score it (the HTTP adapter is
  ``kubellm.endpoint``);
- ``report``: the weighted pass rate, the bounded termination message, ``status.evaluation`` and
  the ``Evaluated`` condition;
- ``job``: the evaluation Job, keyed by (generation, revision, spec hash).
"""
