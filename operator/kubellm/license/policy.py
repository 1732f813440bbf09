"""Which LicensePolicy governs a namespace, and the built-in default when none does.

Specificity, most specific first: a namespace listed by its exact name; then a glob (fnmatch),
the one with more literal characters first; then a policy with an empty ``namespaces`` list
(covers every namespace). Ties go to the policy whose ``metadata.name`` sorts first, so the choice
never depends on the order the apiserver lists policies in.

Default (no policy covers the namespace): the defaults of ``LicensePolicySpec`` - Enforce;
permissive and restrictive-community classes; commercial use (so non-commercial / research-only
licences are denied); gated repos allowed; unknown licences denied (an unknown licence may be
anything, including non-commercial, so the safe default is to refuse and let an admin opt in with
``unknownLicense: Warn`` or an exception).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from kubellm.api.v1alpha1 import LicensePolicy, LicensePolicySpec

DEFAULT_POLICY_NAME = "(built-in default)"
_GLOB_CHARS = frozenset("*?[")


def default_policy_spec() -> LicensePolicySpec:
    """The policy applied when no LicensePolicy covers the namespace (see module docstring)."""
    return LicensePolicySpec()


def _specificity(policy: LicensePolicy, namespace: str) -> tuple[int, int] | None:
    patterns = policy.spec.namespaces
    if not patterns:
        return (0, 0)
    best: tuple[int, int] | None = None
    for pattern in patterns:
        if not _GLOB_CHARS & set(pattern):
            score = (2, len(pattern)) if pattern == namespace else None
        elif fnmatch.fnmatchcase(namespace, pattern):
            score = (1, sum(1 for ch in pattern if ch not in _GLOB_CHARS))
        else:
            score = None
        if score is not None and (best is None or score > best):
            best = score
    return best


def select_policy(policies: Sequence[LicensePolicy], namespace: str) -> LicensePolicy | None:
    """The policy governing ``namespace`` (most specific match, then name), or None."""
    ranked: list[tuple[tuple[int, int], str, LicensePolicy]] = []
    for policy in policies:
        score = _specificity(policy, namespace)
        if score is not None:
            ranked.append((score, policy.metadata.name or "", policy))
    if not ranked:
        return None
    ranked.sort(key=lambda item: (-item[0][0], -item[0][1], item[1]))
    return ranked[0][2]
