"""Shape checks of the core/v1 objects the spec passes through as free-form mappings (EnvVar,
Toleration, ResourceRequirements): a malformed one is refused with its field path."""

from __future__ import annotations

import math
import re
from typing import Any

# ---- core/v1 objects kept as free-form mappings in the schema (x-kubernetes-preserve-unknown-
# fields), so that kubellm passes them through; their shape is checked here, so that a malformed
# one is refused with its field path instead of reaching the rendered pod (the apiserver would
# refuse the Deployment) or breaking the render. Sources: k8s.io/api/core/v1 types.go (EnvVar,
# EnvVarSource, Toleration, ResourceRequirements) and apimachinery resource.Quantity.

_QUANTITY = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE]|)?$"
)
_ENV_SOURCES = ("configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef", "fileKeyRef")
_TOLERATION_OPERATORS = ("Exists", "Equal")
_TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _keys(item: object, where: str, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be {what} (a mapping), not {_kind(item)}")
    unknown = sorted(str(k) for k in item if k not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} ({what} has {', '.join(allowed)})")
    return item


def check_env_var(item: object, where: str) -> None:
    """A core/v1 EnvVar: ``name`` and one of ``value`` (a string) or ``valueFrom``."""
    env = _keys(item, where, ("name", "value", "valueFrom"), "a core/v1 EnvVar")
    name = env.get("name")
    if not isinstance(name, str) or not name or "=" in name:
        raise ValueError(f"{where}.name must be a non-empty string without '=', not {name!r}")
    if "value" in env and env["value"] is not None and not isinstance(env["value"], str):
        raise ValueError(
            f"{where}.value must be a string (quote numbers and booleans), not "
            f"{_kind(env['value'])}"
        )
    source = env.get("valueFrom")
    if source is not None:
        if env.get("value"):
            raise ValueError(f"{where}: value and valueFrom cannot both be set")
        refs = _keys(source, f"{where}.valueFrom", _ENV_SOURCES, "a core/v1 EnvVarSource")
        if len(refs) != 1 or not all(isinstance(v, dict) for v in refs.values()):
            raise ValueError(f"{where}.valueFrom must set exactly one of {', '.join(_ENV_SOURCES)}")


def check_toleration(item: object, where: str) -> None:
    """A core/v1 Toleration."""
    tol = _keys(item, where, ("key", "operator", "value", "effect", "tolerationSeconds"),
                "a core/v1 Toleration")
    for key in ("key", "value"):
        if tol.get(key) is not None and not isinstance(tol[key], str):
            raise ValueError(f"{where}.{key} must be a string, not {_kind(tol[key])}")
    if tol.get("operator") is not None and tol["operator"] not in _TOLERATION_OPERATORS:
        raise ValueError(f"{where}.operator must be Exists or Equal, not {tol['operator']!r}")
    if tol.get("effect") is not None and tol["effect"] not in _TAINT_EFFECTS:
        raise ValueError(
            f"{where}.effect must be NoSchedule, PreferNoSchedule or NoExecute, not "
            f"{tol['effect']!r}"
        )
    seconds = tol.get("tolerationSeconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)
                                or abs(seconds) > 2**63 - 1):
        raise ValueError(f"{where}.tolerationSeconds must be an integer, not {_kind(seconds)}")


def check_resources(value: object, where: str) -> None:
    """A core/v1 ResourceRequirements: limits/requests map resource names to quantities."""
    res = _keys(value, where, ("limits", "requests", "claims"), "a core/v1 ResourceRequirements")
    for section in ("limits", "requests"):
        given = res.get(section)
        if given is None:
            continue
        if not isinstance(given, dict):
            raise ValueError(f"{where}.{section} must map resource names to quantities, not "
                             f"{_kind(given)}")
        for name, quantity in given.items():
            ok = (isinstance(quantity, str) and _QUANTITY.match(quantity.strip())) or (
                isinstance(quantity, int | float) and not isinstance(quantity, bool)
                and math.isfinite(quantity) and abs(quantity) < 2**63)
            if not isinstance(name, str) or not name or not ok:
                raise ValueError(
                    f"{where}.{section}.{name}: {quantity!r} is not a quantity (write e.g. 8, "
                    "500m, 64Gi)"
                )
    claims = res.get("claims")
    if claims is not None and not (
        isinstance(claims, list)
        and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in claims)
    ):
        raise ValueError(f"{where}.claims must be a list of {{name: ...}} (core/v1 ResourceClaim)")
