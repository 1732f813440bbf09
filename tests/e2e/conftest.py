"""e2e tests run against a real apiserver: the local sandbox (started once per session by the
``cluster`` fixture), or the current kubeconfig with USE_EXISTING_CLUSTER=true."""

pytest_plugins = ["kubellm.sandbox.pytest_plugin"]
