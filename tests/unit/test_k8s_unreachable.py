"""The apiserver unreachable or restarting is a temporary cluster error, not a bug.

Found by tests/e2e/test_faults.py (apiserver and etcd restarts): urllib3 wraps a refused or reset
connection in its own exceptions (``MaxRetryError``, ``ProtocolError``), which are not
``OSError``; they escaped ``kubellm.k8s.cluster._calling``, so the reconcile took them for a bug
(``InternalError``, a traceback per deployment), its status write failed the same way and the
worker retried only after 30 s. Now they are ``ClusterError`` (temporary, retried with backoff).
"""

from __future__ import annotations

import http.client

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from kubellm.errors import ClusterError, TemporaryError
from kubellm.k8s.cluster import _calling
from kubellm.reasons import Reason


def _refused() -> MaxRetryError:
    conn_error = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] "  # type: ignore[arg-type]
                                    "Connection refused")
    return MaxRetryError(None, "/apis/kubellm.io/v1alpha1/x", reason=conn_error)  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [
    _refused(),
    ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed")),
    ConnectionResetError(104, "Connection reset by peer"),
], ids=["refused", "reset-mid-request", "oserror"])
def test_unreachable_apiserver_is_a_temporary_cluster_error(error: Exception) -> None:
    with pytest.raises(ClusterError) as caught, _calling("patch LLMDeployment ns/a"):
        raise error
    assert isinstance(caught.value, TemporaryError)
    assert caught.value.reason == Reason.CLUSTER_ERROR
    assert caught.value.delay == 5
    assert "patch LLMDeployment ns/a" in str(caught.value)
    assert caught.value.__cause__ is error


def test_other_exceptions_are_left_alone() -> None:
    with pytest.raises(KeyError), _calling("get x"):
        raise KeyError("a bug stays a bug")
