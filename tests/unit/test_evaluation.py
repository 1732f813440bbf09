"""spec.evaluation's pure core: validating checks, scoring answers, the pass rate, the bounded
termination message, status.evaluation, the Evaluated condition and the evaluation Job."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from kubellm.api.v1alpha1 import EvaluationCheck, EvaluationSpec, LLMDeploymentSpec
from kubellm.errors import SpecError
from kubellm.evaluation import job as evjob
from kubellm.evaluation.checks import (
    compile_checks,
    first_number,
    inline_checks,
    parse_checks_text,
    score,
)
from kubellm.evaluation.report import (
    MESSAGE_LIMIT,
    CheckResult,
    aggregate,
    decode,
    encode,
    evaluated,
    failed_report,
    to_status,
)
from kubellm.evaluation.runner import EndpointUnreachable, RequestFailed, run
from kubellm.reasons import Reason


def check(expect: dict[str, Any], **extra: Any) -> Any:
    doc = {"name": "c", "prompt": "q", "expect": expect, **extra}
    return compile_checks([EvaluationCheck.model_validate(doc)], "spec.evaluation.checks")[0]


# ---- scoring, one kind at a time: a pass and a failure each

@pytest.mark.parametrize(("expect", "good", "bad", "why"), [
    ({"contains": "Paris"}, "It is Paris.", "It is Lyon.", "does not contain 'Paris'"),
    ({"regex": r"^\d{4}-\d{2}$"}, "2026-12", "Dec 2026", "no match for /^\\d{4}-\\d{2}$/"),
    ({"exact": "yes"}, "  yes\n", "yes!", "not exactly 'yes'"),
    ({"numeric": {"value": 42, "tolerance": 0.5}}, "The answer is 42.3", "about 41",
     "41 is not 42 ± 0.5"),
    ({"jsonSchema": {"type": "object", "required": ["city"],
                     "properties": {"city": {"type": "string"}}}},
     '```json\n{"city": "Paris"}\n```', '{"town": "Paris"}', "schema: (root): 'city' is a "
     "required property"),
])
def test_each_kind_passes_and_fails(expect: dict[str, Any], good: str, bad: str,
                                    why: str) -> None:
    c = check(expect)
    assert score(c, good).passed
    verdict = score(c, bad)
    assert not verdict.passed
    assert verdict.failure == why


def test_empty_answer_fails_every_kind() -> None:
    for expect in ({"contains": "x"}, {"regex": ".*"}, {"exact": ""},
                   {"numeric": {"value": 0}}, {"jsonSchema": {}}):
        assert score(check(expect), "  \n").failure == "empty answer"


def test_non_json_answer_for_json_schema() -> None:
    verdict = score(check({"jsonSchema": {"type": "object"}}), "Sure! {city: Paris}")
    assert not verdict.passed
    assert verdict.failure is not None and verdict.failure.startswith("not JSON:")


def test_numeric_parse() -> None:
    assert first_number("total: 1,234.5 EUR") == 1234.5
    assert first_number("-3e2 degrees") == -300.0
    assert first_number("x = .5") == 0.5
    assert first_number("no digits here") is None
    assert score(check({"numeric": {"value": 7}}), "seven").failure == "no number in the answer"


# ---- validation: the field and the fix

def test_invalid_regex_names_the_field() -> None:
    checks = [EvaluationCheck(name=f"c{i}", prompt="q", expect={"contains": "x"})  # type: ignore[arg-type]
              for i in range(3)]
    checks.append(EvaluationCheck.model_validate(
        {"name": "c3", "prompt": "q", "expect": {"regex": "([a-z]"}}))
    with pytest.raises(SpecError) as err:
        compile_checks(checks, "spec.evaluation.checks")
    assert err.value.field == "spec.evaluation.checks[3].expect.regex"
    assert "invalid regular expression" in err.value.problem and err.value.fix


def test_invalid_schema_names_the_field() -> None:
    doc = {"name": "c", "prompt": "q",
           "expect": {"jsonSchema": {"type": "object", "properties": {"a": {"type": "strnig"}}}}}
    with pytest.raises(SpecError) as err:
        compile_checks([EvaluationCheck.model_validate(doc)], "spec.evaluation.checks")
    assert err.value.field == "spec.evaluation.checks[0].expect.jsonSchema.properties.a.type"
    assert "not a valid JSON Schema" in err.value.problem


def test_duplicate_names_refused() -> None:
    one = {"name": "same", "prompt": "q", "expect": {"contains": "x"}}
    with pytest.raises(SpecError, match=r"checks\[1\]\.name: duplicate name 'same'"):
        compile_checks([EvaluationCheck.model_validate(one)] * 2, "spec.evaluation.checks")


@pytest.mark.parametrize(("doc", "message"), [
    ({"name": "c", "prompt": "q", "expect": {}}, "set exactly one of contains"),
    ({"name": "c", "prompt": "q", "expect": {"contains": "a", "exact": "a"}},
     "found contains, exact"),
    ({"name": "c", "expect": {"contains": "a"}}, "exactly one of prompt or messages"),
])
def test_schema_level_one_of_rules(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EvaluationCheck.model_validate(doc)


def test_spec_rules() -> None:
    inline = {"checks": [{"name": "c", "prompt": "q", "expect": {"contains": "a"}}]}
    assert EvaluationSpec.model_validate(inline).min_pass_rate == 1.0
    with pytest.raises(ValidationError, match="exactly one of checks or checksFrom"):
        EvaluationSpec.model_validate({})
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        EvaluationSpec.model_validate({**inline, "minPassRate": 1.5})
    with pytest.raises(ValidationError, match="tasks is not implemented yet"):
        EvaluationSpec.model_validate({**inline, "tasks": [{"name": "gsm8k"}]})
    spec = LLMDeploymentSpec.model_validate({"model": {"repo": "o/m"}, "evaluation": inline})
    assert spec.evaluation is not None and len(inline_checks(spec.evaluation)) == 1


def test_crd_carries_the_rules() -> None:
    from kubellm.crdgen import all_crds

    crd = all_crds()["kubellm.io_llmdeployments.yaml"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ev = spec["properties"]["evaluation"]
    assert ev["properties"]["minPassRate"]["maximum"] == 1
    rules = [r["rule"] for r in ev["x-kubernetes-validations"]]
    assert "has(self.checks) != has(self.checksFrom)" in rules
    item = ev["properties"]["checks"]["items"]
    assert item["x-kubernetes-validations"][0]["rule"] == "has(self.prompt) != has(self.messages)"
    assert "x-kubernetes-validations" in item["properties"]["expect"]


# ---- ConfigMap key text: JSON Lines and YAML

def test_checks_from_jsonl_and_yaml() -> None:
    jsonl = ('{"name": "a", "prompt": "p", "expect": {"contains": "x"}}\n\n# comment\n'
             '{"name": "b", "messages": [{"role": "user", "content": "hi"}], '
             '"expect": {"exact": "hi"}}\n')
    assert [c.name for c in parse_checks_text(jsonl, "ConfigMap e key c.jsonl")] == ["a", "b"]
    yml = "- name: a\n  prompt: p\n  expect: {numeric: {value: 3}}\n"
    assert parse_checks_text(yml, "ConfigMap e key c.yaml")[0].kind == "numeric"


@pytest.mark.parametrize(("text", "where", "problem"), [
    ('{"name": "a", "prompt": "p", "expect": {"contains": "x"}}\n{oops\n',
     "ConfigMap e key k line 2", "not JSON"),
    ('{"name": "a", "prompt": "p", "expect": {"regex": "["}}\n',
     "ConfigMap e key k[0].expect.regex", "invalid regular expression"),
    ("- name: a\n  prompt: p\n", "ConfigMap e key k item 0: expect", "Field required"),
    ("just: a mapping\n", "ConfigMap e key k", "is not a list"),
    ("", "ConfigMap e key k", "is not a list"),
])
def test_checks_from_errors(text: str, where: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_checks_text(text, "ConfigMap e key k")
    assert err.value.field == where
    assert problem in err.value.problem


# ---- the runner and the pass rate

def test_weighted_pass_rate_and_runner() -> None:
    checks = compile_checks([
        EvaluationCheck.model_validate({"name": "a", "prompt": "1", "weight": 3,
                                        "expect": {"contains": "ok"}}),
        EvaluationCheck.model_validate({"name": "b", "prompt": "2",
                                        "expect": {"contains": "ok"}}),
        EvaluationCheck.model_validate({"name": "c", "prompt": "3",
                                        "expect": {"contains": "ok"}}),
    ], "checks")
    answers = {"1": "ok", "2": "no"}

    def complete(c: Any) -> str:
        if c.spec.prompt == "3":
            raise RequestFailed("HTTP 400: prompt too long")
        return answers[c.spec.prompt]

    report = run(checks, complete, min_pass_rate=0.6, timeout_seconds=60)
    assert report.pass_rate == 0.6 and report.passed  # 3 of 5 weight
    assert [c.failure for c in report.checks] == [
        None, "does not contain 'ok'", "request failed: HTTP 400: prompt too long"]
    assert not aggregate(report.checks, 0.61).passed


def test_unreachable_endpoint_is_an_evaluation_failure_not_zero_percent() -> None:
    checks = [check({"contains": "x"})]

    def complete(_c: Any) -> str:
        raise EndpointUnreachable("endpoint http://x/v1 unreachable")

    report = run(checks, complete, min_pass_rate=0.0, timeout_seconds=60)
    assert report.error == "endpoint http://x/v1 unreachable" and not report.passed
    want = evaluated(to_status(report, revision="abc", generation=2, spec_hash="h"))
    assert (want.status, want.reason) == ("False", Reason.EVALUATION_FAILED)


def test_timeout_stops_the_run() -> None:
    ticks = iter(range(0, 1000, 40))
    report = run([check({"contains": "x"})] * 1, lambda _c: "x", min_pass_rate=1,
                 timeout_seconds=60, clock=lambda: float(next(ticks)))
    assert report.passed
    ticks = iter(range(0, 1000, 70))
    report = run([check({"contains": "x"})] * 1, lambda _c: "x", min_pass_rate=1,
                 timeout_seconds=60, clock=lambda: float(next(ticks)))
    assert report.error is not None and "timeoutSeconds (60 s) ran out after 0 of 1" in report.error


# ---- termination message: round trip and size bound

def test_termination_message_round_trip() -> None:
    results = [CheckResult("a", True, 2.0, 0.25), CheckResult("b", False, 1.0, 1.5, "no match")]
    report = aggregate(results, 0.5, 1.75)
    back = decode(encode(report))
    assert back.pass_rate == report.pass_rate and back.passed
    assert {c.name: (c.passed, c.failure) for c in back.checks} == {
        "a": (True, None), "b": (False, "no match")}
    assert back.checks[0].name == "b"  # failures first


def test_termination_message_is_bounded() -> None:
    results = [CheckResult(f"check-{i:04d}", i % 3 == 0, 1.0, 0.1, None if i % 3 == 0
                           else "does not contain " + "é" * 500) for i in range(2000)]
    report = aggregate(results, 0.9)
    data = encode(report)
    assert len(data) <= MESSAGE_LIMIT
    back = decode(data)
    assert back.total == 2000 and back.failed == report.failed
    assert len(back.checks) + back.omitted == 2000
    assert back.checks and not back.checks[0].passed  # failures kept before passes
    assert all(len(c.failure or "") <= 200 for c in back.checks)
    huge = failed_report("x" * 50_000, 1.0)
    assert len(encode(huge)) <= MESSAGE_LIMIT and decode(encode(huge)).error


@pytest.mark.parametrize("garbage", [b"", b"OOMKilled", b'{"v": 9}', b'{"v": 1}', b"\xff\xfe"])
def test_decode_refuses_what_is_not_a_report(garbage: bytes) -> None:
    with pytest.raises(ValueError, match="termination message"):
        decode(garbage)


# ---- status and the condition

def test_status_and_condition() -> None:
    report = aggregate([CheckResult("a", True), CheckResult("b", False, failure="x" * 999)], 0.8)
    status = to_status(report, revision="0123abcd", generation=4, spec_hash="h1", job_name="j")
    assert status.revision == "0123abcd" and status.generation == 4 and status.passed is False
    assert status.checks[0].score == 0.0 and len(status.checks[0].failure or "") == 200
    want = evaluated(status)
    assert (want.type, want.status, want.reason) == ("Evaluated", "False", Reason.BELOW_THRESHOLD)
    assert want.message == "pass rate 50% (1/2 checks), minimum 80%; failed: b"
    ok = evaluated(to_status(aggregate([CheckResult("a", True)], 1.0), revision="r",
                             generation=1, spec_hash="h"))
    assert (ok.status, ok.reason) == ("True", Reason.PASSED)
    assert evaluated(None).status == "Unknown"
    dumped = json.dumps(status.dump())
    assert '"passRate": 0.5' in dumped and '"durationSeconds"' in dumped


# ---- the Job

def _spec(**extra: Any) -> EvaluationSpec:
    return EvaluationSpec.model_validate(
        {"checks": [{"name": "c", "prompt": "q", "expect": {"contains": "a"}}], **extra})


def _job(spec: EvaluationSpec, generation: int = 1, revision: str = "a" * 40) -> dict[str, Any]:
    return evjob.render_job(llmd_name="tiny", namespace="ns", generation=generation,
                            revision=revision, spec=spec, endpoint="http://tiny.ns.svc:8000/v1",
                            model="org/tiny", image="ghcr.io/kubellm/kubellm:0.1.0")


def test_job_is_keyed_by_generation_revision_and_spec() -> None:
    base = _job(_spec())["metadata"]["name"]
    assert base.startswith("tiny-eval-") and len(base) <= 63
    assert _job(_spec())["metadata"]["name"] == base
    assert _job(_spec(), generation=2)["metadata"]["name"] != base
    assert _job(_spec(), revision="b" * 40)["metadata"]["name"] != base
    assert _job(_spec(minPassRate=0.5))["metadata"]["name"] != base
    long = evjob.job_name("x" * 80, "0123456789")
    assert len(long) <= 63 and long.endswith("-eval-0123456789")


def test_job_runs_kubellm_eval_without_api_access() -> None:
    job = _job(_spec())
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False
    assert container["terminationMessagePolicy"] == "File"
    assert container["args"][0] == "eval" and "--termination-log" in container["args"]
    spec_json = container["args"][container["args"].index("--evaluation") + 1]
    assert EvaluationSpec.model_validate(json.loads(spec_json)) == _spec()
    assert job["spec"]["activeDeadlineSeconds"] == 600 + 60
    assert job["metadata"]["annotations"][evjob.ANNOTATION_REVISION] == "a" * 40


def test_job_mounts_checks_from_configmap() -> None:
    spec = EvaluationSpec.model_validate(
        {"checksFrom": {"configMapRef": {"name": "evals", "key": "checks.jsonl"}}})
    job = _job(spec)
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "checks")
    assert volume["configMap"] == {"name": "evals", "optional": True,
                                   "items": [{"key": "checks.jsonl", "path": "checks.jsonl"}]}
    args = pod["containers"][0]["args"]
    assert args[args.index("--checks-file") + 1] == "/etc/kubellm/checks/checks.jsonl"


# ---- the reconciler's hooks: desired Job, observed status

def _llmd(evaluation: dict[str, Any] | None) -> Any:
    from kubellm.api.v1alpha1 import LLMDeployment

    return LLMDeployment.model_validate({
        "metadata": {"name": "tiny", "namespace": "ns", "generation": 3, "uid": "u-1"},
        "spec": {"model": {"repo": "org/tiny"}, **({"evaluation": evaluation} if evaluation
                                                    else {})}})


def test_desired_job_or_refusal() -> None:
    from kubellm.evaluation.hooks import desired

    kw = {"revision": "a" * 40, "endpoint": "http://tiny.ns.svc:8000/v1", "image": "img"}
    assert desired(_llmd(None), **kw).job is None
    ok = desired(_llmd({"checks": [{"name": "c", "prompt": "q", "expect": {"contains": "a"}}]}),
                 **kw)
    assert ok.job is not None and ok.status is None
    assert ok.job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert ok.job["metadata"]["annotations"][evjob.ANNOTATION_GENERATION] == "3"
    bad = desired(_llmd({"checks": [{"name": "c", "prompt": "q", "expect": {"regex": "("}}]}),
                  **kw)
    assert bad.job is None and bad.status is not None
    want = evaluated(bad.status)
    assert want.reason == Reason.EVALUATION_FAILED
    assert want.message.startswith("spec.evaluation.checks[0].expect.regex: invalid regular")


def _finished_job(kind: str = "Complete", reason: str = "") -> dict[str, Any]:
    job = _job(_spec())
    job["status"] = {"conditions": [{"type": kind, "status": "True", "reason": reason}]}
    return job


def _pod(message: str | None, created: str) -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": 0}
    if message is not None:
        terminated["message"] = message
    return {"metadata": {"creationTimestamp": created},
            "status": {"containerStatuses": [{"name": "evaluate",
                                              "state": {"terminated": terminated}}]}}


def test_observe_reads_the_newest_report() -> None:
    from kubellm.evaluation.hooks import observe

    running = _job(_spec())
    assert observe(running, []) is None
    old = encode(aggregate([CheckResult("a", False, failure="x")], 1.0)).decode()
    new = encode(aggregate([CheckResult("a", True)], 1.0)).decode()
    status = observe(_finished_job(), [_pod(new, "2026-12-03T10:01:00Z"),
                                       _pod(old, "2026-12-03T10:00:00Z")])
    assert status is not None and status.passed is True
    assert status.revision == "a" * 40 and status.generation == 1
    assert status.spec_hash == evjob.spec_hash(_spec())


def test_observe_a_job_without_report_is_an_evaluation_failure() -> None:
    from kubellm.evaluation.hooks import observe

    status = observe(_finished_job("Failed", "DeadlineExceeded"), [_pod(None, "t")])
    assert status is not None and evaluated(status).reason == Reason.EVALUATION_FAILED
    assert "failed without a report (DeadlineExceeded)" in str(status.error)
    garbage = observe(_finished_job("Failed", "PodFailurePolicy"), [_pod("OOMKilled", "t")])
    assert garbage is not None and "not JSON" in str(garbage.error)


def test_gate_folds_evaluated_into_ready() -> None:
    from kubellm.conditions import Want
    from kubellm.evaluation.hooks import gate

    checks = [{"name": "c", "prompt": "q", "expect": {"contains": "a"}}]
    ready = Want("Ready", "True", Reason.READY, "Serving")
    below = Want("Evaluated", "False", Reason.BELOW_THRESHOLD, "pass rate 50%")
    gated = gate(ready, below, _llmd({"checks": checks, "gate": True}))
    assert (gated.status, gated.reason, gated.message) == (
        "False", Reason.BELOW_THRESHOLD, "Evaluated: pass rate 50%")
    assert gate(ready, below, _llmd({"checks": checks})) == ready  # no gate: never blocks
    waiting = Want("Evaluated", "Unknown", Reason.EVALUATING, "running")
    assert gate(ready, waiting, _llmd({"checks": checks, "gate": True})).status == "Unknown"
    passed = Want("Evaluated", "True", Reason.PASSED, "ok")
    assert gate(ready, passed, _llmd({"checks": checks, "gate": True})) == ready
    not_ready = Want("Ready", "False", Reason.NO_REPLICAS_READY, "0/1")
    assert gate(not_ready, below, _llmd({"checks": checks, "gate": True})) == not_ready


@pytest.mark.parametrize(("key", "value", "passes"), [
    ("LLMDeployment.spec.evaluation", {"checks": []}, True),
    ("LLMDeployment.spec.evaluation", {"checksFrom": {"configMapRef": {"name": "e", "key": "k"}}},
     True),
    ("LLMDeployment.spec.evaluation", {}, False),
    ("LLMDeployment.spec.evaluation",
     {"checks": [], "checksFrom": {"configMapRef": {"name": "e", "key": "k"}}}, False),
    ("LLMDeployment.spec.evaluation", {"checks": [], "tasks": [{}]}, False),
    ("LLMDeployment.spec.evaluation.checks[*]", {"prompt": "p"}, True),
    ("LLMDeployment.spec.evaluation.checks[*]", {"messages": [{"role": "user"}]}, True),
    ("LLMDeployment.spec.evaluation.checks[*]", {"prompt": "p", "messages": []}, False),
    ("LLMDeployment.spec.evaluation.checks[*]", {"name": "n"}, False),
    ("LLMDeployment.spec.evaluation.checks[*].expect", {"regex": "a"}, True),
    ("LLMDeployment.spec.evaluation.checks[*].expect", {"numeric": {"value": 1}}, True),
    ("LLMDeployment.spec.evaluation.checks[*].expect", {}, False),
    ("LLMDeployment.spec.evaluation.checks[*].expect", {"exact": "a", "contains": "a"}, False),
])
def test_cel_rules_agree_with_the_validators(key: str, value: dict[str, Any],
                                             passes: bool) -> None:
    """The CEL side, evaluated by cel-python as the apiserver would (the pydantic side is
    tested above with the same shapes)."""
    import celpy
    from celpy.adapter import json_to_cel

    from kubellm.api.v1alpha1 import CEL_RULES

    env = celpy.Environment()
    results = [bool(env.program(env.compile(r["rule"])).evaluate({"self": json_to_cel(value)}))
               for r in CEL_RULES[key]]
    assert all(results) is passes
