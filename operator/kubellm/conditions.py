"""Status conditions of an LLMDeployment (pure).

Four stage conditions and one summary, in this order::

    LicenseApproved   the licence policy allows the model (or Warn mode lets it through)
    Sized             a GPU configuration of the live inventory holds the model
    CacheReady        the shared model cache is downloaded (its Job succeeded)
    Available         at least one serving replica is Ready
    Ready             summary: True only when the four above are True

Rules kept here so the operator and the tests share them:

- ``lastTransitionTime`` changes only when ``status`` changes (Kubernetes convention), so a
  reconcile that finds the same state produces byte-identical conditions and no write;
- every condition carries the ``observedGeneration`` it was computed for;
- reasons are CamelCase (``camel_reason`` turns free text such as a Job's reason into one);
- ``transitions`` lists what changed between two condition lists, for events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from kubellm import reasons
from kubellm.api.v1alpha1 import Condition
from kubellm.reasons import Reason

Status = Literal["True", "False", "Unknown"]

LICENSE_APPROVED = "LicenseApproved"
SIZED = "Sized"
CACHE_READY = "CacheReady"
AVAILABLE = "Available"
READY = "Ready"
STAGES: tuple[str, ...] = (LICENSE_APPROVED, SIZED, CACHE_READY, AVAILABLE)
ORDER: tuple[str, ...] = (*STAGES, READY)

_CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def now_rfc3339(now: datetime | None = None) -> str:
    """``2026-11-27T10:00:00Z`` (seconds precision, UTC), as metav1.Time serialises."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def camel_reason(text: str | None, default: str = "Unknown") -> str:
    """A CamelCase reason from any text: ``BackoffLimitExceeded`` stays, ``deadline exceeded``
    becomes ``DeadlineExceeded``; empty text gives ``default``."""
    if text and _CAMEL.match(text):
        return text
    words = re.findall(r"[A-Za-z0-9]+", text or "")
    out = "".join(w[:1].upper() + w[1:] for w in words)
    if not out or not out[0].isalpha():
        out = default + out
    return out


@dataclass(frozen=True)
class Want:
    """A condition as the reconciler wants it, before times and generations are filled in."""

    type: str
    status: Status
    reason: str
    message: str = ""


def merge(
    old: Sequence[Condition],
    wanted: Iterable[Want],
    *,
    generation: int | None,
    now: datetime | None = None,
) -> list[Condition]:
    """The new condition list: ``wanted`` applied over ``old``.

    A condition whose status is unchanged keeps its ``lastTransitionTime``; reason, message
    and ``observedGeneration`` are refreshed. Conditions in ``old`` that ``wanted`` does not
    mention are kept unchanged. The result is ordered (``ORDER`` first, then others by type)
    so equal states serialise identically.
    """
    by_type: dict[str, Condition] = {c.type: c for c in old}
    stamp = now_rfc3339(now)
    for want in wanted:
        reason = camel_reason(want.reason)
        previous = by_type.get(want.type)
        if previous is not None and previous.status == want.status:
            transition = previous.last_transition_time
        else:
            transition = stamp
        by_type[want.type] = Condition(
            type=want.type,
            status=want.status,
            reason=reason,
            message=want.message,
            last_transition_time=transition,
            observed_generation=generation,
        )
    return sorted(by_type.values(), key=_order_key)


def _order_key(condition: Condition) -> tuple[int, str]:
    try:
        return (ORDER.index(condition.type), "")
    except ValueError:
        return (len(ORDER), condition.type)


def summarize(stages: Sequence[Want]) -> Want:
    """The ``Ready`` summary of the stage conditions.

    True when every stage is True (reason ``Ready``; the message lists stage warnings, e.g. a
    licence allowed with warnings). Otherwise the first stage (in ``STAGES`` order) that is
    False decides (Ready=False with that stage's reason and message); failing that, the first
    Unknown one (Ready=Unknown). A missing stage counts as Unknown.
    """
    by_type = {w.type: w for w in stages}
    ordered = [by_type.get(t, Want(t, "Unknown", Reason.NOT_EVALUATED, f"{t} not evaluated yet"))
               for t in STAGES]
    for status in ("False", "Unknown"):
        for want in ordered:
            if want.status == status:
                message = f"{want.type}: {want.message}" if want.message else want.type
                return Want(READY, want.status, want.reason, message)
    notes = [w.message for w in ordered if w.reason not in _PLAIN_TRUE_REASONS and w.message]
    return Want(READY, "True", Reason.READY, "; ".join(notes) if notes else "Serving")


# Reasons of True stages that need no mention in the Ready message (the others carry a note:
# the licence warnings, the cache being disabled).
_PLAIN_TRUE_REASONS: frozenset[str] = frozenset(
    {Reason.ALLOWED, Reason.FITS, Reason.DOWNLOADED, Reason.MINIMUM_REPLICAS_AVAILABLE}
)


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None


@dataclass(frozen=True)
class Transition:
    """A condition whose status or reason changed; one event each."""

    type: str
    old_status: str | None
    new: Condition

    @property
    def warning(self) -> bool:
        """A condition going False is a Warning, unless it is only progressing (downloading,
        rolling out, scaled to zero on request); so is a licence allowed only with warnings
        (a Warn-mode policy letting through what Enforce would deny)."""
        if self.new.reason in WARNING_REASONS:
            return True
        return self.new.status == "False" and self.new.reason not in PROGRESSING_REASONS


# False-but-fine reasons: the deployment is on its way, or at rest as asked; nothing needs a
# human (kubellm.reasons: the WAITING and IDLE categories).
PROGRESSING_REASONS: frozenset[str] = reasons.of(reasons.Category.WAITING, reasons.Category.IDLE)


# True-but-worth-a-Warning reasons.
WARNING_REASONS: frozenset[str] = frozenset({Reason.ALLOWED_WITH_WARNINGS})


def transitions(old: Sequence[Condition], new: Sequence[Condition]) -> list[Transition]:
    """Conditions in ``new`` whose status or reason differs from ``old`` (or that are new)."""
    before = {c.type: c for c in old}
    out: list[Transition] = []
    for condition in new:
        previous = before.get(condition.type)
        if (
            previous is None
            or previous.status != condition.status
            or previous.reason != condition.reason
        ):
            out.append(
                Transition(condition.type, previous.status if previous else None, condition)
            )
    return out
