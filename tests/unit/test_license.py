"""The licence policy engine: reference cases, base_model chains, policy rules, selection, CLI."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubellm.api.v1alpha1 import (
    LicenseDecisionStatus,
    LicensePolicy,
    LicensePolicySpec,
    ObjectMeta,
)
from kubellm.facts import Architecture, BaseModelRef, ModelFacts
from kubellm.license import classify, decide, load_catalog, select_policy

CASES_FILE = Path(__file__).resolve().parents[1] / "data" / "license_cases.json"
TODAY = datetime.date(2026, 11, 27)


def _load_cases() -> list[dict[str, Any]]:
    """The reference cases (tests/data, copied from the team's gathered facts); never skipped."""
    cases: list[dict[str, Any]] = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    assert cases, f"{CASES_FILE} holds no cases"
    return cases


CASES = _load_cases()


def policy(name: str = "p", **spec: Any) -> LicensePolicy:
    return LicensePolicy(metadata=ObjectMeta(name=name), spec=LicensePolicySpec(**spec))


def facts(repo: str, lic: str | None = None, name: str | None = None, **kw: Any) -> ModelFacts:
    return ModelFacts(repo=repo, license=lic, license_name=name, **kw)


def _case_facts(case: dict[str, Any]) -> ModelFacts:
    return facts(
        case["model"],
        case["hf_license"],
        case["license_name"],
        gated="manual" if case["gated"] else None,
    )


# --- every reference case ---


@pytest.mark.parametrize("case", CASES, ids=[c["model"] for c in CASES])
def test_reference_case_classification(case: dict[str, Any]) -> None:
    lic = classify(_case_facts(case))
    commercial = {True: "yes", False: "no"}.get(case["commercial_use"], case["commercial_use"])
    assert (lic.class_, lic.commercial, lic.mau_limit, lic.openness) == (
        case["class"],
        commercial,
        case["mau_limit"],
        case["openness"],
    ), case["source"]
    eu_excluded = any("EU" in g.regions and g.applies for g in lic.geo_exclusions)
    assert eu_excluded == case["eu_restricted"]
    assert lic.source, "every effective licence names its source"


@pytest.mark.parametrize("case", CASES, ids=[c["model"] for c in CASES])
def test_reference_case_default_policy(case: dict[str, Any]) -> None:
    decision = decide(_case_facts(case), None, today=TODAY)
    expected_allowed = case["class"] in ("permissive", "restrictive-community")
    assert decision.allowed is expected_allowed
    assert decision.policy_name is None
    if not expected_allowed:
        assert {r.rule for r in decision.denials} >= {"allowedClasses", "commercialUse"}


# --- base_model chains and families ---


@pytest.mark.parametrize(
    ("model", "expected_key", "expected_from"),
    [
        # Distills tagged mit inherit their Llama base (resolved base).
        (
            facts(
                "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
                "mit",
                base_models=(BaseModelRef("meta-llama/Llama-3.1-8B", license="llama3.1"),),
            ),
            "llama3.1",
            "meta-llama/Llama-3.1-8B",
        ),
        # ... and with no base_model at all: recognised from the repo id.
        (facts("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "mit"), "llama3.3", None),
        (facts("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "mit"), "mit", None),
        # Unresolved base: family from the repo id.
        (
            facts("acme/support-bot", "apache-2.0", base_models=(BaseModelRef("Qwen/Qwen2.5-3B"),)),
            "qwen-research",
            "Qwen/Qwen2.5-3B",
        ),
        (
            facts("acme/big-bot", "apache-2.0", base_models=(BaseModelRef("Qwen/Qwen2.5-72B"),)),
            "qwen",
            "Qwen/Qwen2.5-72B",
        ),
        (
            facts("acme/qwen-ft", "apache-2.0", base_models=(BaseModelRef("Qwen/Qwen2.5-7B"),)),
            None,  # unresolved and unrecognised base: unknown (strictest until proven otherwise)
            "Qwen/Qwen2.5-7B",
        ),
        (
            facts(
                "acme/qwen-ft",
                "apache-2.0",
                base_models=(BaseModelRef("Qwen/Qwen2.5-7B", license="apache-2.0", resolved=True),),
            ),
            "apache-2.0",
            None,
        ),
        # Quantized re-uploads with a wrong tag keep their family's licence.
        (facts("bartowski/Mistral-Large-Instruct-2407-GGUF", "apache-2.0"), "mrl", None),
        (facts("someone/Codestral-22B-v0.1-AWQ", None), "mnpl", None),
        (facts("meta-llama/Llama-3.2-11B-Vision", "llama3.2"), "llama3.2", None),
        # A chain of two: strictest anywhere wins.
        (
            facts(
                "acme/merged",
                "mit",
                base_models=(
                    BaseModelRef("acme/a", license="apache-2.0", resolved=True),
                    BaseModelRef("acme/b", license="cc-by-nc-4.0", resolved=True),
                ),
            ),
            "cc-by-nc-4.0",
            "acme/b",
        ),
        # license: other + license_name aliases.
        (
            facts("Qwen/Qwen-7B", "other", "tongyi-qianwen-license-agreement"),
            "tongyi-qianwen",
            None,
        ),
        (facts("tencent/Hunyuan-7B-Instruct", "other", "tencent-hunyuan-community"), None, None),
    ],
)
def test_chain_strictest_wins(
    model: ModelFacts, expected_key: str | None, expected_from: str | None
) -> None:
    lic = classify(model)
    if model.repo.startswith("tencent/"):
        expected_key = "tencent-hunyuan-community"
    assert lic.key == expected_key
    assert lic.from_repo == (expected_from or model.repo)


def test_distill_tagged_mit_is_denied_where_llama_is_denied() -> None:
    model = facts("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "mit")
    decision = decide(model, policy(denied_licenses=["llama3.1"]), today=TODAY)
    assert not decision.allowed
    assert [r.rule for r in decision.denials] == ["deniedLicenses"]
    assert "Built with Llama" in " ".join(decision.obligations)


# --- geography ---


@pytest.mark.parametrize(
    ("model", "jurisdiction", "allowed", "rule_effect"),
    [
        (facts("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2"), "EU", False, "deny"),
        (facts("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2"), "DE", False, "deny"),
        (facts("meta-llama/Llama-3.2-90B-Vision", "llama3.2"), "fr", False, "deny"),
        (facts("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2"), "US", True, None),
        (facts("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2"), "UK", True, None),
        (facts("meta-llama/Llama-3.2-3B-Instruct", "llama3.2"), "DE", True, None),  # text-only
        (facts("meta-llama/Llama-3.3-70B-Instruct", "llama3.3"), "IE", True, None),
        (facts("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama4"), "EU", False, "deny"),
        (facts("meta-llama/Llama-4-Maverick-17B-128E", "llama4"), "NL", False, "deny"),
        (facts("meta-llama/Llama-4-Maverick-17B-128E", "llama4"), "CH", True, None),
        (
            facts("tencent/Hunyuan-A13B-Instruct", "other", "tencent-hunyuan-community"),
            "UK",
            False,
            "deny",
        ),
        (
            facts("tencent/Hunyuan-A13B-Instruct", "other", "tencent-hunyuan-community"),
            "GB",
            False,
            "deny",
        ),
        (
            facts("tencent/Hunyuan-A13B-Instruct", "other", "tencent-hunyuan-community"),
            "KR",
            False,
            "deny",
        ),
        (
            facts("tencent/Hunyuan-A13B-Instruct", "other", "tencent-hunyuan-community"),
            "IT",
            False,
            "deny",
        ),
        (
            facts("tencent/Hunyuan-A13B-Instruct", "other", "tencent-hunyuan-community"),
            "US",
            True,
            None,
        ),
        # Multimodal known only from the config.
        (
            facts("acme/llama32-mm", "llama3.2", architecture=Architecture(multimodal=True)),
            "ES",
            False,
            "deny",
        ),
        # Multimodality unknown: warn, do not guess.
        (facts("acme/llama32-something", "llama3.2"), "ES", True, "warn"),
        # The author disallows EU access on the card.
        (facts("acme/any", "apache-2.0", eu_disallowed=True), "PL", False, "deny"),
        (facts("Qwen/Qwen3-8B", "apache-2.0"), "EU", True, None),
    ],
)
def test_jurisdiction(
    model: ModelFacts, jurisdiction: str, allowed: bool, rule_effect: str | None
) -> None:
    decision = decide(model, policy(jurisdiction=jurisdiction), today=TODAY)
    assert decision.allowed is allowed
    effects = {r.effect for r in decision.reasons if r.rule == "jurisdiction"}
    assert effects == ({rule_effect} if rule_effect else set())


def test_geo_exclusion_without_jurisdiction_warns() -> None:
    decision = decide(facts("meta-llama/Llama-4-Scout-17B-16E", "llama4"), None, today=TODAY)
    assert decision.decision == "AllowedWithWarnings"
    assert any(r.rule == "jurisdiction" and r.effect == "warn" for r in decision.reasons)


# --- thresholds, commercial use, classes ---


@pytest.mark.parametrize(
    ("model", "users", "allowed"),
    [
        (facts("meta-llama/Llama-3.1-8B", "llama3.1"), 700_000_000, True),
        (facts("meta-llama/Llama-3.1-8B", "llama3.1"), 700_000_001, False),
        (facts("Qwen/Qwen2.5-72B-Instruct", "other", "qwen"), 99_000_000, True),
        (facts("Qwen/Qwen2.5-72B-Instruct", "other", "qwen"), 150_000_000, False),
        (facts("tencent/Hunyuan-7B", "other", "tencent-hunyuan-community"), 100_000_001, False),
        (facts("Qwen/Qwen3-8B", "apache-2.0"), 5_000_000_000, True),
    ],
)
def test_monthly_active_users(model: ModelFacts, users: int, allowed: bool) -> None:
    decision = decide(model, policy(monthly_active_users=users), today=TODAY)
    assert decision.allowed is allowed
    if not allowed:
        assert [r.rule for r in decision.denials] == ["monthlyActiveUsers"]


@pytest.mark.parametrize(
    ("spec", "model", "decision_expected", "deny_rules"),
    [
        # Research-only allowed as a class, but commercial use still denies it.
        (
            {"allowed_classes": ["permissive", "research-only"]},
            facts("mistralai/Mistral-Large-Instruct-2407", "other", "mrl"),
            "Denied",
            ["commercialUse"],
        ),
        # Non-commercial deployment that accepts research-only.
        (
            {"allowed_classes": ["research-only"], "commercial_use": False},
            facts("CohereLabs/c4ai-command-r-v01", "cc-by-nc-4.0"),
            "Allowed",
            [],
        ),
        # allowedLicenses lifts the class rule, not the commercial terms.
        (
            {"allowed_licenses": ["cc-by-nc-4.0"]},
            facts("CohereLabs/c4ai-command-r-v01", "cc-by-nc-4.0"),
            "Denied",
            ["commercialUse"],
        ),
        (
            {"allowed_classes": ["permissive"], "allowed_licenses": ["gemma"]},
            facts("google/gemma-2-9b-it", "gemma"),
            "Allowed",
            [],
        ),
        (
            {"allowed_classes": ["permissive"]},
            facts("google/gemma-2-9b-it", "gemma"),
            "Denied",
            ["allowedClasses"],
        ),
        (
            {"denied_licenses": ["apache-2.0"]},
            facts("Qwen/Qwen3-8B", "apache-2.0"),
            "Denied",
            ["deniedLicenses"],
        ),
        # license_name values work in the lists too.
        (
            {"denied_licenses": ["qwen"]},
            facts("Qwen/Qwen2.5-72B", "other", "qwen"),
            "Denied",
            ["deniedLicenses"],
        ),
        # Unknown licence: Deny by default, Warn on request.
        ({}, facts("acme/mystery", None), "Denied", ["unknownLicense"]),
        ({}, facts("acme/mystery", "other", "acme-custom"), "Denied", ["unknownLicense"]),
        ({"unknown_license": "Warn"}, facts("acme/mystery", "unknown"), "AllowedWithWarnings", []),
        # Gated.
        (
            {"allow_gated": False},
            facts("meta-llama/Llama-3.1-8B", "llama3.1", gated="manual"),
            "Denied",
            ["allowGated"],
        ),
        ({}, facts("meta-llama/Llama-3.1-8B", "llama3.1", gated="auto"), "Allowed", []),
        ({"allow_gated": False}, facts("Qwen/Qwen3-8B", "apache-2.0", gated=None), "Allowed", []),
        # Open source in the strict sense.
        (
            {"require_open_source": True},
            facts("allenai/OLMo-2-1124-7B", "apache-2.0"),
            "Allowed",
            [],
        ),
        (
            {"require_open_source": True},
            facts("EleutherAI/pythia-12b", "apache-2.0"),
            "Allowed",
            [],
        ),
        ({"require_open_source": True}, facts("LLM360/Amber", "apache-2.0"), "Allowed", []),
        (
            {"require_open_source": True},
            facts("Qwen/Qwen3-8B", "apache-2.0"),
            "Denied",
            ["requireOpenSource"],
        ),
        (
            {"require_open_source": True},
            facts(
                "acme/olmo-ft", "apache-2.0", base_models=(BaseModelRef("meta-llama/Llama-3.1-8B"),)
            ),
            "Denied",
            ["requireOpenSource"],
        ),
        # Warn mode turns denials into warnings.
        (
            {"mode": "Warn"},
            facts("mistralai/Codestral-22B-v0.1", "other", "mnpl"),
            "AllowedWithWarnings",
            [],
        ),
    ],
)
def test_policy_rules(
    spec: dict[str, Any], model: ModelFacts, decision_expected: str, deny_rules: list[str]
) -> None:
    decision = decide(model, policy(**spec), today=TODAY)
    assert decision.decision == decision_expected, decision.reasons
    assert sorted({r.rule for r in decision.denials}) == sorted(deny_rules)
    assert decision.allowed is (decision_expected != "Denied")


def test_warn_mode_keeps_the_reasons_as_warnings() -> None:
    decision = decide(facts("acme/x", "cc-by-nc-4.0"), policy(mode="Warn"), today=TODAY)
    assert decision.mode == "Warn"
    rules = {r.rule for r in decision.warnings}
    assert {"allowedClasses", "commercialUse"} <= rules


# --- exceptions ---


@pytest.mark.parametrize(
    ("exception", "today", "allowed", "decision_expected"),
    [
        ({"model": "mistralai/*", "reason": "legal OK, JIRA-1"}, TODAY, True, "Allowed"),
        (
            {"model": "mistralai/Mistral-Large-*", "reason": "r", "expires": "2026-11-27"},
            TODAY,
            True,
            "Allowed",
        ),
        ({"model": "mistralai/*", "reason": "r", "expires": "2026-11-26"}, TODAY, False, "Denied"),
        (
            {"model": "mistralai/*", "reason": "r", "expires": "2027-01-01"},
            datetime.date(2027, 1, 2),
            False,
            "Denied",
        ),
        ({"model": "other-org/*", "reason": "r"}, TODAY, False, "Denied"),
        ({"model": "MISTRALAI/mistral-large-instruct-2407", "reason": "r"}, TODAY, True, "Allowed"),
    ],
)
def test_exceptions(
    exception: dict[str, str], today: datetime.date, allowed: bool, decision_expected: str
) -> None:
    model = facts("mistralai/Mistral-Large-Instruct-2407", "other", "mrl")
    decision = decide(model, policy(exceptions=[exception]), today=today)
    assert decision.allowed is allowed
    assert decision.decision == decision_expected
    rules = {r.rule: r.effect for r in decision.reasons}
    if allowed:
        assert rules["exception"] == "allow"
        assert not decision.denials
    if "expires" in exception and not allowed:
        assert rules["exception"] == "warn"
        assert "expired" in next(r.message for r in decision.reasons if r.rule == "exception")


def test_today_defaults_to_the_real_date() -> None:
    model = facts("mistralai/Mistral-Large-Instruct-2407", "other", "mrl")
    expired = policy(exceptions=[{"model": "*", "reason": "r", "expires": "2000-01-01"}])
    assert not decide(model, expired).allowed


# --- declared facts and outputs ---


def test_declared_licence_is_reported() -> None:
    model = ModelFacts(
        repo="acme/airgapped", license="apache-2.0", source="declared", declared=("license",)
    )
    decision = decide(model, None, today=TODAY)
    status = decision.to_status()
    assert isinstance(status, LicenseDecisionStatus)
    assert status.declared is True
    assert any(r.rule == "declared" for r in decision.reasons)
    wire = status.dump()
    assert wire["class"] == "permissive"
    assert wire["decision"] == "Allowed"


def test_declared_licence_overridden_by_family_is_still_reported_declared() -> None:
    model = ModelFacts(
        repo="deepseek-ai/DeepSeek-R1-Distill-Llama-8B", license="mit", declared=("license",)
    )
    decision = decide(model, None, today=TODAY)
    assert decision.license.key == "llama3.1"
    assert decision.to_status().declared is True
    declared = next(r for r in decision.reasons if r.rule == "declared")
    assert "llama3.1" in declared.message


def test_to_dict_and_status_agree() -> None:
    model = facts("meta-llama/Llama-3.1-8B", "llama3.1", gated="manual")
    decision = decide(model, policy("corp", jurisdiction="US"), today=TODAY)
    data = decision.to_dict()
    assert {
        "id",
        "class",
        "allowed",
        "decision",
        "reasons",
        "obligations",
        "openness",
        "policy",
    } <= set(data)
    assert data["policy"] == "corp"
    assert data["id"] == "llama3.1"
    status = decision.to_status().dump()
    assert status["policy"] == "corp"
    assert [r["rule"] for r in status["reasons"]] == [r["rule"] for r in data["reasons"]]
    assert json.loads(json.dumps(data)) == data
    for reason in decision.reasons:
        assert reason.fact, f"reason {reason.rule} names no fact"


def test_decisions_are_deterministic() -> None:
    model = facts("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "mit")
    assert decide(model, None, today=TODAY) == decide(model, None, today=TODAY)


# --- policy selection ---


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ("team-a", "exact"),
        ("team-b", "team-glob"),
        ("team-research-x", "team-research"),
        ("prod", "catch-all-a"),
        ("kube-system", "catch-all-a"),
    ],
)
def test_select_policy(namespace: str, expected: str) -> None:
    policies = [
        policy("catch-all-b"),
        policy("team-glob", namespaces=["team-*"]),
        policy("team-research", namespaces=["team-research-*"]),
        policy("exact", namespaces=["team-a"]),
        policy("catch-all-a"),
    ]
    for order in (policies, list(reversed(policies))):
        chosen = select_policy(order, namespace)
        assert chosen is not None and chosen.metadata.name == expected


def test_select_policy_none_when_nothing_covers() -> None:
    assert select_policy([policy("only", namespaces=["ml"])], "web") is None
    assert select_policy([], "web") is None


def test_select_policy_tie_goes_to_name() -> None:
    a, b = policy("b", namespaces=["ml"]), policy("a", namespaces=["ml"])
    chosen = select_policy([a, b], "ml")
    assert chosen is not None and chosen.metadata.name == "a"


# --- the catalogue ---


def test_catalogue_entries_have_sources() -> None:
    catalog = load_catalog()
    for key, entry in catalog.licenses.items():
        assert entry.source, key
        for geo in entry.geo:
            assert geo.source, key
    for rule in catalog.families:
        assert rule.source and rule.license_key in catalog.licenses


@pytest.mark.parametrize(
    ("repo", "key"),
    [
        ("meta-llama/Llama-3.2-11B-Vision", "llama3.2"),
        ("Qwen/Qwen2.5-3B", "qwen-research"),
        ("Qwen/Qwen2.5-Coder-3B-Instruct", "qwen-research"),
        ("Qwen/Qwen2.5-72B", "qwen"),
        ("Qwen/Qwen2.5-32B", None),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "llama3.1"),
        ("mistralai/Mistral-Large-Instruct-2411", "mrl"),
        ("mistralai/Codestral-22B-v0.1", "mnpl"),
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", None),
        ("NousResearch/Hermes-3-Llama-3.1-8B", "llama3.1"),
        ("meta-llama/Meta-Llama-3-8B", "llama3"),
        ("meta-llama/Llama-4-Scout-17B-16E", "llama4"),
        ("mistralai/Mistral-7B-v0.1", None),
    ],
)
def test_family_recognition(repo: str, key: str | None) -> None:
    rule = load_catalog().family(repo)
    assert (rule.license_key if rule else None) == key


def test_license_package_is_pure() -> None:
    code = (
        "import sys, kubellm.license, kubellm.api; "
        "bad = {'kopf', 'kubernetes', 'huggingface_hub'} & set(sys.modules); "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the CLI ---


POLICY_YAML = """\
apiVersion: kubellm.io/v1alpha1
kind: LicensePolicy
metadata: {name: eu-prod}
spec:
  namespaces: [prod]
  jurisdiction: DE
---
apiVersion: kubellm.io/v1alpha1
kind: LicensePolicy
metadata: {name: research}
spec:
  namespaces: [lab-*]
  commercialUse: false
  allowedClasses: [permissive, restrictive-community, research-only]
"""


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["Qwen/Qwen3-8B", "--license", "apache-2.0"], 0, "Allowed"),
        (["acme/x", "--license", "other", "--license-name", "mrl"], 1, "Denied"),
        (["acme/x", "--license", "mit", "--base-model", "meta-llama/Llama-3.1-8B"], 0, "llama3.1"),
        (
            ["meta-llama/Llama-4-Scout-17B-16E", "--license", "llama4", "--namespace", "prod"],
            1,
            "jurisdiction",
        ),
        (
            ["meta-llama/Llama-4-Scout-17B-16E", "--license", "llama4", "--namespace", "dev"],
            0,
            "Warnings",
        ),
        (["acme/x", "--license", "cc-by-nc-4.0", "--namespace", "lab-1"], 0, "research"),
        (["not a repo", "--license", "mit"], 2, "MODEL"),
        (["acme/x", "--license-name", "qwen"], 2, "--license"),
    ],
)
def test_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    from kubellm.cli import main

    file = tmp_path / "policies.yaml"
    file.write_text(POLICY_YAML, encoding="utf-8")
    assert main(["license", *argv, "--policy", str(file)]) == code
    out = capsys.readouterr()
    assert needle in out.out + out.err


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    from kubellm.cli import main

    assert main(["license", "acme/x", "--license", "llama3.1", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == "llama3.1" and data["allowed"] is True and data["policy"] is None


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("kind: LicensePolicy\nmetadata: {name: x}\nspec: {mode: Sometimes}\n", "spec.mode"),
        (
            "kind: LicensePolicy\nmetadata: {name: x}\nspec: {jurisdiction: Europe}\n",
            "spec.jurisdiction",
        ),
        ("kind: ConfigMap\n", "LicensePolicy"),
        (
            "kind: LicensePolicy\n"
            "spec: {exceptions: [{model: a, reason: r, expires: 2026-02-30}]}\n",
            "expires",
        ),
        ("kind: [\n", "YAML"),
    ],
)
def test_cli_bad_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    from kubellm.cli import main

    file = tmp_path / "p.yaml"
    file.write_text(content, encoding="utf-8")
    assert main(["license", "acme/x", "--license", "mit", "--policy", str(file)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_cli_hub_unavailable_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import kubellm.modelinfo
    from kubellm.cli import main
    from kubellm.errors import HubUnavailableError

    def down(repo: str, revision: str = "main", **_: Any) -> ModelFacts:
        raise HubUnavailableError(f"Hub unavailable while reading {repo}")

    monkeypatch.setattr(kubellm.modelinfo, "resolve", down)
    assert main(["license", "Qwen/Qwen3-8B"]) == 3
    assert "--license" in capsys.readouterr().err


def test_cli_uses_resolved_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubellm.modelinfo
    from kubellm.cli import main

    seen: list[tuple[str, str]] = []

    def fake(repo: str, revision: str = "main", **_: Any) -> ModelFacts:
        seen.append((repo, revision))
        return facts(repo, "other", "qwen-research")

    monkeypatch.setattr(kubellm.modelinfo, "resolve", fake)
    assert main(["license", "Qwen/Qwen2.5-3B-Instruct", "--revision", "abc"]) == 1
    assert seen == [("Qwen/Qwen2.5-3B-Instruct", "abc")]
