"""``kubellm eval`` against the fake OpenAI server (tests/evalfixtures/fake_openai.py, a test
double): exit codes 0 / 1 / 2, the three outputs, retries, the Job's termination log, checksFrom.
In-process (``kubellm.cli.main``) except the last test, which runs the command as a user does."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalfixtures.fake_openai import FakeOpenAI, serve
from kubellm.cli import main
from kubellm.evaluation.report import MESSAGE_LIMIT, decode

CHECKS = [
    {"name": "capital", "messages": [{"role": "user", "content": "Capital of France?"}],
     "expect": {"contains": "Paris"}},
    {"name": "sum", "prompt": "2+2=", "expect": {"numeric": {"value": 4}}, "maxTokens": 4},
    {"name": "json", "messages": [{"role": "user", "content": "City as JSON"}],
     "expect": {"jsonSchema": {"type": "object", "required": ["city"]}}},
]
ANSWERS = {"Capital of France?": "Paris.", "2+2=": " 4", "City as JSON": '{"city": "Paris"}'}


def manifest(tmp_path: Path, evaluation: dict[str, Any], name: str = "d.yaml") -> Path:
    doc = {"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
           "metadata": {"name": "tiny"},
           "spec": {"model": {"repo": "org/tiny"}, "servedModelName": "tiny",
                    "evaluation": evaluation}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_all_pass_exit_0_and_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, {"checks": CHECKS})
    with serve(FakeOpenAI(answers=ANSWERS)) as fake:
        assert main(["eval", "-f", str(path), "--endpoint", fake.url]) == 0
    out = capsys.readouterr().out
    assert "PASS  capital" in out and "pass rate 100.0% (3/3 checks)" in out
    paths = [p for p, _ in fake.requests]
    assert paths == ["/v1/chat/completions", "/v1/completions", "/v1/chat/completions"]
    body = fake.requests[1][1]
    assert body == {"model": "tiny", "max_tokens": 4, "temperature": 0, "prompt": "2+2="}


def test_below_threshold_exit_1_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, {"checks": CHECKS, "minPassRate": 0.9})
    with serve(FakeOpenAI(answers={**ANSWERS, "City as JSON": "Paris, I think"})) as fake:
        code = main(["eval", "-f", str(path), "--endpoint", fake.url.removesuffix("/v1"),
                     "-o", "json", "--model", "other"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False and doc["failed"] == 1 and doc["passRate"] == 0.6667
    assert doc["checks"][0]["name"] == "json"
    assert doc["checks"][0]["failure"].startswith("not JSON")
    assert fake.requests[0][1]["model"] == "other"


def test_yaml_output_and_retry_of_503(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, {"checks": CHECKS[:1]})
    with serve(FakeOpenAI(answers=ANSWERS, fail_next=[503, 503])) as fake:
        assert main(["eval", "-f", str(path), "--endpoint", fake.url, "-o", "yaml"]) == 0
    assert len(fake.requests) == 3
    assert yaml.safe_load(capsys.readouterr().out)["passed"] is True


def test_http_400_fails_the_check_only(tmp_path: Path) -> None:
    path = manifest(tmp_path, {"checks": CHECKS, "minPassRate": 0.5})
    log = tmp_path / "termination-log"
    with serve(FakeOpenAI(answers=ANSWERS, fail_next=[400])) as fake:
        code = main(["eval", "-f", str(path), "--endpoint", fake.url,
                     "--termination-log", str(log)])
    assert code == 0
    report = decode(log.read_bytes())
    assert report.failed == 1 and report.checks[0].failure is not None
    assert report.checks[0].failure.startswith("request failed: HTTP 400 from")


def test_unreachable_endpoint_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, {"checks": CHECKS})
    url = f"http://127.0.0.1:{free_port()}/v1"
    log = tmp_path / "termination-log"
    code = main(["eval", "-f", str(path), "--endpoint", url, "--retries", "1",
                 "--termination-log", str(log)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"endpoint {url} unreachable after 2 attempts" in err
    assert "check the URL and that the server is up" in err
    assert decode(log.read_bytes()).error is not None


def test_bad_check_exit_2_names_field_and_writes_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = [*CHECKS[:3], {"name": "r", "prompt": "x", "expect": {"regex": "a(b"}}]
    path = manifest(tmp_path, {"checks": bad})
    log = tmp_path / "termination-log"
    assert main(["eval", "-f", str(path), "--endpoint", "http://127.0.0.1:1/v1",
                 "--termination-log", str(log)]) == 2
    assert "spec.evaluation.checks[3].expect.regex: invalid regular expression" in \
        capsys.readouterr().err
    assert "checks[3].expect.regex" in str(decode(log.read_bytes()).error)


def test_checks_from_configmap_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evaluation = {"checksFrom": {"configMapRef": {"name": "evals", "key": "checks.jsonl"}}}
    path = manifest(tmp_path, evaluation)
    assert main(["eval", "-f", str(path), "--endpoint", "http://127.0.0.1:1/v1"]) == 2
    assert "pass them with --checks-file" in capsys.readouterr().err
    missing = tmp_path / "absent.jsonl"
    assert main(["eval", "-f", str(path), "--endpoint", "http://127.0.0.1:1/v1",
                 "--checks-file", str(missing)]) == 2
    assert "ConfigMap evals key checks.jsonl: not found" in capsys.readouterr().err
    jsonl = tmp_path / "checks.jsonl"
    jsonl.write_text("\n".join(json.dumps(c) for c in CHECKS) + "\n")
    with serve(FakeOpenAI(answers=ANSWERS)) as fake:
        assert main(["eval", "-f", str(path), "--endpoint", fake.url,
                     "--checks-file", str(jsonl)]) == 0


def test_job_args_run_as_the_job_runs_them(tmp_path: Path) -> None:
    """The exact argument list the rendered Job carries, with the log redirected."""
    from kubellm.api.v1alpha1 import EvaluationSpec
    from kubellm.evaluation.job import TERMINATION_LOG, job_args

    spec = EvaluationSpec.model_validate({"checks": CHECKS * 1, "minPassRate": 1.0})
    log = tmp_path / "termination-log"
    with serve(FakeOpenAI(answers={**ANSWERS, "2+2=": "five"})) as fake:
        args = job_args(spec, fake.url, "tiny")
        args[args.index(TERMINATION_LOG)] = str(log)
        assert main(args) == 1
    data = log.read_bytes()
    assert len(data) <= MESSAGE_LIMIT
    report = decode(data)
    assert (report.total, report.failed) == (3, 1)


def test_kubellm_eval_as_a_user_runs_it(tmp_path: Path) -> None:
    path = manifest(tmp_path, {"checks": CHECKS})
    with serve(FakeOpenAI(answers=ANSWERS)) as fake:
        done = subprocess.run([sys.executable, "-m", "kubellm", "eval", "-f", str(path),
                               "--endpoint", fake.url], capture_output=True, text=True,
                              timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "pass rate 100.0%" in done.stdout
