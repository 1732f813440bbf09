"""Decide whether a desired child object must be (re)applied: the zero-write no-op check.

Server-side apply is idempotent, but every apply is still a write request. The operator applies a
child only when one of these holds (``apply_reason`` names which):

1. ``missing``  — the live object does not exist (deleted by hand, or first reconcile);
2. ``changed``  — the live object's ``kubellm.io/desired-hash`` annotation differs from the hash of
   the desired manifest (the spec, facts, policy or renderer changed; also catches fields kubellm
   stopped setting, which a subset comparison cannot see);
3. ``drifted``  — some field of the desired manifest differs in the live object (someone edited a
   field kubellm owns, e.g. ``kubectl scale deploy`` or ``kubectl edit``).

The drift check is a *subset* comparison: every value in the desired manifest must be present and
equal in the live object; fields the apiserver or other controllers add (defaults, status,
``managedFields``) are ignored. Lists of objects with a ``name`` key (containers, env, ports,
volumes) are matched by name, other lists element-wise. Scalars compare as equal when their string
forms match (``1`` vs ``"1"`` for quantities and ports). Hand-written instead of a library because
it is a few lines and must know these Kubernetes conventions. Pure: no kubernetes import.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

HASH_ANNOTATION = "kubellm.io/desired-hash"


def desired_hash(manifest: dict[str, Any]) -> str:
    """A stable hash of a manifest (without its own hash annotation): sorted-key JSON, sha256."""
    clean = copy.deepcopy(manifest)
    annotations = clean.get("metadata", {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(HASH_ANNOTATION, None)
        if not annotations:
            clean["metadata"].pop("annotations")
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``manifest`` carrying its hash annotation."""
    out = copy.deepcopy(manifest)
    meta = out.setdefault("metadata", {})
    meta.setdefault("annotations", {})[HASH_ANNOTATION] = desired_hash(manifest)
    return out


def first_difference(desired: Any, live: Any, path: str = "") -> str | None:
    """The path of the first desired value missing or different in ``live``; None if contained."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return path or "."
        for key in sorted(desired):
            if key not in live:
                if desired[key] in (None, {}, []):
                    continue  # empty values are dropped by the apiserver
                return f"{path}.{key}"
            found = first_difference(desired[key], live[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(live, list):
            return path or "."
        if desired and all(isinstance(d, dict) and "name" in d for d in desired) and all(
            isinstance(x, dict) for x in live
        ):
            live_by_name = {x.get("name"): x for x in live}
            for item in desired:
                other = live_by_name.get(item["name"])
                if other is None:
                    return f"{path}[{item['name']}]"
                found = first_difference(item, other, f"{path}[{item['name']}]")
                if found:
                    return found
            return None
        if len(desired) != len(live):
            return f"{path}[len]"
        for index, (d, x) in enumerate(zip(desired, live, strict=True)):
            found = first_difference(d, x, f"{path}[{index}]")
            if found:
                return found
        return None
    if desired == live:
        return None
    if desired is not None and live is not None and str(desired) == str(live):
        return None
    return path or "."


def apply_reason(desired: dict[str, Any], live: dict[str, Any] | None) -> str | None:
    """Why ``desired`` (with its hash annotation) must be applied over ``live``; None: no write.

    Returns ``missing``, ``changed`` or ``drifted:<path>``.
    """
    if live is None:
        return "missing"
    want = desired.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
    have = (live.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    if want is None or want != have:
        return "changed"
    drift = first_difference(desired, live)
    if drift:
        return f"drifted:{drift}"
    return None
