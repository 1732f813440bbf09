"""Fuzzing ``kubellm plan`` (issue 12, item 2): generated manifests never crash it.

Thousands of LLMDeployment and LicensePolicy documents, derived from valid ones by mutations at
every level (wrong types, missing and unknown fields, extreme numbers, unicode, dates, scalars
where objects belong, ``metadata: 5``, a string as a document) and serialised as YAML or JSON,
one or several per file, sometimes inside a ``List``, sometimes cut short or with a character
thrown in (broken YAML). Each file goes through ``kubellm plan``'s entry function in-process
(``kubellm.cli.main``), offline against an HF cache of the fixture repos, and a handful through
the real CLI in a subprocess. The contract:

- the exit code is 0, 1 or 2, and nothing escapes as a traceback;
- exit 2 says ``error: <file> document <n>[ item <i>] [(<Kind> <name>)]: <field>: <problem>``
  (broken YAML: ``<file> document <n> line <l> column <c>: not valid YAML: ...``), so the user
  knows which file, which document and which field to fix.

Bounded in time: hypothesis runs derandomised (the same examples on every machine, no example
database) with a fixed number of examples per test; the case counts are printed with ``-s``
and asserted by ``test_fuzz_case_counts`` (which runs last in this module).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import JUNK, mutated
from hubfixtures.cache import build_offline_cache
from kubellm.api.v1alpha1 import runtime_names

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = str(ROOT / "examples" / "cluster" / "inventory.yaml")

# Repos in the offline cache (real-looking facts), one gated GGUF and one that is not there.
CACHED_REPOS = [
    "Qwen/Qwen2.5-7B-Instruct",
    "meta-llama/Llama-3.1-8B-Instruct",
    "mistralai/Mistral-Large-Instruct-2407",
    "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
    "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
    "deepseek-ai/DeepSeek-V2-Lite-Chat",
]
BASES = ["Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B-Instruct"]
REPOS = [*CACHED_REPOS, "nobody/not-cached", "a", "a/b"]

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
COUNTS: dict[str, int] = {}
TIMES: dict[str, float] = {}
EXITS: dict[int, int] = {0: 0, 1: 0, 2: 0}

# ``error: <where>: <field>: <problem>`` for document errors; ``<where> line l column c`` for YAML.
DOC_ERROR = re.compile(
    r"^error: (?P<file>.+?) document (?P<doc>\d+)(?: item (?P<item>\d+))?"
    r"(?: \((?P<kind>LLMDeployment|LicensePolicy) (?P<name>[^)]*)\))?"
    r"(?: line (?P<line>\d+) column (?P<col>\d+))?: (?P<rest>.+)",
    re.DOTALL,
)
# The field (or the YAML problem) the message starts with, after the document.
FIELD = re.compile(r"^(<document>|apiVersion|kind|metadata|spec|items)([.\[(].*?)?: \S", re.DOTALL)


# ------------------------------------------------------------------ the environment


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """huggingface_hub offline against a cache of the fixture repos, for in-process plans.

    ``kubellm.modelinfo._hub`` reads ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` from
    ``huggingface_hub.constants`` at call time, so patching the constants is enough here.
    """
    from huggingface_hub import constants

    import kubellm.cli
    import kubellm.modelinfo

    root = tmp_path_factory.mktemp("fuzzhf")
    cache = build_offline_cache(root, [*CACHED_REPOS, *BASES])
    parser = kubellm.cli.build_parser()
    resolver = kubellm.modelinfo.FactsResolver()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setattr(constants, "HF_HUB_CACHE", str(cache))
        mp.delenv("HF_ENDPOINT", raising=False)
        # Speed only: one argparse parser (building it imports and registers every command)
        # and one memoising resolver (as the operator keeps one) for all the runs.
        mp.setattr(kubellm.cli, "build_parser", lambda: parser)
        mp.setattr(kubellm.modelinfo, "FactsResolver", lambda: resolver)
        yield root


def run_plan(files: list[Path], *extra: str) -> tuple[int, str, str]:
    """``kubellm plan -f FILE...`` in-process: (exit code, stdout, stderr)."""
    from kubellm.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["plan", *[a for f in files for a in ("-f", str(f))], *extra]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def check_outcome(code: int, out: str, err: str, files: list[Path], text: str) -> None:
    """The contract above; ``text`` is shown when it does not hold."""
    assert code in (0, 1, 2), (code, err, text)
    EXITS[code] += 1
    if code in (0, 1):
        assert out.strip(), (code, err, text)
        return
    assert err.startswith("error: "), (err, text)
    assert "Traceback" not in err
    if "no LLMDeployment" in err:  # the input holds none: every file is named
        assert all(str(f) in err for f in files), (err, text)
        return
    m = DOC_ERROR.match(err)
    assert m is not None, f"exit 2 must name file, document and field:\n{err}\n---\n{text}"
    assert m["file"] in {str(f) for f in files}, (err, text)
    assert int(m["doc"]) >= 1
    if m["line"] is None:
        assert FIELD.match(m["rest"]), f"no field named:\n{err}\n---\n{text}"
    else:
        assert m["rest"].startswith("not valid YAML: "), (err, text)


# ------------------------------------------------------------------ strategies

NAME = st.sampled_from(["a", "web", "qwen-7b", "x.y", "m1", "z" * 63])
QUANTS = ["auto", "none", "fp8", "awq", "gptq", "gguf", "bitsandbytes", "compressed-tensors",
          "mxfp4"]


# Valid values per field, as whole sub-documents: one draw per field keeps generation cheap
# (hypothesis spends most of a run in draws), and mutations below reach inside them.
ABSENT = object()
MODELS = [
    {"repo": r} for r in REPOS
] + [
    {"repo": "Qwen/Qwen2.5-7B-Instruct", "revision": "0" * 40},
    {"repo": "nobody/not-cached", "license": "apache-2.0", "parameters": "8B"},
    {"repo": "nobody/not-cached", "license": "other", "licenseName": "nvidia-open-model-license",
     "parameters": 70_000_000_000, "baseModel": "meta-llama/Llama-3.1-8B"},
    {"repo": "a/b", "license": "other", "licenseName": "acme", "parameters": "560M"},
    {"repo": "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
     "file": "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"},
    {"repo": "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "file": "model-Q4_K_M.gguf"},
    {"repo": "meta-llama/Llama-3.1-8B-Instruct", "revision": "v1.0", "license": "llama3.1"},
]
SPEC_FIELDS: dict[str, list[Any]] = {
    "quantization": QUANTS,
    "runtime": list(runtime_names()),  # auto and every runtime of the registry
    "replicas": [0, 1, 3, 1000],
    "context": [{}, {"maxModelLen": 4096}, {"maxModelLen": "auto", "concurrency": 64},
                {"maxModelLen": 10_485_760, "kvCacheDtype": "fp8"}, {"concurrency": 4096}],
    "gpu": [{}, {"type": "NVIDIA-L4"}, {"type": "h100", "count": 8},
            {"type": "a100-80gb", "count": 3, "memoryUtilization": 0.5},
            {"type": "NVIDIA-B9000"}, {"count": 1024, "memoryUtilization": 0.99}],
    "cache": [{}, {"enabled": False}, {"size": "200Gi", "accessMode": "ReadWriteMany",
                                       "storageClassName": "fast"}, {"size": "5"}],
    "hubTokenSecretRef": [{"name": "hf"}, {"name": "hf", "key": "token"}],
    "servedModelName": ["chat", "Qwen/Qwen2.5-7B-Instruct", "\u00e9t\u00e9"],
    "image": ["vllm/vllm-openai:v0.0.1", "registry.local/x:1"],
    "args": [[], ["--enforce-eager"], ["--max-num-seqs", "8"]],
    "env": [[], [{"name": "A", "value": "1"}],
            [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]],
    "resources": [{"requests": {"cpu": "4", "memory": "32Gi"}}, {"limits": {"cpu": 8}},
                  {"claims": [{"name": "gpu"}]}],
    "nodeSelector": [{}, {"pool": "gpu"}],
    "tolerations": [[], [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    [{"key": "a", "operator": "Equal", "value": "b", "tolerationSeconds": 5}]],
}
POLICY_FIELDS: dict[str, list[Any]] = {
    "mode": ["Enforce", "Warn"],
    "namespaces": [[], ["team-*"], ["research", "default"], ["*"]],
    "allowedClasses": [[], ["permissive"], ["permissive", "restrictive-community",
                                            "research-only"], ["unknown"]],
    "allowedLicenses": [["gemma", "qwen"], ["mrl"]],
    "deniedLicenses": [["llama4"], ["cc-by-nc-4.0", "nvidia-open-model-license"]],
    "commercialUse": [True, False],
    "jurisdiction": ["EU", "DE", "US", "GB", "KR"],
    "monthlyActiveUsers": [0, 2_000_000, 10**10],
    "requireOpenSource": [True, False],
    "allowGated": [True, False],
    "unknownLicense": ["Deny", "Warn"],
    "exceptions": [[], [{"model": "mistralai/*", "reason": "legal ok"}],
                   [{"model": "*", "reason": "r", "expires": "2020-01-01"},
                    {"model": "a/b", "reason": "r", "expires": "2027-01-31"}]],
}


def _choices(fields: dict[str, list[Any]]) -> dict[str, st.SearchStrategy[Any]]:
    return {key: st.sampled_from([ABSENT, ABSENT, *values]) for key, values in fields.items()}


SPEC_CHOICES, POLICY_CHOICES = _choices(SPEC_FIELDS), _choices(POLICY_FIELDS)
MODEL_CHOICE = st.sampled_from(MODELS)


def _fields(draw: st.DrawFn, choices: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, strategy in choices.items():
        value = draw(strategy)
        if value is not ABSENT:
            out[key] = json.loads(json.dumps(value))  # a fresh copy: mutations change it
    return out


@st.composite
def valid_deployment(draw: st.DrawFn) -> dict[str, Any]:
    """A valid (cross-field rules aside) LLMDeployment, some fields set, some defaulted."""
    spec = {"model": dict(draw(MODEL_CHOICE)), **_fields(draw, SPEC_CHOICES)}
    metadata: dict[str, Any] = {"name": draw(NAME)}
    namespace = draw(st.sampled_from([None, "default", "team-a", "research"]))
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": metadata, "spec": spec}


@st.composite
def valid_policy(draw: st.DrawFn) -> dict[str, Any]:
    return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LicensePolicy",
            "metadata": {"name": draw(NAME)}, "spec": _fields(draw, POLICY_CHOICES)}


DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when built with it: faster


def _dump(doc: Any, fmt: str, unicode: bool) -> str:
    if fmt == "json":
        return json.dumps(doc, default=str, ensure_ascii=not unicode)
    return yaml.dump(doc, Dumper=DUMPER, allow_unicode=unicode, sort_keys=False)


@st.composite
def manifest_files(draw: st.DrawFn) -> str:
    """The text of one ``-f`` file: 1-3 documents (mutated or not), maybe in a List, maybe
    broken at the text level."""
    docs = draw(st.lists(st.one_of(mutated(valid_deployment()), mutated(valid_policy()),
                                   valid_deployment(), JUNK), min_size=1, max_size=3))
    fmt = draw(st.sampled_from(["yaml", "yaml", "json"]))
    unicode = draw(st.booleans())
    if draw(st.integers(0, 5)) == 0:  # a List of them
        docs = [{"apiVersion": "v1", "kind": "List", "items": docs}]
    text = ("---\n" if fmt == "yaml" else "\n---\n").join(_dump(d, fmt, unicode) for d in docs)
    if draw(st.integers(0, 4)) == 0:  # broken at the text level
        how = draw(st.sampled_from(["cut", "insert", "dedent", "duplicate-key"]))
        pos = draw(st.integers(0, max(len(text) - 1, 0)))
        if how == "cut":
            text = text[:pos]
        elif how == "insert":
            text = text[:pos] + draw(st.sampled_from(
                ["\t", ":", "- ", "{", "}", "[", "'", '"', "&x ", "*x", "!!", "!!python/name:os",
                 "\n---\n", "\n...\n", "%YAML 1.1\n", "\x00", "\ufeff", "\x85"])) + text[pos:]
        elif how == "dedent":
            text = text.replace("\n  ", "\n ", 1)
        else:
            text = text.replace("spec:", "spec: {}\nspec:", 1)
    return text


# ------------------------------------------------------------------ the tests


def _timed(name: str, started: float) -> None:
    TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - started


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the generated files go: tmpfs when there is one (a write to an overlay disk costs
    milliseconds, a thousand of them seconds)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="kubellm-fuzz-") as d:
            yield Path(d)
    else:
        yield tmp_path_factory.mktemp("fuzzplan")


@settings(FUZZ, max_examples=800)
@given(text=manifest_files())
def test_fuzz_plan_manifests(offline: Path, workdir: Path, text: str) -> None:
    started = time.perf_counter()
    f = workdir / "manifests.yaml"
    f.write_text(text, encoding="utf-8")
    code, out, err = run_plan([f], "-o", "json", "--inventory", INVENTORY)
    check_outcome(code, out, err, [f], text)
    COUNTS["manifests"] = COUNTS.get("manifests", 0) + 1
    _timed("manifests", started)


@settings(FUZZ, max_examples=300)
@given(deployment=valid_deployment(), policy=mutated(valid_policy()),
       fmt=st.sampled_from(["yaml", "json"]))
def test_fuzz_plan_policies(offline: Path, workdir: Path, deployment: dict[str, Any],
                            policy: Any, fmt: str) -> None:
    """A good deployment with a generated LicensePolicy passed by ``--policy``."""
    started = time.perf_counter()
    f = workdir / "deploy.yaml"
    p = workdir / "policy.yaml"
    f.write_text(_dump(deployment, "yaml", True), encoding="utf-8")
    policy_text = _dump(policy, fmt, True)
    p.write_text(policy_text, encoding="utf-8")
    code, out, err = run_plan([f], "--policy", str(p), "-o", "json")
    check_outcome(code, out, err, [f, p], policy_text)
    COUNTS["policies"] = COUNTS.get("policies", 0) + 1
    _timed("policies", started)


@settings(FUZZ, max_examples=200)
@given(deployment=valid_deployment())
def test_fuzz_plan_valid_deployments_reach_a_verdict(offline: Path, workdir: Path,
                                                     deployment: dict[str, Any]) -> None:
    """Valid documents (cross-field rules aside) get a plan: exit 0 or 1, text output."""
    started = time.perf_counter()
    f = workdir / "valid.yaml"
    text = _dump(deployment, "yaml", False)
    f.write_text(text, encoding="utf-8")
    code, out, err = run_plan([f], "--show-objects")
    check_outcome(code, out, err, [f], text)
    if code == 2:  # only the documented cross-field rules may refuse a valid-looking file
        assert "spec: " in err or "model.file" in err or "tgi" in err, err
    COUNTS["valid"] = COUNTS.get("valid", 0) + 1
    _timed("valid", started)


# Fixed nasty cases: all of them in-process, the first ones (CLI_CASES) also through the real
# CLI, where the exit code and stderr are what a user sees.
NASTY = {
    "metadata-5": "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: 5\n"
                  "spec: {model: {repo: a/b}}\n",
    "string-document": "just a string\n",
    "broken-yaml": "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: a\n",
    "second-document-bad": "apiVersion: kubellm.io/v1alpha1\nkind: LicensePolicy\n"
                           "metadata: {name: p}\n---\napiVersion: kubellm.io/v1alpha1\n"
                           "kind: LLMDeployment\nmetadata: {name: x}\n"
                           "spec: {model: {repo: a/b, parameters: 1e999B}, "
                           "servedModelName: \"\u00e9\U0001f600\"}\n",
    "good": "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: q}\n"
            "spec: {model: {repo: Qwen/Qwen2.5-7B-Instruct}}\n",
    "deep-nesting": "a: " + "[" * 600 + "]" * 600 + "\n",
    "huge-int": "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: a}\n"
                "spec: {model: {repo: a/b, parameters: " + "9" * 500 + "}}\n",
    "invalid-date": "apiVersion: kubellm.io/v1alpha1\nkind: LicensePolicy\nmetadata: {name: p}\n"
                    "spec: {exceptions: [{model: a, reason: b, expires: 2027-02-30}]}\n---\n"
                    "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: a}\n"
                    "spec: {model: {repo: a/b}}\n",
    "duplicate-key": "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: a}\n"
                     "spec: {model: {repo: a/b}}\nspec: {}\n",
    "env-value-mapping": "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\n"
                         "metadata: {name: a}\nspec:\n  model: {repo: Qwen/Qwen2.5-7B-Instruct}\n"
                         "  env: [{name: A, value: {0: x, b: y}}]\n",
    "list-of-scalars": "apiVersion: v1\nkind: List\nitems: [5]\n",
    "nul-byte": "apiVersion: kubellm.io/v1alpha1\x00\n",
    "unknown-kubellm-kind": "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeploy\n"
                            "metadata: {name: a}\n",
    "no-deployment": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
}
CLI_CASES = {k: NASTY[k] for k in
             ("metadata-5", "string-document", "broken-yaml", "second-document-bad", "good")}


def test_fuzz_plan_nasty_cases_in_process(offline: Path, workdir: Path) -> None:
    for name, text in NASTY.items():
        f = workdir / f"nasty-{name}.yaml"
        f.write_text(text, encoding="utf-8")
        code, out, err = run_plan([f], "-o", "json")
        check_outcome(code, out, err, [f], text)
        assert code == (0 if name == "good" else 2), (name, err)
    COUNTS["nasty"] = len(NASTY)


@pytest.fixture(scope="module")
def cli_runs(offline: Path, workdir: Path) -> Iterator[dict[str, tuple[Path, str, Any]]]:
    """The CLI cases, started when the module starts: they run on the other core while the
    in-process fuzzing runs, and ``test_fuzz_plan_cli_subprocess`` collects them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(offline / "hub"),
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT / "operator"))
    runs = {}
    for name, text in CLI_CASES.items():
        f = workdir / f"cli-{name}.yaml"
        f.write_text(text, encoding="utf-8")
        runs[name] = (f, text, subprocess.Popen(
            [sys.executable, "-m", "kubellm", "plan", "-f", str(f)], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    yield runs
    for _, _, proc in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module", autouse=True)
def _start_cli_early(cli_runs: dict[str, Any]) -> None:
    """Depends on ``cli_runs`` only so that it starts with the module's first test."""


def test_fuzz_plan_cli_subprocess(cli_runs: dict[str, tuple[Path, str, Any]]) -> None:
    started = time.perf_counter()
    for name, (f, text, proc) in cli_runs.items():
        out, err = proc.communicate(timeout=120)
        check_outcome(proc.returncode, out, err, [f], text)
        assert proc.returncode == (0 if name == "good" else 2), (name, err)
    COUNTS["cli"] = len(cli_runs)
    _timed("cli (waiting)", started)


def test_fuzz_plan_non_utf8_file_is_exit_2(offline: Path, workdir: Path) -> None:
    """UnicodeDecodeError from read_text() was a traceback: now the file is named."""
    f = workdir / "latin1.yaml"
    f.write_bytes("metadata: {name: caf\u00e9}\n".encode("latin-1"))
    code, _, err = run_plan([f])
    assert code == 2 and err.startswith(f"error: {f}: not UTF-8 text"), err


def test_fuzz_case_counts() -> None:
    """Runs last: the bound on the work done (at least 1,000 documents through plan)."""
    total = sum(COUNTS.values())
    print(f"\nfuzz plan: {COUNTS} = {total} cases, exits {EXITS}, seconds "
          f"{ {k: round(v, 1) for k, v in TIMES.items()} }")
    if len(COUNTS) == 5:  # the whole module ran (not a -k selection)
        assert total >= 1000
