"""Decide whether a model may be served under a LicensePolicy (pure, deterministic).

Rules, each producing a machine-readable reason (rule, effect, message, fact + source):

- ``deniedLicenses``  any licence of the base_model chain listed -> deny
- ``unknownLicense``  class unknown -> deny (Deny) or warn (Warn), naming the missing facts
                      (no licence in a card, other without license_name, a name or id the
                      catalogue lacks, an unreadable base model, an id such as cc that does
                      not say which licence)
- ``allowedLicenses`` the effective licence listed -> allowed whatever its class
- ``allowedClasses``  class not listed -> deny
- ``commercialUse``   commercial policy and a non-commercial licence in the chain -> deny
- ``monthlyActiveUsers`` declared users above the licence's threshold -> deny
- ``jurisdiction``    licensee domicile inside a geographic exclusion -> deny (warn when the
                      exclusion covers multimodal models only and multimodality is unknown)
- ``requireOpenSource`` model not open source (weights + data + code) -> deny
- ``allowGated``      gated repo and gated repos not allowed -> deny
- ``exception``       a matching, unexpired exception turns every denial into info
- mode ``Warn``       turns every remaining denial into a warning

``allowedLicenses`` only lifts the class rules: commercial use, user thresholds and jurisdiction
are terms of the licence itself, so only an exception (a recorded sign-off) overrides them.
"""

from __future__ import annotations

import datetime
import fnmatch
from dataclasses import dataclass, replace
from typing import Any, Literal

from kubellm.api.v1alpha1 import (
    Decision,
    LicenseDecisionStatus,
    LicenseException,
    LicensePolicy,
    LicensePolicySpec,
    LicenseReason,
)
from kubellm.errors import SpecError
from kubellm.facts import ModelFacts
from kubellm.license.catalog import region_matches
from kubellm.license.classify import EffectiveLicense, classify
from kubellm.license.policy import DEFAULT_POLICY_NAME, default_policy_spec

Effect = Literal["deny", "warn", "allow", "info"]


@dataclass(frozen=True)
class Reason:
    """One machine-readable reason: the rule, what it did, what it found, and the fact used."""

    rule: str
    effect: Effect
    message: str
    fact: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "effect": self.effect,
            "message": self.message,
            "fact": self.fact,
        }


@dataclass(frozen=True)
class LicenseDecision:
    """The outcome of ``decide``: ``allowed`` is False only when ``decision`` is Denied."""

    decision: Decision
    allowed: bool
    license: EffectiveLicense
    reasons: tuple[Reason, ...]
    obligations: tuple[str, ...]
    policy_name: str | None
    mode: Literal["Enforce", "Warn"]
    repo: str = ""

    @property
    def denials(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r.effect == "deny")

    @property
    def warnings(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r.effect == "warn")

    def summary(self) -> str:
        """One sentence for a condition message."""
        lic = self.license
        head = f"{self.repo}: licence {lic.label} ({lic.class_}) {self.decision}"
        picked = self.denials or self.warnings
        if picked:
            head += ": " + "; ".join(r.message for r in picked)
        return head

    def to_status(self) -> LicenseDecisionStatus:
        return LicenseDecisionStatus.model_validate(
            {
                "id": self.license.id,
                "name": self.license.name,
                "class": self.license.class_,
                "decision": self.decision,
                "allowed": self.allowed,
                "openness": self.license.openness,
                "policy": self.policy_name,
                "reasons": [
                    LicenseReason(rule=r.rule, effect=r.effect, message=r.message, fact=r.fact)
                    for r in self.reasons
                ],
                "obligations": list(self.obligations),
                "declared": self.license.declared,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        lic = self.license
        return {
            "model": self.repo,
            "id": lic.id,
            "name": lic.name,
            "class": lic.class_,
            "commercial": lic.commercial,
            "mauLimit": lic.mau_limit,
            "from": lic.from_repo,
            "declared": lic.declared,
            "allowed": self.allowed,
            "decision": self.decision,
            "reasons": [r.to_dict() for r in self.reasons],
            "obligations": list(self.obligations),
            "openness": lic.openness,
            "policy": self.policy_name,
            "mode": self.mode,
            "source": lic.source,
            "missing": list(lic.missing),
        }


def _gated(facts: ModelFacts) -> bool:
    return bool(facts.gated) and str(facts.gated).lower() not in ("false", "none", "0")


def _exception_expiry(exc: LicenseException, index: int) -> datetime.date | None:
    if exc.expires is None:
        return None
    try:
        return datetime.date.fromisoformat(exc.expires)
    except ValueError:
        raise SpecError(
            f"spec.exceptions[{index}].expires",
            f"{exc.expires!r} is not a date",
            "write it as YYYY-MM-DD",
        ) from None


MAX_MISSING = 3  # facts listed in the unknownLicense message; the rest are counted


def _missing_text(lic: EffectiveLicense) -> str:
    """``: <fact>; <fact> (+N more)`` - the missing facts that would make the licence known."""
    if not lic.missing:
        return ""
    shown = "; ".join(lic.missing[:MAX_MISSING])
    more = len(lic.missing) - MAX_MISSING
    return f": {shown}" + (f" (+{more} more)" if more > 0 else "")


def _class_rules(spec: LicensePolicySpec, lic: EffectiveLicense) -> list[Reason]:
    out: list[Reason] = []
    denied = {d.lower() for d in spec.denied_licenses}
    hit = sorted(denied & lic.licence_ids())
    if hit:
        out.append(
            Reason(
                "deniedLicenses",
                "deny",
                f"licence {', '.join(hit)} is in the policy's deniedLicenses",
                lic.source,
            )
        )
    if lic.class_ == "unknown":
        effect: Effect = "deny" if spec.unknown_license == "Deny" else "warn"
        out.append(
            Reason(
                "unknownLicense",
                effect,
                f"the licence of {lic.from_repo} cannot be determined{_missing_text(lic)} "
                f"(unknownLicense: {spec.unknown_license}); declare spec.model.license (and "
                "licenseName) or add an exception",
                lic.source,
            )
        )
        return out
    allowed_ids = {a.lower() for a in spec.allowed_licenses}
    own_ids = {v.lower() for v in (lic.id, lic.name, lic.key) if v} - {"other"}
    if allowed_ids & own_ids:
        out.append(
            Reason(
                "allowedLicenses",
                "allow",
                f"licence {lic.label} is in the policy's allowedLicenses",
                lic.source,
            )
        )
    elif lic.class_ not in spec.allowed_classes:
        out.append(
            Reason(
                "allowedClasses",
                "deny",
                f"licence {lic.label} is {lic.class_}; the policy allows "
                f"{', '.join(spec.allowed_classes) or 'no class'}",
                lic.source,
            )
        )
    return out


def _term_rules(spec: LicensePolicySpec, lic: EffectiveLicense, facts: ModelFacts) -> list[Reason]:
    out: list[Reason] = []
    if lic.commercial == "no":
        if spec.commercial_use:
            out.append(
                Reason(
                    "commercialUse",
                    "deny",
                    f"licence {lic.label} forbids commercial use and the policy declares "
                    "commercialUse: true",
                    lic.source,
                )
            )
        else:
            out.append(
                Reason(
                    "commercialUse",
                    "info",
                    f"licence {lic.label} is non-commercial; the policy declares "
                    "commercialUse: false",
                    lic.source,
                )
            )
    elif lic.commercial == "conditional" and spec.commercial_use:
        out.append(
            Reason(
                "commercialUse",
                "info",
                f"licence {lic.label} allows commercial use under its conditions (see obligations)",
                lic.source,
            )
        )
    if lic.mau_limit:
        users = spec.monthly_active_users
        if users is None:
            out.append(
                Reason(
                    "monthlyActiveUsers",
                    "info",
                    f"licence {lic.label} needs a separate licence above {lic.mau_limit:,} monthly "
                    "active users; the policy declares no monthlyActiveUsers",
                    lic.source,
                )
            )
        elif users > lic.mau_limit:
            out.append(
                Reason(
                    "monthlyActiveUsers",
                    "deny",
                    f"declared {users:,} monthly active users exceed the {lic.mau_limit:,} "
                    f"threshold of licence {lic.label} (a separate licence from the licensor "
                    "is needed)",
                    lic.source,
                )
            )
    for geo in lic.geo_exclusions:
        regions = "/".join(geo.regions)
        fact = f"{geo.clause} ({geo.source})"
        if spec.jurisdiction is None:
            if geo.applies is True:
                out.append(
                    Reason(
                        "jurisdiction",
                        "warn",
                        f"licence {geo.license_key or lic.label} grants no rights to licensees "
                        f"domiciled in {regions}; set the policy's jurisdiction",
                        fact,
                    )
                )
        elif region_matches(spec.jurisdiction, geo.regions):
            if geo.applies is True:
                out.append(
                    Reason(
                        "jurisdiction",
                        "deny",
                        f"licensee jurisdiction {spec.jurisdiction.upper()} is in {regions}, "
                        f"excluded by licence {geo.license_key or lic.label}",
                        fact,
                    )
                )
            elif geo.applies is None:
                out.append(
                    Reason(
                        "jurisdiction",
                        "warn",
                        f"licence {geo.license_key} excludes {regions} licensees for multimodal "
                        "models; kubellm cannot tell whether this model is multimodal",
                        fact,
                    )
                )
    if spec.require_open_source and lic.openness != "open-source":
        out.append(
            Reason(
                "requireOpenSource",
                "deny",
                f"{facts.repo} is {lic.openness} (weights only, not training data and code); "
                "the policy requires open source",
                "open_source list in kubellm/data/licenses.yaml (OSI Open Source AI Definition)",
            )
        )
    if _gated(facts):
        gate = f"gated ({facts.gated} approval)"
        if not spec.allow_gated:
            out.append(
                Reason(
                    "allowGated",
                    "deny",
                    f"{facts.repo} is {gate} and the policy sets allowGated: false",
                    f"Hub model info of {facts.repo} (gated: {facts.gated})",
                )
            )
        else:
            out.append(
                Reason(
                    "allowGated",
                    "info",
                    f"{facts.repo} is {gate}: set hubTokenSecretRef to a token of an account "
                    "that accepted its terms",
                    f"Hub model info of {facts.repo} (gated: {facts.gated})",
                )
            )
    return out


def _apply_exceptions(
    spec: LicensePolicySpec, repo: str, reasons: list[Reason], today: datetime.date
) -> list[Reason]:
    has_denial = any(r.effect == "deny" for r in reasons)
    for index, exc in enumerate(spec.exceptions):
        if not fnmatch.fnmatchcase(repo.lower(), exc.model.lower()):
            continue
        expiry = _exception_expiry(exc, index)
        fact = f"spec.exceptions[{index}] ({exc.model}): {exc.reason}"
        if expiry is not None and today > expiry:
            reasons.append(
                Reason(
                    "exception",
                    "warn" if has_denial else "info",
                    f"exception {exc.model} expired on {expiry.isoformat()} and no longer applies",
                    fact,
                )
            )
            continue
        if not has_denial:
            return reasons
        out = [
            replace(r, effect="info", message=f"{r.message} (overridden by exception {exc.model})")
            if r.effect == "deny"
            else r
            for r in reasons
        ]
        until = f" until {expiry.isoformat()}" if expiry else ""
        out.append(
            Reason(
                "exception", "allow", f"allowed by exception {exc.model}{until}: {exc.reason}", fact
            )
        )
        return out
    return reasons


def decide(
    facts: ModelFacts, policy: LicensePolicy | None, *, today: datetime.date | None = None
) -> LicenseDecision:
    """Decide ``facts`` under ``policy`` (None: the built-in default, kubellm.license.policy).

    ``today`` decides whether exceptions have expired (default: today in UTC).
    """
    spec = policy.spec if policy is not None else default_policy_spec()
    name = (policy.metadata.name or "(unnamed)") if policy is not None else None
    if today is None:
        today = datetime.datetime.now(datetime.UTC).date()
    lic = classify(facts)

    reasons: list[Reason] = [
        Reason(
            "license",
            "info",
            f"effective licence {lic.label} ({lic.class_})"
            + (f", inherited from {lic.from_repo}" if lic.from_repo != facts.repo else ""),
            lic.source,
        )
    ]
    if lic.declared:
        reasons.append(
            Reason(
                "declared",
                "info",
                f"licence {facts.license} declared in spec.model.license, not read from the Hub"
                + (
                    ""
                    if lic.source == lic.chain[0].source
                    else f"; the effective licence {lic.label} comes from {lic.from_repo}"
                ),
                f"spec.model of {facts.repo} (license: {facts.license})",
            )
        )
    reasons += _class_rules(spec, lic)
    reasons += _term_rules(spec, lic, facts)
    reasons = _apply_exceptions(spec, facts.repo, reasons, today)
    if spec.mode == "Warn":
        reasons = [
            replace(r, effect="warn", message=f"{r.message} (mode Warn: deploying anyway)")
            if r.effect == "deny"
            else r
            for r in reasons
        ]
    if any(r.effect == "deny" for r in reasons):
        decision: Decision = "Denied"
    elif any(r.effect == "warn" for r in reasons):
        decision = "AllowedWithWarnings"
    else:
        decision = "Allowed"
    return LicenseDecision(
        decision=decision,
        allowed=decision != "Denied",
        license=lic,
        reasons=tuple(reasons),
        obligations=lic.obligations,
        policy_name=name if name is not None else None,
        mode=spec.mode,
        repo=facts.repo,
    )


__all__ = ["DEFAULT_POLICY_NAME", "LicenseDecision", "Reason", "decide"]
