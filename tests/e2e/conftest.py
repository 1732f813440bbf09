"""e2e tests run against a real apiserver: the local sandbox (started once per session by the
``cluster`` fixture), or the current kubeconfig with USE_EXISTING_CLUSTER=true.

The fixtures come from the plugin module ``kubellm.sandbox.pytest_plugin``. They are imported
here rather than listed in ``pytest_plugins``: pytest refuses ``pytest_plugins`` in a conftest
below the rootdir when the whole ``tests/`` tree is collected.
"""

from kubellm.sandbox.pytest_plugin import cluster, namespace, real_node

__all__ = ["cluster", "namespace", "real_node"]
