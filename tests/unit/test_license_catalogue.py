"""The licence catalogue covers the Hub's documented licence list and the family licences
(issue 12, item 4): a licence kubellm does not know must not be a way around the policy.

``HUB_LICENSE_IDS`` is transcribed from huggingface/hub-docs ``docs/hub/repositories-licenses.md``
at commit fd6cf1f (2026-06-06, "Add OpenMDW 1.1 license"), the table between the ``region
licenses`` comments, in its order. When the Hub adds an id, add it here and to
``kubellm/data/licenses.yaml`` (with its source).
"""

from __future__ import annotations

import pytest

from kubellm.api.v1alpha1 import LicensePolicy, LicensePolicySpec, ObjectMeta
from kubellm.facts import BaseModelRef, ModelFacts
from kubellm.license import classify, decide, load_catalog
from kubellm.license.catalog import parse_catalog

HUB_LICENSE_IDS = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0",
    "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0",
    "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0",
    "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl", "gpl",
    "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research", "intel-research",
    "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openmdw-1.0",
    "openmdw-1.1", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib",
    "pddl", "lgpl-lr", "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2",
    "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "grok2-community", "gemma",
    "unknown", "other",
)
# Ids that name a family whose members differ in the facts a policy needs: known, class unknown.
AMBIGUOUS = {"cc"}
NON_COMMERCIAL = {
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "h-research", "intel-research",
    "apple-amlr", "deepfloyd-if-license", "fair-noncommercial-research-license",
}
CATALOG = load_catalog()
COMMERCIAL = LicensePolicy(metadata=ObjectMeta(name="commercial"),
                           spec=LicensePolicySpec(unknown_license="Warn"))


def test_the_transcribed_list_has_every_id_once() -> None:
    assert len(HUB_LICENSE_IDS) == len(set(HUB_LICENSE_IDS)) == 83


@pytest.mark.parametrize("hub_id", [i for i in HUB_LICENSE_IDS if i not in ("unknown", "other")])
def test_every_hub_licence_id_is_a_catalogue_entry(hub_id: str) -> None:
    entry = CATALOG.lookup(hub_id)
    assert entry is not None, f"{hub_id} is on the Hub's list but not in licenses.yaml"
    assert entry.hub_id == hub_id and entry.source
    lic = classify(ModelFacts(repo="acme/model", license=hub_id))
    assert lic.key == entry.key
    if hub_id in AMBIGUOUS:
        assert lic.class_ == "unknown" and lic.missing and entry.missing
    else:
        assert lic.class_ != "unknown" and not lic.missing
        assert (entry.commercial == "no") is (hub_id in NON_COMMERCIAL), entry


@pytest.mark.parametrize("hub_id", sorted(NON_COMMERCIAL))
def test_non_commercial_hub_ids_are_denied_for_commercial_use_even_under_warn(
    hub_id: str,
) -> None:
    decision = decide(ModelFacts(repo="acme/model", license=hub_id), COMMERCIAL)
    assert decision.decision == "Denied"
    assert {r.rule for r in decision.denials} >= {"commercialUse"}


# --- license_name values of the major model families (license: other) ---

FAMILY_NAMES = [
    # (license_name as cards write it, catalogue key, class, commercial)
    ("nvidia-open-model-license", "nvidia-open-model-license", "restrictive-community",
     "conditional"),
    ("nvidia-nemotron-open-model-license", "nvidia-nemotron-open-model-license",
     "restrictive-community", "conditional"),
    ("nvidia-one-way-noncommercial-license", "nvidia-one-way-noncommercial-license",
     "research-only", "no"),
    ("microsoft-research-license", "microsoft-research-license", "research-only", "no"),
    ("llama2", "llama2", "restrictive-community", "conditional"),
    ("llama3", "llama3", "restrictive-community", "conditional"),
    ("Llama 3.1 Community License", "llama3.1", "restrictive-community", "conditional"),
    ("llama-3.2-community-license", "llama3.2", "restrictive-community", "conditional"),
    ("llama3.3", "llama3.3", "restrictive-community", "conditional"),
    ("llama-4-community-license-agreement", "llama4", "restrictive-community", "conditional"),
    ("gemma", "gemma", "restrictive-community", "conditional"),
    ("gemma-terms-of-use", "gemma", "restrictive-community", "conditional"),
    ("health-ai-developer-foundations", "health-ai-developer-foundations",
     "restrictive-community", "conditional"),
    ("qwen", "qwen", "restrictive-community", "conditional"),
    ("qwen-research", "qwen-research", "research-only", "no"),
    ("tongyi-qianwen", "tongyi-qianwen", "restrictive-community", "conditional"),
    ("tongyi-qianwen-license-agreement", "tongyi-qianwen", "restrictive-community",
     "conditional"),
    ("deepseek", "deepseek", "restrictive-community", "conditional"),
    ("deepseek-license-agreement", "deepseek", "restrictive-community", "conditional"),
    ("falcon-llm-license", "falcon-llm-license", "restrictive-community", "conditional"),
    ("falcon-180b-tii-license-1.0", "falcon-180b-tii-license-1.0", "restrictive-community",
     "conditional"),
    ("mrl", "mrl", "research-only", "no"),
    ("mistral-ai-research-license", "mrl", "research-only", "no"),
    ("mnpl", "mnpl", "research-only", "no"),
    ("cc-by-nc-4.0", "cc-by-nc-4.0", "research-only", "no"),  # Cohere Command R / A, Aya
    ("yi-license", "yi-license", "research-only", "no"),
    ("tencent-hunyuan-community", "tencent-hunyuan-community", "restrictive-community",
     "conditional"),
    ("stabilityai-community", "stabilityai-community", "restrictive-community", "conditional"),
    ("databricks-open-model-license", "databricks-open-model-license", "restrictive-community",
     "conditional"),
    ("jamba-open-model-license", "jamba-open-model-license", "restrictive-community",
     "conditional"),
    ("exaone", "exaone", "research-only", "no"),
    ("glm-4", "glm-4", "restrictive-community", "conditional"),
    ("apple-sample-code-license", "apple-ascl", "permissive", "yes"),
    ("grok-2-community-license", "grok2-community", "restrictive-community", "conditional"),
]


@pytest.mark.parametrize(("name", "key", "class_", "commercial"), FAMILY_NAMES,
                         ids=[n[0] for n in FAMILY_NAMES])
def test_family_license_names_are_known(name: str, key: str, class_: str,
                                        commercial: str) -> None:
    lic = classify(ModelFacts(repo="acme/model", license="other", license_name=name))
    assert (lic.key, lic.class_, lic.commercial) == (key, class_, commercial)
    assert lic.source and not lic.missing


# --- the held-out cards of the issue ---


def test_nvidia_open_model_license_is_commercially_usable_with_conditions() -> None:
    """Nemotron and NVIDIA's ModelOpt quantizations: license other / nvidia-open-model-license.
    Was unknown (denied by default, a way around a Warn policy); now allowed for commercial use
    under the default policy, with its conditions as obligations."""
    nemotron = ModelFacts(repo="nvidia/NVIDIA-Nemotron-Nano-9B-v2", license="other",
                          license_name="nvidia-open-model-license")
    quantization = ModelFacts(  # card of the NVIDIA gpt-oss-120b Eagle head (ModelOpt)
        repo="nvidia/gpt-oss-120b-Eagle3", license="other",
        license_name="nvidia-open-model-license",
        base_models=(BaseModelRef(repo="openai/gpt-oss-120b", relation="finetune",
                                  license="apache-2.0", resolved=True),))
    for facts in (nemotron, quantization):
        lic = classify(facts)
        assert (lic.key, lic.class_, lic.commercial) == (
            "nvidia-open-model-license", "restrictive-community", "conditional")
        decision = decide(facts, None)  # the built-in default: commercial, Enforce, Deny unknown
        assert decision.decision == "Allowed", decision.summary()
        assert any("Licensed by NVIDIA Corporation" in o for o in decision.obligations)
        assert any(r.rule == "commercialUse" and r.effect == "info" for r in decision.reasons)


def test_microsoft_research_license_is_denied_for_commercial_use_even_under_warn() -> None:
    """Orca 2 (license other / microsoft-research-license) was unknown: allowed with a warning by
    ``unknownLicense: Warn``. It is research-only: a commercial policy denies it."""
    orca = ModelFacts(repo="microsoft/Orca-2-13b", license="other",
                      license_name="microsoft-research-license")
    requant = ModelFacts(  # a re-upload whose card says nothing: the family rule still knows
        repo="TheBloke/Orca-2-13B-GGUF",
        base_models=(BaseModelRef(repo="microsoft/Orca-2-13b", relation="quantized"),))
    for facts in (orca, requant):
        decision = decide(facts, COMMERCIAL)
        assert decision.license.class_ == "research-only"
        assert decision.decision == "Denied", decision.summary()
        assert {"commercialUse", "allowedClasses"} <= {r.rule for r in decision.denials}
    research = LicensePolicy(metadata=ObjectMeta(name="lab"), spec=LicensePolicySpec(
        commercial_use=False, allowed_classes=["permissive", "research-only"]))
    assert decide(orca, research).decision == "Allowed"


# --- unknownLicense: Warn says which facts were missing ---


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (ModelFacts(repo="acme/m"), ["model card of acme/m declares no licence"]),
        (ModelFacts(repo="acme/m", license="unknown"), ["says license: unknown"]),
        (ModelFacts(repo="acme/m", license="other", license_link="https://acme.example/L"),
         ["license: other without a license_name", "https://acme.example/L"]),
        (ModelFacts(repo="acme/m", license="other", license_name="acme-model-license"),
         ["license_name 'acme-model-license' is not in kubellm's licence catalogue"]),
        (ModelFacts(repo="acme/m", license="acme-1.0"), ["licence id 'acme-1.0' is not in"]),
        (ModelFacts(repo="acme/m", license="cc"), ["which Creative Commons licence", "cc-by-4.0"]),
        (ModelFacts(repo="acme/m", license="apache-2.0", base_models=(
            BaseModelRef(repo="acme/base", relation="finetune", resolved=False),)),
         ["base model (finetune) acme/base could not be read"]),
    ],
)
def test_warn_names_the_missing_facts(facts: ModelFacts, words: list[str]) -> None:
    decision = decide(facts, COMMERCIAL)
    assert decision.decision == "AllowedWithWarnings"
    (reason,) = [r for r in decision.reasons if r.rule == "unknownLicense"]
    assert reason.effect == "warn"
    for word in words:
        assert word in reason.message, reason.message
    status = decision.to_status().model_dump(by_alias=True)
    assert any(word in r["message"] for r in status["reasons"] for word in words[:1])
    assert decision.to_dict()["missing"]


def test_many_missing_facts_are_counted_not_listed() -> None:
    bases = tuple(BaseModelRef(repo=f"acme/base-{i}", relation="merge") for i in range(5))
    decision = decide(ModelFacts(repo="acme/merge", base_models=bases), COMMERCIAL)
    (reason,) = [r for r in decision.reasons if r.rule == "unknownLicense"]
    assert "(+3 more)" in reason.message and len(decision.license.missing) == 6


def test_known_licences_list_nothing_missing() -> None:
    lic = classify(ModelFacts(repo="acme/m", license="apache-2.0"))
    assert lic.missing == ()


# --- the catalogue's own checks ---


def test_catalogue_refuses_an_unknown_class_without_its_missing_fact() -> None:
    bad = {"licenses": {"x": {"name": "X", "class": "unknown", "commercial": "unknown",
                              "source": "s"}}}
    with pytest.raises(ValueError, match="class unknown and missing"):
        parse_catalog(bad)
    with pytest.raises(ValueError, match="class 'free'"):
        parse_catalog({"licenses": {"x": {"name": "X", "class": "free", "commercial": "yes",
                                          "source": "s"}}})


def test_every_alias_and_family_names_an_entry_and_entries_have_sources() -> None:
    assert set(CATALOG.aliases.values()) <= set(CATALOG.licenses)
    for key, entry in CATALOG.licenses.items():
        assert entry.source and entry.name, key
        assert (entry.class_ == "unknown") is bool(entry.missing), key
