"""Every SGLang argument list kubellm renders parses with SGLang 0.5.23's own parser
(``ServerArgs.add_cli_args``, in the engine venv of ``kubellm sandbox install --engines``), to
the values kubellm meant; and data/sglang-server.yaml is that parser's option list.

Renderings: the golden files tests/golden/sglang-*.yaml (Deployments, and the leader and worker
scripts of the multi-node LeaderWorkerSet with the LWS variables filled in) and
examples/sglang/ planned offline on the examples' real metadata (``kubellm plan -o json``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfixtures.cache import build_cache_from_metadata
from kubellm.runtimes import guard
from kubellm.sandbox import engines
from kubellm.sandbox.errors import SandboxError

pytestmark = [pytest.mark.engines, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "sglang_flags.py"
DATA = ROOT / "operator" / "kubellm" / "data" / "sglang-server.yaml"
GOLDEN = ROOT / "tests" / "golden"
EXAMPLES = ROOT / "examples"
COMMAND = ["python3", "-m", "sglang.launch_server"]
#: What the LWS controller sets in a group's pods, for the multi-node scripts.
LWS_ENV = {"$LWS_LEADER_ADDRESS": "chat-0.chat.ai", "$LWS_WORKER_INDEX": "1"}
BOGUS = ["--model-path", "a/b", "--no-such-flag-kubellm", "1"]


@pytest.fixture(scope="module")
def python() -> Path:
    try:
        return engines.sglang().python
    except SandboxError as exc:
        pytest.fail(str(exc))


def run(python: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def server_args(container: dict[str, Any]) -> list[str]:
    """The arguments after ``python3 -m sglang.launch_server``: the container's own, or the
    multi-node script's exec with the LWS variables filled in."""
    if container["command"] == COMMAND:
        return list(container["args"])
    assert container["command"] == ["/bin/sh", "-c"], container["command"]
    script = container["args"][0]
    for var, val in LWS_ENV.items():
        script = script.replace(var, val)
    words = shlex.split(script)
    assert words[:4] == ["exec", *COMMAND], script
    return words[4:]


def containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for obj in objects:
        if obj.get("kind") == "Deployment":
            out.append(("", obj["spec"]["template"]["spec"]["containers"][0]))
        elif obj.get("kind") == "LeaderWorkerSet":
            group = obj["spec"]["leaderWorkerTemplate"]
            out.append(("-leader", group["leaderTemplate"]["spec"]["containers"][0]))
            out.append(("-worker", group["workerTemplate"]["spec"]["containers"][0]))
    return out


def planned_example(tmp: Path) -> list[dict[str, Any]]:
    hub = build_cache_from_metadata(tmp, EXAMPLES / "hub-metadata")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp), HF_HUB_CACHE=str(hub),
               PYTHONPATH=str(ROOT / "operator"))
    proc = subprocess.run(
        [sys.executable, "-m", "kubellm", "plan", "-f", str(EXAMPLES / "sglang"), "--inventory",
         str(EXAMPLES / "cluster" / "inventory.yaml"), "-o", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # one document: an object, several: a list
    return list(data) if isinstance(data, list) else [data]


@pytest.fixture(scope="module")
def renderings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(GOLDEN.glob("sglang-*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for suffix, container in containers(docs):
            out[path.stem + suffix] = server_args(container)
    for doc in planned_example(tmp_path_factory.mktemp("hf")):
        assert doc["runtime"] == "sglang" and doc["refusal"] is None, doc["refusal"]
        for suffix, container in containers(doc["objects"]):
            out[f"example-{doc['name']}{suffix}"] = server_args(container)
    assert len(out) >= 8, sorted(out)
    return out


def test_the_flags_file_is_sglangs_parser(python: Path) -> None:
    assert run(python) == DATA.read_text(encoding="utf-8"), (
        "data/sglang-server.yaml is stale: regenerate with sglang_flags.py --write and review")


def value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_every_rendering_parses_to_what_kubellm_meant(python: Path,
                                                      renderings: dict[str, list[str]]) -> None:
    names = sorted(renderings)
    results = json.loads(run(python, "--parse", json.dumps([renderings[n] for n in names]
                                                           + [BOGUS])))
    *parsed, bogus = results
    assert "unrecognized arguments: --no-such-flag-kubellm" in bogus["error"]  # it can fail
    for name, ns in zip(names, parsed, strict=True):
        args = renderings[name]
        assert "error" not in ns, (name, ns)
        assert ns["model_path"] == value(args, "--model-path"), name
        assert ns["revision"] == value(args, "--revision"), name
        assert (ns["host"], ns["port"]) == ("0.0.0.0", 30000), name
        assert ns["tp_size"] == int(value(args, "--tp-size") or 1), name
        assert ns["pp_size"] == int(value(args, "--pp-size") or 1), name
        assert ns["mem_fraction_static"] == float(value(args, "--mem-fraction-static") or 0)
        assert str(ns["context_length"]) == value(args, "--context-length"), name
        assert ns["quantization"] == value(args, "--quantization"), name
        assert ns["kv_cache_dtype"] == (value(args, "--kv-cache-dtype") or "auto"), name
        assert ns["enable_metrics"] is True and ns["trust_remote_code"] is False, name
        assert ns["load_format"] == "auto" and ns["tokenizer_path"] is None, name
        if name.endswith(("-leader", "-worker")):
            assert ns["dist_init_addr"] == "chat-0.chat.ai:5000", name
            assert (ns["nnodes"], ns["node_rank"]) == (2, 0 if name.endswith("leader") else 1)


def test_what_the_guard_lets_through_parses(python: Path) -> None:
    extra = ["--enable-torch-compile", "--chunked-prefill-size", "4096", "--schedule-policy",
             "lpm", "--attention-backend", "triton"]
    guard.check_args("sglang", extra)
    [ns] = json.loads(run(python, "--parse", json.dumps([["--model-path", "a/b", *extra]])))
    assert "error" not in ns and ns["model_path"] == "a/b"
