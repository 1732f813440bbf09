"""The shared model cache: which files, which content address, and the PVC + download Job (pure).

One cache per content address ``cache_key(repo, sha, files)``: every LLMDeployment of the same
(repo, commit, file set) shares one PVC in its namespace, whatever its name (KubeAI keys by model
name + UID and downloads twice; kserve#3869). The download Job runs the project's own
``kubellm download`` in the kubellm image, bounded (retries, a deadline sized to the bytes) and
resumable (huggingface_hub resumes ``.incomplete`` files).

Contract with ``kubellm download`` (kubellm.commands.download)::

    kubellm download --repo R --revision SHA --include P [--include P ...] --cache-dir /models
                     --marker KEY --retries N --timeout S

- ``--include`` is repeated, one pattern or exact path each (``action="append"``); the files
  land in the source's cache layout under ``--cache-dir`` (``data/sources.yaml``; Hugging Face:
  ``models--org--name/snapshots/SHA``, read by serving pods with ``HF_HUB_OFFLINE=1`` and
  ``HF_HUB_CACHE=/models``; ModelScope: ``models/org--name/snapshots/REVISION``, served by path);
- ``--source S`` for a source other than Hugging Face (``modelsource.SourceLayout``);
- after success it writes ``<cache-dir>/.kubellm/<KEY>.complete`` (``CacheRef.complete_marker``);
- ``--timeout`` bounds each request (a hung Hub fails, never hangs); ``--retries`` bounds the
  attempts when the Hub is unavailable; the Job's ``activeDeadlineSeconds`` bounds the whole run.

Sizing rules (named, with rationale):

- PVC size auto = ceil(weight bytes x 1.2 + 2 GiB) in Gi. The 20 % covers filesystem overhead
  and huggingface_hub's ``.incomplete`` temporaries during a resumed download; 2 GiB covers
  config/tokenizer files and ext4 reserved blocks on small volumes.
- Job deadline = 30 min + weight bytes at 20 MiB/s (a slow, throttled Hub link): 16 GB (8B bf16)
  gets ~43 min, 141 GB (70B bf16) ~2.4 h.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import SpecError, UnsupportedError
from kubellm.facts import ModelFacts
from kubellm.modelsource import layout
from kubellm.naming import (
    ANNOTATION_CACHE_KEY,
    ANNOTATION_MODEL,
    ANNOTATION_REVISION,
    COMPONENT_DOWNLOAD,
    cache_job_name,
    cache_labels,
    cache_pvc_name,
)
from kubellm.sizing.types import Quant

GIB = 1024**3
MIB = 1024**2

MOUNT_PATH = "/models"
MARKER_DIR = ".kubellm"  # kubellm.modelinfo.download.MARKER_DIR
SIZE_FACTOR = 1.2
SIZE_EXTRA_BYTES = 2 * GIB
DOWNLOAD_BYTES_PER_SECOND = 20 * MIB
DOWNLOAD_BASE_SECONDS = 1800
DOWNLOAD_REQUEST_TIMEOUT_SECONDS = 60  # per request; slow mirrors answer within it
DOWNLOAD_RETRIES = 5  # extra attempts with exponential backoff when the Hub is unavailable
JOB_BACKOFF_LIMIT = 3  # pod restarts (crashes, evictions); resumable, so cheap
DOWNLOADER_UID = 65532  # non-root; fsGroup makes the PVC writable for it

# Non-weight files a transformers checkpoint needs: config, generation config, tokenizer
# (json, sentencepiece .model, tiktoken, vocab/merges .txt), chat template (.jinja).
# Weights are listed exactly (see cache_files), never by a wildcard that would catch
# consolidated.safetensors (Mistral's duplicate) or original/*.pth (Meta's duplicate).
TEXT_PATTERNS = ("*.jinja", "*.json", "*.model", "*.tiktoken", "*.txt")
FALLBACK_WEIGHT_PATTERN = "model*.safetensors"
_SPLIT_GGUF = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
}


@dataclass(frozen=True)
class CacheRef:
    """Where one model's files live and how they get there.

    ``model_path`` is the snapshot directory inside the mount (what TGI gets as ``--model-id``);
    ``gguf_file`` the path of the one GGUF file inside it, when the quantization is GGUF;
    ``source`` the model source (``spec.model.source``); ``served_model`` what a runtime serves
    (the repo id, or ``model_path`` for a source whose layout the engines cannot read).
    """

    key: str
    pvc_name: str
    job_name: str
    mount_path: str
    size: str
    complete_marker: str
    repo: str = ""
    revision: str = ""  # the commit sha (the revision name only when the sha is unknown)
    files: tuple[str, ...] = ()
    weight_bytes: int | None = None
    model_path: str = ""
    gguf_file: str | None = None
    source: str = "huggingface"
    served_model: str = ""


def default_image() -> str:
    """The kubellm image that runs ``kubellm download`` (``downloader.image`` in runtimes.yaml)."""
    from kubellm.runtimes.catalog import downloader_image  # data lives with the runtime images

    return downloader_image()


def parse_quantity(text: str) -> int:
    """Bytes of a Kubernetes quantity such as ``200Gi``, ``1.5Ti``, ``500G``."""
    match = _QUANTITY.match(text)
    if not match:
        raise SpecError("spec.cache.size", f"{text!r} is not a quantity", "write it like 200Gi")
    return math.ceil(float(match["num"]) * _UNITS[match["unit"]])


def _excluded(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return path.startswith("original/") or base.startswith("consolidated.")


def _gguf_stem(path: str) -> str:
    match = _SPLIT_GGUF.match(path)
    return match["stem"] if match else path


def _gguf_files(facts: ModelFacts, quant: Quant, file: str | None) -> tuple[str, ...]:
    known = sorted(f.path for f in facts.weight_files if f.path.endswith(".gguf"))
    if file:
        if known and file not in known:
            raise SpecError(
                "spec.model.file",
                f"{file!r} is not a .gguf file of {facts.repo}",
                "use one of: " + ", ".join(known),
            )
        chosen = file
    else:
        candidates = known
        if quant.gguf_type and len(known) > 1:
            wanted = quant.gguf_type.upper()
            candidates = [p for p in known if wanted in p.rsplit("/", 1)[-1].upper()]
        stems = {_gguf_stem(p) for p in candidates}
        if len(stems) != 1:
            raise SpecError(
                "spec.model.file",
                f"{facts.repo} has {len(known)} .gguf files and kubellm cannot tell which to serve",
                "set spec.model.file to one of: " + (", ".join(known) or "(none found)"),
            )
        chosen = sorted(candidates)[0]
    if _SPLIT_GGUF.match(chosen):  # every part of a split GGUF
        parts = sorted(p for p in known if _gguf_stem(p) == _gguf_stem(chosen))
        return tuple(parts or [chosen])
    return (chosen,)


def cache_files(facts: ModelFacts, quant: Quant, *, file: str | None = None) -> tuple[str, ...]:
    """The include patterns / exact files to download for the chosen quantization (sorted).

    GGUF: the one file (all parts if split), from ``file`` (spec.model.file) or the quant type.
    Otherwise: the checkpoint's ``*.safetensors`` listed exactly (never ``original/`` or
    ``consolidated.*``; ``model*.safetensors`` when the file list is unknown) plus config and
    tokenizer files. The cache key is derived from this tuple.
    """
    if quant.method == "gguf":
        return _gguf_files(facts, quant, file)
    known = [f.path for f in facts.weight_files]
    weights = sorted(p for p in known if p.endswith(".safetensors") and not _excluded(p))
    if known and not weights:
        raise UnsupportedError(
            f"{facts.repo} has no safetensors weights (found: {', '.join(sorted(known)[:5])}); "
            "kubellm serves safetensors or GGUF checkpoints: pick a repo that has them"
        )
    return tuple(sorted([*(weights or [FALLBACK_WEIGHT_PATTERN]), *TEXT_PATTERNS]))


def _weight_bytes(facts: ModelFacts, files: tuple[str, ...]) -> int | None:
    sizes = {f.path: f.size for f in facts.weight_files}
    exact = [p for p in files if p in sizes]
    if exact and all(sizes[p] is not None for p in exact):
        return sum(int(sizes[p] or 0) for p in exact)
    return facts.weight_bytes


def auto_size(weight_bytes: int) -> str:
    """PVC size for ``weight_bytes``: x1.2 + 2 GiB, rounded up to whole Gi."""
    return f"{math.ceil((weight_bytes * SIZE_FACTOR + SIZE_EXTRA_BYTES) / GIB)}Gi"


def plan_cache(
    namespace: str,
    facts: ModelFacts,
    quant: Quant,
    spec: LLMDeploymentSpec,
    *,
    image: str,
) -> CacheRef:
    """The cache of one deployment: content address, names, size, paths.

    ``namespace`` and ``image`` do not enter the key (PVCs are namespaced already; the downloader
    version does not change the bytes); they are accepted so callers pass the same context to
    every cache function.
    """
    del namespace, image
    source = layout(spec.model.source)
    sha = facts.sha or facts.revision
    files = cache_files(facts, quant, file=spec.model.file)
    key = source.cache_key(facts.repo, sha, files)
    weight_bytes = _weight_bytes(facts, files)
    if spec.cache.size != "auto":
        size = spec.cache.size
        parse_quantity(size)
    elif weight_bytes:
        size = auto_size(weight_bytes)
    else:
        raise SpecError(
            "spec.cache.size",
            f"the weight size of {facts.repo} is unknown, so the cache size cannot be computed",
            "set spec.cache.size, e.g. 200Gi",
        )
    model_path = source.snapshot_path(MOUNT_PATH, facts.repo, sha)
    return CacheRef(
        key=key,
        pvc_name=cache_pvc_name(key, facts.repo),
        job_name=cache_job_name(key, facts.repo),
        mount_path=MOUNT_PATH,
        size=size,
        complete_marker=f"{MOUNT_PATH}/{MARKER_DIR}/{key}.complete",
        repo=facts.repo,
        revision=sha,
        files=files,
        weight_bytes=weight_bytes,
        model_path=model_path,
        gguf_file=f"{model_path}/{files[0]}" if quant.method == "gguf" else None,
        source=source.name,
        served_model=source.served_model(facts.repo, model_path),
    )


def _annotations(ref: CacheRef) -> dict[str, str]:
    return {
        ANNOTATION_CACHE_KEY: ref.key,
        ANNOTATION_MODEL: ref.repo,
        ANNOTATION_REVISION: ref.revision,
    }


def render_pvc(ref: CacheRef, namespace: str, spec: LLMDeploymentSpec) -> dict[str, Any]:
    """The shared cache PVC (owner references are the operator's: one per LLMDeployment)."""
    pvc_spec: dict[str, Any] = {
        "accessModes": [spec.cache.access_mode],
        "resources": {"requests": {"storage": ref.size}},
        "volumeMode": "Filesystem",
    }
    if spec.cache.storage_class_name:
        pvc_spec["storageClassName"] = spec.cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": ref.pvc_name,
            "namespace": namespace,
            "labels": cache_labels(ref.key),
            "annotations": _annotations(ref),
        },
        "spec": pvc_spec,
    }


def download_deadline_seconds(ref: CacheRef) -> int:
    """activeDeadlineSeconds of the download Job: 30 min + the bytes at 20 MiB/s."""
    nbytes = ref.weight_bytes or math.ceil(parse_quantity(ref.size) / SIZE_FACTOR)
    return DOWNLOAD_BASE_SECONDS + math.ceil(nbytes / DOWNLOAD_BYTES_PER_SECOND)


def job_pod_spec(container: dict[str, Any], volumes: list[dict[str, Any]], *, uid: int,
                 fs_group: bool = False) -> dict[str, Any]:
    """The pod of a kubellm Job (download, evaluation): no API token, no service links, never
    restarted in place, non-root as ``uid``; ``fs_group``: volumes writable by ``uid``."""
    security: dict[str, Any] = {}
    if fs_group:
        security |= {"fsGroup": uid, "fsGroupChangePolicy": "OnRootMismatch"}
    security |= {"runAsGroup": uid, "runAsNonRoot": True, "runAsUser": uid,
                 "seccompProfile": {"type": "RuntimeDefault"}}
    return {
        "automountServiceAccountToken": False,
        "containers": [container],
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": security,
        "volumes": volumes,
    }


def render_download_job(
    ref: CacheRef,
    namespace: str,
    facts: ModelFacts,
    spec: LLMDeploymentSpec,
    *,
    image: str,
    hub_endpoint: str | None = None,
) -> dict[str, Any]:
    """The Job that runs ``kubellm download`` into the PVC (read-write), non-root, bounded.

    ``hub_endpoint``: the operator's ``HF_ENDPOINT`` (a mirror); another source's endpoint is
    ``facts.endpoint`` (``MODELSCOPE_ENDPOINT``): the Job downloads from the same place the facts
    were read from. None: the client's default (https://huggingface.co, https://modelscope.cn).
    """
    deadline = download_deadline_seconds(ref)
    args = ["download", "--repo", facts.repo, "--revision", ref.revision]
    for pattern in ref.files:
        args += ["--include", pattern]
    args += [
        "--cache-dir", ref.mount_path,
        "--marker", ref.key,
        "--retries", str(DOWNLOAD_RETRIES),
        "--timeout", str(DOWNLOAD_REQUEST_TIMEOUT_SECONDS),
    ]  # fmt: skip
    source = layout(ref.source)
    args += source.download_args()
    endpoint = hub_endpoint if source.is_default else facts.endpoint
    env = source.download_env(endpoint, spec.hub_token_secret_ref)
    container = {
        "name": "download",
        "image": image,
        "command": ["kubellm"],
        "args": args,
        "env": env,
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"memory": "4Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": "model-cache", "mountPath": ref.mount_path},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": ref.job_name,
            "namespace": namespace,
            "labels": cache_labels(ref.key, COMPONENT_DOWNLOAD),
            "annotations": _annotations(ref),
        },
        "spec": {
            "activeDeadlineSeconds": deadline,
            "backoffLimit": JOB_BACKOFF_LIMIT,
            "template": {
                "metadata": {"labels": cache_labels(ref.key, COMPONENT_DOWNLOAD)},
                "spec": job_pod_spec(
                    container,
                    [
                        {
                            "name": "model-cache",
                            "persistentVolumeClaim": {"claimName": ref.pvc_name},
                        },
                        {"name": "tmp", "emptyDir": {}},
                    ],
                    uid=DOWNLOADER_UID,
                    fs_group=True,
                ),
            },
        },
    }
