"""The kubernetes-client adapter: reads, server-side apply, status patches, events.

``KubeCluster`` is the only object the reconciler talks to the apiserver through (it satisfies
``kubellm.reconcile.ports.ClusterPort``). Every write goes through ``_write`` so it is counted
(``writes`` by verb and kind, exported as a Prometheus counter by the handlers) — the e2e tests and
the benchmark read these counts to prove that a no-op reconcile writes nothing.

Writes:
- ``apply``: server-side apply (``DynamicClient.server_side_apply``) with field manager ``kubellm``
  and ``force_conflicts=True`` (kubellm owns the fields it sets), skipped when
  ``kubellm.k8s.diff.apply_reason`` finds nothing to do;
- ``patch_status``: a JSON merge patch of the ``status`` subresource, skipped when equal;
- ``scale_to_zero``: merge patch of ``spec.replicas`` (a partial *apply* would drop the other
  fields kubellm owns);
- ``delete`` and ``event``.

API errors become ``kubellm.errors``: 404 on reads -> None; 409/429/5xx/network ->
``ClusterError`` (temporary); 422/400 -> ``PermanentError`` (a rendered object the apiserver
refuses is a bug to report, not to retry in a loop).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as _k8s_config
from kubernetes import dynamic as _dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import exceptions as _dyn_exc
from urllib3.exceptions import HTTPError as TransportError

from kubellm.errors import ClusterError, PermanentError, UnsupportedError
from kubellm.k8s.diff import apply_reason, with_hash
from kubellm.reasons import Reason

# The dynamic client and the config loaders are untyped; keep the Any in one place.
k8s_config: Any = _k8s_config
DynamicClient: Any = _dynamic.DynamicClient
DynamicApiException: type[Exception] = _dyn_exc.DynamicApiError
NotFoundError: type[Exception] = _dyn_exc.NotFoundError

# What to do when a kind kubellm renders is not served (its CRD is not installed).
_KIND_HINTS = {
    "LeaderWorkerSet": (
        "multi-node serving needs the LeaderWorkerSet CRD/controller (leaderworkerset.x-k8s.io, "
        "https://lws.sigs.k8s.io) because one replica of this model spans several nodes; install "
        "it, or choose a GPU type (spec.gpu.type) or quantization (spec.quantization) that fits "
        "one node. Nothing was created"
    ),
}

FIELD_MANAGER = "kubellm"
REPORTING_COMPONENT = "kubellm"


def _raw(_client: Any, data: Any) -> Any:
    """Serializer for the dynamic client: keep the decoded JSON (a ResourceInstance costs ~10x
    the CPU for large lists and is converted back with ``to_dict`` anyway)."""
    return data


def load_api_client(kubeconfig: str | None = None) -> k8s_client.ApiClient:
    """An ApiClient from ``kubeconfig`` (a path), else in-cluster, else $KUBECONFIG/~/.kube."""
    configuration = k8s_client.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
    # One connection per concurrent reconcile thread (kopf's and the requeue pool's), else
    # urllib3 discards connections and every request pays a TLS handshake.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 32)
    return k8s_client.ApiClient(configuration)


def _translate(exc: Exception, what: str) -> Exception:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None) or getattr(exc, "summary", lambda: "")()
    text = f"{what}: HTTP {status}: {str(body)[:300]}"
    if status in (400, 422):
        return PermanentError(text, reason=Reason.INVALID_OBJECT)
    if status == 403:
        return ClusterError(text + " (check the operator's RBAC)", delay=60,
                            reason=Reason.FORBIDDEN)
    if status == 409:
        return ClusterError(text, delay=1, reason=Reason.CONFLICT)
    return ClusterError(text, delay=5)


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    """Map a failed API call onto kubellm's errors; a 404 is left to the caller (NotFoundError),
    which knows whether "missing" is an answer (get, list, delete) or a failure (patch)."""
    try:
        yield
    except NotFoundError:
        raise
    except (DynamicApiException, ApiException) as exc:
        raise _translate(exc, what) from exc
    except (OSError, TransportError) as exc:
        # The apiserver unreachable or restarting: urllib3 wraps the refused or reset
        # connection in its own exceptions (MaxRetryError, ProtocolError), not OSError.
        raise ClusterError(f"{what}: the API server is unreachable: {exc}", delay=5) from exc


class KubeCluster:
    """Thread-safe adapter over one ApiClient (the kopf executor calls it from several threads)."""

    def __init__(self, api_client: k8s_client.ApiClient,
                 on_write: Callable[[str, str], None] | None = None) -> None:
        self.api_client = api_client
        self.on_write = on_write
        self.dynamic: Any = DynamicClient(api_client)
        self.core = k8s_client.CoreV1Api(api_client)
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()

    # ---- reads -------------------------------------------------------------------------
    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except _dyn_exc.ResourceNotFoundError as exc:
            hint = _KIND_HINTS.get(kind, "install its CRD or change the spec")
            raise UnsupportedError(
                f"this cluster serves no {kind} ({api_version}): {hint}",
                reason=Reason.KIND_NOT_SERVED) from exc

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> (
        dict[str, Any] | None
    ):
        try:
            with _calling(f"get {kind} {namespace}/{name}"):
                obj = self.dynamic.get(self._resource(api_version, kind), name=name,
                                       namespace=namespace, serializer=_raw)
        except NotFoundError:
            return None
        result: dict[str, Any] = obj
        return result

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        try:
            with _calling(f"list {kind}"):
                objs = self.dynamic.get(self._resource(api_version, kind), namespace=namespace,
                                        label_selector=label_selector, serializer=_raw)
        except NotFoundError:
            return []
        items: list[dict[str, Any]] = objs.get("items") or []
        return items

    def has_kind(self, api_version: str, kind: str) -> bool:
        try:
            self._resource(api_version, kind)
        except Exception:  # not served, or discovery failed
            return False
        return True

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        import base64

        secret = self.get("v1", "Secret", name, namespace)
        data = (secret or {}).get("data") or {}
        if key not in data:
            return None
        return base64.b64decode(data[key]).decode().strip() or None

    # ---- writes ------------------------------------------------------------------------
    def _count(self, verb: str, kind: str) -> None:
        with self._lock:
            self.writes[f"{verb}:{kind}"] += 1
        if self.on_write is not None:
            self.on_write(verb, kind)

    def total_writes(self) -> int:
        with self._lock:
            return sum(self.writes.values())

    def apply(self, manifest: dict[str, Any], live: dict[str, Any] | bool | None = False) -> (
        tuple[str | None, dict[str, Any] | None]
    ):
        """Apply ``manifest`` (hash-annotated here) unless the live object already matches.

        ``live``: the live object if the caller has read it (None = known missing); ``False``
        (default) = read it here. Returns (why it was applied or None, the resulting object).
        """
        desired = with_hash(manifest)
        meta = desired["metadata"]
        kind, api_version = desired["kind"], desired["apiVersion"]
        if live is False:
            live = self.get(api_version, kind, meta["name"], meta.get("namespace"))
        assert live is not True
        why = apply_reason(desired, live)
        if why is None:
            return None, live
        self._count("apply", kind)
        with _calling(f"apply {kind} {meta.get('namespace')}/{meta['name']}"):
            obj = self.dynamic.server_side_apply(
                self._resource(api_version, kind), body=desired,
                namespace=meta.get("namespace"), field_manager=FIELD_MANAGER,
                force_conflicts=True, serializer=_raw,
            )
        result: dict[str, Any] = obj
        return why, result

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        resource = self._resource(api_version, kind)
        if subresource:
            resource = resource.subresources[subresource]
        self._count(f"patch{'/' + subresource if subresource else ''}", kind)
        try:
            with _calling(f"patch {kind} {namespace}/{name}"):
                obj = self.dynamic.patch(resource, body=patch, name=name, namespace=namespace,
                                         content_type="application/merge-patch+json",
                                         field_manager=FIELD_MANAGER, serializer=_raw)
        except NotFoundError as exc:
            raise ClusterError(f"patch {kind} {namespace}/{name}: gone", delay=1) from exc
        result: dict[str, Any] = obj
        return result

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        self._count("delete", kind)
        try:
            with _calling(f"delete {kind} {namespace}/{name}"):
                self.dynamic.delete(self._resource(api_version, kind), name=name,
                                    namespace=namespace, body={"propagationPolicy": "Background"},
                                    serializer=_raw)
        except NotFoundError:
            return False
        return True

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about ``involved`` (the caller logs failures; never fatal)."""
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:12]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": REPORTING_COMPONENT},
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": REPORTING_COMPONENT,
        }
        self._count("create", "Event")
        with _calling(f"event {reason}"):
            self.core.create_namespaced_event(namespace, body)  # type: ignore[arg-type]
