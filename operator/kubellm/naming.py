"""Names, labels and owner references of every object kubellm creates, derived in one place (pure).

Kubernetes limits (and why each function respects them):

- Service names are DNS-1035 labels: ``[a-z]([-a-z0-9]*[a-z0-9])?``, at most 63 characters. The
  Deployment shares the Service's name, so ``serving_name`` returns a DNS-1035 label.
- Label values: at most 63 characters, ``[A-Za-z0-9]`` at both ends, ``-_.`` allowed inside.
- A Job's name ends up in the ``batch.kubernetes.io/job-name`` label of its pods, so Job names are
  kept to 63 characters too (and so are PVC names, for symmetry and for ``kubectl`` columns).

An ``LLMDeployment`` name is a DNS-1123 *subdomain* (up to 253 characters, dots allowed, may start
with a digit), so it cannot always be used as is. Like kubespawner's ``slugs.py``: a name that is
already safe is kept unchanged (the common case stays readable); any other name is sanitised,
truncated, and given an 8-hex suffix hashed from the *original* text, so two different inputs never
collapse onto the same output and the result is stable across releases and Python runs.

Written by hand (no library does Kubernetes name slugs with these exact rules); ~100 lines.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

GROUP = "kubellm.io"

# Label and annotation keys (kubellm's own live under kubellm.io/).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_CACHE_KEY = f"{GROUP}/cache-key"
LABEL_RUNTIME = f"{GROUP}/runtime"
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
ANNOTATION_CACHE_KEY = f"{GROUP}/cache-key"
ANNOTATION_MODEL = f"{GROUP}/model"
ANNOTATION_REVISION = f"{GROUP}/revision"

APP_NAME = "kubellm"
MANAGED_BY = "kubellm"

# Components (values of app.kubernetes.io/component).
COMPONENT_SERVER = "server"
COMPONENT_CACHE = "model-cache"
COMPONENT_DOWNLOAD = "model-download"

# Label selectors of what kubellm manages (its watches, the GPU accounting, the cache GC).
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
SERVING_SELECTOR = f"{MANAGED_SELECTOR},{LABEL_COMPONENT}={COMPONENT_SERVER}"
CACHE_SELECTOR = f"{LABEL_CACHE_KEY},{MANAGED_SELECTOR}"

MAX_NAME = 63  # DNS-1035 / DNS-1123 label; label values
HASH_LEN = 8  # hex characters of a disambiguating suffix
CACHE_KEY_LEN = 16  # hex characters of a content address (64 bits)

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a DNS-1123 subdomain


def _hash(text: str, length: int = HASH_LEN) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _sanitize(text: str) -> str:
    """Lower-case, every run of characters outside ``[a-z0-9]`` becomes one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def is_dns1035_label(text: str) -> bool:
    return len(text) <= MAX_NAME and bool(_DNS1035.match(text))


def is_label_value(text: str) -> bool:
    return len(text) <= MAX_NAME and bool(_LABEL_VALUE.match(text))


def is_label_key(text: str) -> bool:
    """``[prefix/]name``: a DNS-1123 subdomain prefix (<= 253) and a non-empty label-value name."""
    prefix, _, name = text.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        return False
    return bool(name) and is_label_value(name)


SelectorTerm = tuple[str, str, str]  # (operator: "=", "!=", "exists", "!exists"; key; value)
_SELECTOR_TERM = re.compile(r"^\s*(!?)\s*([^=!\s]+)\s*(?:(==|=|!=)\s*(\S*))?\s*$")


def parse_selector(selector: str) -> tuple[SelectorTerm, ...]:
    """An equality-based label selector (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``,
    comma-separated) as terms; ``ValueError`` naming the first bad term."""
    terms: list[SelectorTerm] = []
    for term in selector.split(","):
        match = _SELECTOR_TERM.match(term)
        if match is None or not is_label_key(match.group(2)) or (
                match.group(1) and match.group(3)) or not is_label_value(match.group(4) or ""):
            raise ValueError(f"{term.strip()!r} is not a label selector term")
        bang, key, op, value = match.groups()
        if op is None:
            terms.append(("!exists" if bang else "exists", key, ""))
        else:
            terms.append(("!=" if op == "!=" else "=", key, value or ""))
    return tuple(terms)


def selector_matches(terms: tuple[SelectorTerm, ...], labels: dict[str, str]) -> bool:
    """Whether ``labels`` match every term (as the apiserver decides)."""
    for op, key, value in terms:
        present = key in labels
        if ((op == "exists" and not present) or (op == "!exists" and present)
                or (op == "=" and labels.get(key) != value)
                or (op == "!=" and present and labels[key] == value)):
            return False
    return True


def safe_slug(text: str, *, max_length: int = MAX_NAME, prefix: str = "llm") -> str:
    """A DNS-1035 label for ``text``: unchanged when already valid and short, else hashed.

    Invalid or long input becomes ``<sanitised, truncated>-<hash8 of the original>``; a
    sanitised form that does not start with a letter gets ``prefix-`` in front.
    """
    if len(text) <= max_length and _DNS1035.match(text):
        return text
    suffix = "-" + _hash(text)
    body = _sanitize(text)
    if not body or not body[0].isalpha():
        body = f"{prefix}-{body}" if body else prefix
    body = body[: max_length - len(suffix)].rstrip("-")
    return body + suffix


def label_value(text: str) -> str:
    """``text`` as a valid label value (kept when valid, else sanitised with a hash suffix)."""
    if is_label_value(text):
        return text
    suffix = "-" + _hash(text)
    body = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    body = body[: MAX_NAME - len(suffix)].rstrip("-_.")
    return (body + suffix) if body else suffix.lstrip("-")


def serving_name(llmd_name: str) -> str:
    """Name of the Deployment and of the Service that serve one LLMDeployment."""
    return safe_slug(llmd_name)


def cache_key(repo: str, sha: str, files: Sequence[str]) -> str:
    """Content address of a model cache: hash of repo + commit + the sorted, de-duplicated file set.

    Two LLMDeployments of the same (repo, revision, files) share one cache whatever their names.
    """
    canonical = "\n".join([repo, sha, *sorted(set(files))])
    return _hash(canonical, CACHE_KEY_LEN)


def _cache_object_name(kind: str, key: str, repo: str) -> str:
    # kubellm-<kind>-<repo slug>-<key>; the key already makes it unique, the slug is for humans.
    head = f"kubellm-{kind}-"
    tail = f"-{key}"
    room = MAX_NAME - len(head) - len(tail)
    slug = _sanitize(repo.split("/")[-1])[:room].strip("-")
    return f"{head}{slug}{tail}" if slug else f"kubellm-{kind}-{key}"


def cache_pvc_name(key: str, repo: str) -> str:
    """The shared cache PVC of one content address."""
    return _cache_object_name("cache", key, repo)


def cache_job_name(key: str, repo: str) -> str:
    """The download Job that fills that PVC."""
    return _cache_object_name("dl", key, repo)


def labels(llmd_name: str, component: str) -> dict[str, str]:
    """The labels of every object made for one LLMDeployment (sorted keys)."""
    value = label_value(llmd_name)
    return dict(
        sorted(
            {
                LABEL_NAME: APP_NAME,
                LABEL_INSTANCE: value,
                LABEL_COMPONENT: component,
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_DEPLOYMENT: value,
            }.items()
        )
    )


def selector_labels(llmd_name: str) -> dict[str, str]:
    """The serving pods' selector. Immutable on a Deployment: never add runtime or version here."""
    return dict(
        sorted(
            {
                LABEL_NAME: APP_NAME,
                LABEL_INSTANCE: label_value(llmd_name),
                LABEL_COMPONENT: COMPONENT_SERVER,
            }.items()
        )
    )


def selector_string(llmd_name: str) -> str:
    """``selector_labels`` as a selector string (status.selector, for the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(llmd_name).items())


def cache_labels(key: str, component: str = COMPONENT_CACHE) -> dict[str, str]:
    """Labels of the shared cache objects (PVC, download Job): shared, so no deployment label."""
    return dict(
        sorted(
            {
                LABEL_NAME: APP_NAME,
                LABEL_COMPONENT: component,
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_CACHE_KEY: label_value(key),
            }.items()
        )
    )


def owner_reference(
    api_version: str, kind: str, name: str, uid: str, controller: bool = True
) -> dict[str, Any]:
    """An ownerReference. Use ``controller=False`` for the shared cache PVC (one per owner)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def with_owner(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with ``owner`` added to metadata.ownerReferences (once, by uid)."""
    meta = dict(obj.get("metadata", {}))
    refs = [r for r in meta.get("ownerReferences", []) if r.get("uid") != owner.get("uid")]
    refs.append(owner)
    meta["ownerReferences"] = sorted(refs, key=lambda r: str(r.get("uid")))
    return {**obj, "metadata": meta}
