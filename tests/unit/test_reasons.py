"""kubellm.reasons: the one catalogue of condition reasons, and the consumers derived from it.

The categories were derived from what the code did before the catalogue existed (the sets in
``kubellm.conditions``, the branches of ``kubellm.errors``, deploy/argocd/health.lua); these tests
keep the code's sets and the error hierarchy equal to them. The Lua side is in
test_argocd_health.py, the docs side in test_docs.py.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml
from test_planner import L4_ONLY, facts, llmd

from kubellm import conditions, errors
from kubellm.api import v1alpha1
from kubellm.commands.plan import build_report
from kubellm.planner import plan_deployment
from kubellm.reasons import PASSED_THROUGH, Category, Reason, of
from kubellm.sizing import inventory_from_file
from kubellm.sizing.types import Inventory

ROOT = Path(__file__).resolve().parents[2]
_CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]+$")


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).upper()


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_every_reason_is_camel_case_with_a_category_and_a_one_line_description(
        reason: Reason) -> None:
    assert _CAMEL.match(reason.value) and type(reason.value) is str
    assert reason.name == _snake(reason.value)  # Reason.GPUS_BUSY is "GpusBusy"
    assert isinstance(reason.category, Category)
    assert reason.description and "\n" not in reason.description
    assert Reason(reason.value) is reason


def test_the_catalogue_is_the_reasons_the_code_emits() -> None:
    """The 29 reasons tests/unit/test_docs.py found by scanning the source before the catalogue,
    plus NotPermitted (spec.args/env/image guard) and InvalidModelMetadata (unreadable
    config.json / safetensors index / header, found by tests/unit/test_fuzz_hub.py), and
    spec.evaluation's Evaluated condition: Passed, Evaluating, BelowThreshold, EvaluationFailed."""
    assert set(Reason) == {
        "Allowed", "AllowedWithWarnings", "CacheDisabled", "ClusterError", "Conflict",
        "DoesNotFit", "DownloadFailed", "Downloaded", "Downloading", "Fits", "Forbidden",
        "GatedModel", "GpusBusy", "HubUnavailable", "InternalError",
        "InvalidModelMetadata", "InvalidObject", "InvalidSpec", "KindNotServed", "LicenseDenied",
        "MinimumReplicasAvailable",
        "ModelNotFound", "NoDeployment", "NoReplicasReady", "NotEvaluated", "NotPermitted",
        "NotPlanned", "Ready",
        "Retrying", "ScaledToZero", "Unsupported",
        "Passed", "Evaluating", "BelowThreshold", "EvaluationFailed",
    }


def test_categories_partition_the_catalogue() -> None:
    parts = [of(c) for c in Category]
    assert all(parts) and sum(len(p) for p in parts) == len(Reason)
    assert of(*Category) == set(Reason)


def test_passed_through_reasons_are_not_ours_and_stay_as_kubernetes_spells_them() -> None:
    assert PASSED_THROUGH and not PASSED_THROUGH & set(Reason)
    for reason in PASSED_THROUGH:
        assert conditions.camel_reason(reason, Reason.DOWNLOAD_FAILED) == reason


def _subclasses(base: type[errors.KubellmError]) -> list[type[errors.KubellmError]]:
    out, todo = [], [base]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


@pytest.mark.parametrize(("base", "category"), [
    (errors.PermanentError, Category.REFUSED),
    (errors.TemporaryError, Category.TEMPORARY),
])
def test_error_branches_have_their_category(base: type[errors.KubellmError],
                                            category: Category) -> None:
    """PermanentError: retrying cannot help (REFUSED); TemporaryError: retried (TEMPORARY)."""
    for cls in _subclasses(base):
        assert Reason(cls.reason).category is category, cls


def test_errors_raised_with_a_reason_carry_their_category() -> None:
    """The reasons given at raise sites (kubellm.k8s.cluster, kubellm.reconcile.core)."""
    assert {Reason.INVALID_OBJECT, Reason.KIND_NOT_SERVED} <= of(Category.REFUSED)
    assert {Reason.FORBIDDEN, Reason.CONFLICT, Reason.INTERNAL_ERROR} <= of(Category.TEMPORARY)


def test_error_instances_hold_a_plain_str() -> None:
    """Reasons leave kubellm as data; PyYAML's safe dumper refuses str subclasses."""
    for exc in (errors.ModelNotFoundError("m"), errors.ClusterError("m", reason=Reason.CONFLICT),
                errors.SpecError("spec.x", "bad")):
        assert type(exc.reason) is str
        yaml.safe_dump({"reason": exc.reason})
    assert errors.ClusterError("m", reason=Reason.CONFLICT).reason == "Conflict"
    assert errors.SpecError("spec.x", "bad").reason == "InvalidSpec"


@pytest.mark.parametrize(("inventory", "replicas", "reason"), [
    (L4_ONLY, 3, "DoesNotFit"),
    (inventory_from_file([{"gpuProduct": "NVIDIA-L4", "gpusPerNode": 1, "nodes": 3,
                           "freeGpusPerNode": [1, 0, 1]}], "t"), 3, "GpusBusy"),
])
def test_a_refused_plan_dumps_as_yaml(inventory: Inventory, replicas: int, reason: str) -> None:
    """``kubellm plan -o yaml`` of a refusal: the reason is a plain str in the report."""
    plan = plan_deployment(llmd(replicas=replicas), facts(), [], inventory)
    assert type(plan.refusal_reason) is str and plan.refusal_reason == reason
    assert f"reason: {reason}\n" in yaml.safe_dump(build_report(plan), sort_keys=False)


def test_licence_decisions_that_allow_are_ok_reasons() -> None:
    """An allowed LicenseApproved carries the Decision itself; Denied is LicenseDenied."""
    allowing = set(typing.get_args(v1alpha1.Decision)) - {"Denied"}
    assert allowing == {Reason.ALLOWED, Reason.ALLOWED_WITH_WARNINGS}
    assert allowing <= of(Category.OK)


def test_conditions_sets_come_from_the_catalogue() -> None:
    # the literal set of conditions.py before the catalogue, plus NotEvaluated (WAITING too: it
    # is only ever Unknown, and Transition.warning looks at False conditions only)
    progressing = conditions.PROGRESSING_REASONS
    assert progressing == {
        "Downloading", "NoDeployment", "NoReplicasReady", "ScaledToZero", "NotPlanned",
        "NotEvaluated", "Evaluating",
    }
    assert progressing == of(Category.WAITING, Category.IDLE)
    ok = of(Category.OK)
    assert ok >= conditions.WARNING_REASONS and ok > conditions._PLAIN_TRUE_REASONS


@pytest.mark.parametrize("reason", sorted(of(Category.REFUSED)) + sorted(PASSED_THROUGH))
def test_a_refused_stage_is_a_warning_event(reason: str) -> None:
    want = conditions.merge([], [conditions.Want("Sized", "False", reason, "m")], generation=1)
    assert conditions.transitions([], want)[0].warning


@pytest.mark.parametrize("reason", sorted(of(Category.WAITING, Category.IDLE)))
def test_a_waiting_stage_is_a_normal_event(reason: str) -> None:
    want = conditions.merge([], [conditions.Want("Available", "False", reason, "m")],
                            generation=1)
    assert not conditions.transitions([], want)[0].warning


def test_the_categories_table_in_the_docs_matches_the_catalogue() -> None:
    text = (ROOT / "docs" / "concepts" / "conditions.md").read_text(encoding="utf-8")
    rows = {
        cells[1]: set(re.findall(r"`([A-Za-z0-9]+)`", cells[2]))
        for line in text.splitlines() if line.startswith("| ")
        if len(cells := [c.strip() for c in line.split("|")]) > 3
    }
    for category in Category:
        expected = set(of(category)) | (PASSED_THROUGH if category is Category.REFUSED else set())
        assert rows.get(category.value) == expected, category
