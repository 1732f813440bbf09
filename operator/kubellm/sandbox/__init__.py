"""A real local Kubernetes with simulated GPU nodes, for development, demos and e2e tests.

No Docker: the real kube-apiserver, etcd, kube-controller-manager and kube-scheduler run as
processes on 127.0.0.1 and kwok simulates nodes labelled like NVIDIA GPU Feature Discovery does.

- :mod:`~kubellm.sandbox.versions`  the one place that pins every version; cache paths
- :mod:`~kubellm.sandbox.install`   ``kubellm sandbox install``: build the binaries with Go
- :mod:`~kubellm.sandbox.cluster`   ``Sandbox``: ``up`` / ``down`` / ``status`` of one sandbox
- :mod:`~kubellm.sandbox.nodes`     node-pool file -> simulated GPU Nodes
- :mod:`~kubellm.sandbox.stages`    kwok Stages: pods Ready, Jobs complete, ``sandbox-fail``
- :mod:`~kubellm.sandbox.pki`, :mod:`~kubellm.sandbox.ports`, :mod:`~kubellm.sandbox.process`
- :mod:`~kubellm.sandbox.harness`   ``sandbox_cluster()`` context manager and ``Cluster``
- :mod:`~kubellm.sandbox.pytest_plugin`  the session ``cluster`` fixture
"""
