"""kwok Stages and the default StorageClass: how simulated nodes, pods and volumes behave.

kwok v0.8 ships no built-in behaviour, so the sandbox passes these Stage objects (written here
against the kwok ``kwok.x-k8s.io/v1alpha1`` Stage API) in its ``--config`` file:

- nodes: become Ready with the capacity the node-pool file set, and keep a status heartbeat (kwok
  also renews their Leases, ``--node-lease-duration-seconds``);
- pods scheduled on a kwok node become Running and Ready; pods owned by a Job then Succeed
  (exit code 0); pods with a deletionTimestamp are removed at once (there is no kubelet);
- PVCs of the default StorageClass ``kubellm-sandbox`` get a PersistentVolume and bind at once.

Annotations a test can put on a pod (or a Job's pod template) to steer it:

``kubellm.io/sandbox-fail: "true"``
    every container terminates with exit code 1 (reason ``Error``) and the pod phase becomes
    ``Failed``: a failing download Job, a crashing server. ``kubellm.io/sandbox-exit-code: "N"``
    changes the exit code.
``kubellm.io/sandbox-delay: "<go duration>"`` (e.g. ``"5s"``)
    wait that long before a Job pod succeeds or an annotated pod fails (default: at once).
"""

from __future__ import annotations

from typing import Any

from kubellm.sandbox import versions

FAIL_ANNOTATION = "kubellm.io/sandbox-fail"
EXIT_CODE_ANNOTATION = "kubellm.io/sandbox-exit-code"
DELAY_ANNOTATION = "kubellm.io/sandbox-delay"
STORAGE_CLASS = "kubellm-sandbox"
PROVISIONER = "sandbox.kubellm.io/volume"
_API = "kwok.x-k8s.io/v1alpha1"

_NOT_DELETING = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_NOT_FAILING = {
    "key": f'.metadata.annotations["{FAIL_ANNOTATION}"]',
    "operator": "NotIn",
    "values": ["true"],
}
_FAILING = {
    "key": f'.metadata.annotations["{FAIL_ANNOTATION}"]',
    "operator": "In",
    "values": ["true"],
}
_ANNOTATION_DELAY = {
    "durationMilliseconds": 0,
    "durationFrom": {"expressionFrom": f'.metadata.annotations["{DELAY_ANNOTATION}"]'},
}


def _stage(
    name: str,
    kind: str,
    selector: list[dict[str, Any]],
    *,
    next_: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    delay: dict[str, Any] | None = None,
    weight: int = 0,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "resourceRef": {"apiGroup": "v1", "kind": kind},
        "selector": {"matchExpressions": selector},
    }
    if weight:
        spec["weight"] = weight
    if delay:
        spec["delay"] = delay
    if next_ is not None:
        spec["next"] = next_
    if steps is not None:
        spec["steps"] = steps
    return {"apiVersion": _API, "kind": "Stage", "metadata": {"name": name}, "spec": spec}


_NODE_CONDITIONS = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
"""

_NODE_READY = (
    _NODE_CONDITIONS
    + """\
addresses:
- address: {{ NodeIP | Quote }}
  type: InternalIP
- address: {{ .metadata.name | Quote }}
  type: Hostname
allocatable:
{{ YAML .status.allocatable 1 }}
capacity:
{{ YAML .status.capacity 1 }}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: KUBELET_VERSION
  kubeProxyVersion: KUBELET_VERSION
  containerRuntimeVersion: {{ printf "kwok-%s" Version | Quote }}
  kernelVersion: {{ printf "kwok-%s" Version | Quote }}
  osImage: kubellm sandbox (kwok)
  bootID: ""
  machineID: ""
  systemUUID: ""
phase: Running
"""
)

# Shared fragments of the pod status templates (kwok Go templates, not Python formats).
_POD_IPS = """\
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
"""


def _terminated_containers(exit_code: str, reason: str, message: str | None = None) -> str:
    """``containerStatuses`` with every container terminated with ``exit_code``."""
    note = f'      message: "{message}"\n' if message else ""
    return (
        "containerStatuses:\n"
        "{{ range .spec.containers }}\n"
        "- name: {{ .name | Quote }}\n"
        "  image: {{ .image | Quote }}\n"
        "  ready: false\n"
        "  started: false\n"
        "  restartCount: 0\n"
        "  state:\n"
        "    terminated:\n"
        f"      exitCode: {exit_code}\n"
        f"      reason: {reason}\n" + note + "      startedAt: {{ $now | Quote }}\n"
        "      finishedAt: {{ $now | Quote }}\n"
        "{{ end }}\n"
    )


_POD_RUNNING = (
    """\
{{ $now := Now }}
conditions:
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
{{ range .spec.readinessGates }}
- {type: {{ .conditionType | Quote }}, status: "True", lastTransitionTime: {{ $now | Quote }}}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  restartCount: 0
  state:
    terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, \
finishedAt: {{ $now | Quote }}}
{{ end }}
"""
    + _POD_IPS
    + """\
phase: Running
startTime: {{ $now | Quote }}
"""
)

_POD_TERMINATED = (
    """\
{{ $now := Now }}
{{ $annotations := or .metadata.annotations dict }}
{{ $code := or ( index $annotations "EXIT_CODE_ANNOTATION" ) "1" }}
conditions:
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: PodFailed, lastTransitionTime: {{ $now | Quote \
}}}
- {type: Ready, status: "False", reason: PodFailed, lastTransitionTime: {{ $now | Quote }}}
""".replace("EXIT_CODE_ANNOTATION", EXIT_CODE_ANNOTATION)
    + _terminated_containers(
        "{{ $code }}", "Error", f"failed on purpose: pod annotated {FAIL_ANNOTATION}"
    )
    + _POD_IPS
    + """\
phase: Failed
startTime: {{ or .status.startTime $now | Quote }}
"""
)

_POD_SUCCEEDED = (
    """\
{{ $now := Now }}
conditions:
- {type: ContainersReady, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now \
| Quote }}}
- {type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
"""
    + _terminated_containers("0", "Completed")
    + "phase: Succeeded\n"
)

_PV_FOR_PVC = """\
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pvc-{{ .metadata.uid }}
  annotations:
    pv.kubernetes.io/provisioned-by: PROVISIONER
spec:
  accessModes:
  {{ YAML .spec.accessModes 1 }}
  capacity:
    storage: {{ .spec.resources.requests.storage | Quote }}
  persistentVolumeReclaimPolicy: Delete
  storageClassName: {{ .spec.storageClassName | Quote }}
  volumeMode: {{ or .spec.volumeMode "Filesystem" | Quote }}
  claimRef:
    apiVersion: v1
    kind: PersistentVolumeClaim
    name: {{ .metadata.name | Quote }}
    namespace: {{ .metadata.namespace | Quote }}
    uid: {{ .metadata.uid | Quote }}
  hostPath:
    path: /nonexistent/kubellm-sandbox/pvc-{{ .metadata.uid }}
""".replace("PROVISIONER", PROVISIONER)


def stages() -> list[dict[str, Any]]:
    """All Stage objects the sandbox's kwok runs with."""
    in_class = {"cel": {"expression": f"self.spec.storageClassName == '{STORAGE_CLASS}'"}}
    return [
        _stage(
            "kubellm-node-ready",
            "Node",
            [
                {
                    "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                    "operator": "NotIn",
                    "values": ["True"],
                }
            ],
            next_={"statusTemplate": _NODE_READY.replace("KUBELET_VERSION", versions.KUBERNETES)},
        ),
        _stage(
            "kubellm-node-heartbeat",
            "Node",
            [
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {
                    "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                    "operator": "In",
                    "values": ["True"],
                },
            ],
            delay={"durationMilliseconds": 60_000, "jitterDurationMilliseconds": 90_000},
            next_={"statusTemplate": _NODE_CONDITIONS},
        ),
        _stage(
            "kubellm-pod-ready",
            "Pod",
            [
                _NOT_DELETING,
                _NOT_FAILING,
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ],
            next_={"statusTemplate": _POD_RUNNING},
        ),
        _stage(
            "kubellm-pod-complete",
            "Pod",
            [
                _NOT_DELETING,
                _NOT_FAILING,
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
            ],
            delay=_ANNOTATION_DELAY,
            next_={"statusTemplate": _POD_SUCCEEDED},
        ),
        _stage(
            "kubellm-pod-fail",
            "Pod",
            [
                _NOT_DELETING,
                _FAILING,
                {"key": ".status.phase", "operator": "In", "values": ["Pending", "Running"]},
            ],
            delay=_ANNOTATION_DELAY,
            weight=10_000,
            next_={"statusTemplate": _POD_TERMINATED},
        ),
        _stage(
            "kubellm-pod-delete",
            "Pod",
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            next_={"delete": True},
        ),
        _stage(
            "kubellm-pvc-provision",
            "PersistentVolumeClaim",
            [
                in_class,
                {"cel": {"expression": "!has(self.metadata.deletionTimestamp)"}},
                {"cel": {"expression": "!has(self.spec.volumeName)"}},
            ],
            steps=[{"apply": {"template": _PV_FOR_PVC}}],
        ),
        _stage(
            "kubellm-pv-delete",
            "PersistentVolume",
            [
                in_class,
                {"cel": {"expression": "!has(self.metadata.deletionTimestamp)"}},
                {"cel": {"expression": "self.status.phase == 'Released'"}},
            ],
            steps=[{"delete": True}],
        ),
    ]


def storage_class() -> dict[str, Any]:
    """The default StorageClass; the PV controller binds the PVs the stage above creates."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }
