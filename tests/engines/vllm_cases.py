"""What kubellm renders for vLLM, gathered for the engine check, and the HF cache it runs on.

Three sources of ``vllm serve`` argument lists, each with the model files vLLM will read:

- **goldens**: every ``tests/golden/vllm-*.yaml`` (the serving container of the Deployment, or
  the ``exec vllm serve ...`` of a LeaderWorkerSet leader's shell script); their repos' config
  files come from the fixture catalogue (``hubfixtures.models``) at the golden's revision;
- **examples**: ``kubellm plan -f examples/`` on the cache seeded from ``examples/hub-metadata``
  (the example models' real config.json), as ``tests/unit/test_examples_offline.py`` plans them;
- **quantizations**: one LLMDeployment per quantization kubellm accepts for vLLM, planned by
  ``kubellm plan`` on the fixture catalogue's offline cache (+ an MXFP4 repo, below).

All snapshots end up in ONE Hugging Face cache (symlinked, so the sparse weight files stay
sparse); the pods' cache mount (``HF_HUB_CACHE=/models``) is mapped onto it, in the arguments
and the environment, and vLLM resolves the repo id at ``--revision`` offline, as in the pod.
Seeding an HF cache rather than pointing vLLM at a plain directory keeps the rendered arguments
byte for byte and exercises the revision lookup the pods depend on.

``fixture_configs()`` lists every config.json the tests own (catalogue + hub-metadata) for the
KV-cache comparison, each in a directory of its own (vLLM reads a local model directory).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hubfixtures.cache import (
    build_cache_from_metadata,
    build_offline_cache,
    metadata_sources,
    repo_folder,
    write_repo,
)
from hubfixtures.models import (
    CATALOGUE,
    GPTQ_CONFIG,
    QWEN25_7B,
    FakeFile,
    FakeRepo,
    safetensors_files,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
EXAMPLES = ROOT / "examples"
META = EXAMPLES / "hub-metadata"
CHECKER = Path(__file__).resolve().parent / "vllm_check.py"

#: Golden repos the fixture catalogue lacks (tests/unit/test_render_cases.py builds their facts
#: directly): Qwen2.5-7B-Instruct-GPTQ-Int4's config.json is Qwen2.5-7B-Instruct's shape with
#: its GPTQ int4 g128 quantization_config (desc_act false) and float16.
EXTRA_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4": {
        **QWEN25_7B,
        "torch_dtype": "float16",
        "quantization_config": {**GPTQ_CONFIG, "desc_act": False},
    },
}

#: openai/gpt-oss-20b's config.json shape (the MXFP4 checkpoint vLLM serves natively): 24
#: layers alternating sliding/full attention, 64 query and 8 KV heads of 64, 32 experts.
GPT_OSS_20B: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2880, "initial_context_length": 4096, "intermediate_size": 2880,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
    "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
    "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8,
    "num_local_experts": 32, "pad_token_id": 199999,
    "quantization_config": {
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
        "quant_method": "mxfp4",
    },
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                     "original_max_position_embeddings": 4096, "rope_type": "yarn",
                     "truncate": False},
    "rope_theta": 150000, "sliding_window": 128, "swiglu_limit": 7.0,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 201088,
}  # fmt: skip


def gpt_oss_repo() -> FakeRepo:
    """An MXFP4 repo for the quantization matrix (13 GB of opaque tensors, sparse on disk)."""
    tensors = [("model.embed_tokens.weight", "BF16", (201088, 2880)),
               ("lm_head.weight", "BF16", (201088, 2880))]
    tensors += [(f"model.layers.{i}.mlp.experts.blocks", "U8", (445_000_000,)) for i in range(24)]
    return FakeRepo(
        "openai/gpt-oss-20b", {"license": "apache-2.0", "library_name": "transformers",
                               "pipeline_tag": "text-generation", "tags": ["vllm"]},
        tuple(safetensors_files(tensors)), GPT_OSS_20B, extra_tags=("mxfp4",),
        note="MXFP4 MoE checkpoint (config shape of openai/gpt-oss-20b), for the engine check",
    )  # fmt: skip


#: spec.quantization -> (repo, extra spec): one planned LLMDeployment per vLLM quantization.
#: The GPU type is named: ``gpu.type: auto`` picks the cheapest GPU that fits before the runtime
#: x quantization x GPU check, so fp8 on auto lands on a Tesla-T4 and is refused (cc 7.5 < 8.0).
QUANT_MATRIX: dict[str, tuple[str, dict[str, Any]]] = {
    "none": ("meta-llama/Llama-3.1-8B-Instruct", {"gpu": {"type": "l4"}}),
    "fp8": ("meta-llama/Llama-3.1-8B-Instruct",
            {"gpu": {"type": "h100"}, "context": {"kvCacheDtype": "fp8"}}),
    "awq": ("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", {"gpu": {"type": "h100"}}),
    "gptq": ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", {"gpu": {"type": "l4"}}),  # desc_act false
    "gptq-desc-act": ("hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4",
                      {"gpu": {"type": "l4"}, "quantization": "gptq"}),  # refused for vLLM
    "gguf": ("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
             {"gpu": {"type": "l4"}, "model": {"file": "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"}}),
    "bitsandbytes": ("meta-llama/Llama-3.1-8B-Instruct", {"gpu": {"type": "l4"}}),
    "compressed-tensors": ("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8",
                           {"gpu": {"type": "h100"}}),
    "mxfp4": ("openai/gpt-oss-20b", {"gpu": {"type": "h100"}}),
}  # fmt: skip


@dataclass
class Rendered:
    """One vLLM rendering: its ``vllm serve`` args (None when kubellm refused) and context."""

    name: str
    args: list[str] | None
    env: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    refusal: str | None = None
    config: dict[str, Any] | None = None  # the config.json vLLM reads (None: GGUF, no config)
    sizing: dict[str, Any] | None = None  # kubellm's sizing, when planned

    def case(self, hub: Path) -> dict[str, Any]:
        """The checker's input: args with the pod's cache mount mapped onto ``hub``."""
        mount = self.env.get("HF_HUB_CACHE", "/models")
        assert self.args is not None
        return {"name": self.name, "args": [_remap(a, mount, hub) for a in self.args]}


def _remap(value: str, mount: str, hub: Path) -> str:
    return str(hub) + value[len(mount):] if value.startswith(mount + "/") else value


# ---------------------------------------------------------------- containers -> serve args


def serving_container(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The vLLM container of a Deployment, or of a LeaderWorkerSet's leader."""
    if obj.get("kind") == "Deployment":
        pod = obj["spec"]["template"]["spec"]
    elif obj.get("kind") == "LeaderWorkerSet":
        pod = obj["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    else:
        return None
    return next((c for c in pod["containers"] if c["name"] == "server"), None)


def serve_args(container: dict[str, Any]) -> list[str]:
    """The arguments after ``vllm serve``: the container's args, or the leader script's exec."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if command[-2:] == ["vllm", "serve"]:
        return args
    if command[-1:] == ["-c"] and args:
        words = shlex.split(args[0].rsplit("&& exec ", 1)[-1])
        assert words[:2] == ["vllm", "serve"], args[0]
        return words[2:]
    raise AssertionError(f"no vllm serve in {command} {args}")


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def from_objects(name: str, objects: list[dict[str, Any]], refusal: str | None
                 ) -> Rendered:  # fmt: skip
    """A Rendered from a list of rendered objects (or a refusal)."""
    for obj in objects:
        container = serving_container(obj)
        if container is not None:
            return Rendered(name, serve_args(container), container_env(container),
                            container.get("image"))  # fmt: skip
    return Rendered(name, None, refusal=refusal or "no serving workload rendered")


# ---------------------------------------------------------------- goldens


def golden_renderings() -> list[Rendered]:
    """Every tests/golden/vllm-*.yaml, with the config of its repo."""
    out = []
    for path in sorted(GOLDEN.glob("vllm-*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if docs and "error" in docs[0]:  # the renderer refused this combination
            out.append(Rendered(path.stem, None, refusal=f"{docs[0]['reason']}: "
                                f"{docs[0]['message']}"))  # fmt: skip
            continue
        rendered = from_objects(path.stem, docs, None)
        if rendered.args is not None:
            repo = _golden_repo(rendered.args)
            rendered.config = golden_config(repo) if repo else None
        out.append(rendered)
    return out


def _golden_repo(args: list[str]) -> str | None:
    model = args[0]
    return None if model.startswith("/") else model


def golden_config(repo: str) -> dict[str, Any]:
    if repo in EXTRA_CONFIGS:
        return EXTRA_CONFIGS[repo]
    config = CATALOGUE[repo].config
    assert config is not None, f"{repo}: no config.json in the fixture catalogue"
    return config


def seed_golden(hub: Path, rendered: Rendered) -> None:
    """Write what the golden's pod would find in its cache: config.json at the golden revision,
    or the .gguf file at the path the args name (its real leading bytes, sparse)."""
    assert rendered.args is not None
    mount = rendered.env.get("HF_HUB_CACHE", "/models")
    model = rendered.args[0]
    if model.startswith(mount + "/"):
        path = Path(_remap(model, mount, hub))
        repo = next(r for r in CATALOGUE.values() if path.parent.parent.parent.name ==
                    repo_folder(r.repo_id))  # fmt: skip
        wanted: FakeFile | None = repo.file(path.name)
        assert wanted is not None, path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            out.write(wanted.head)
            out.truncate(wanted.size)
        return
    revision = rendered.args[rendered.args.index("--revision") + 1]
    snap = hub / repo_folder(model) / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    (snap / "config.json").write_text(json.dumps(rendered.config, indent=2))


# ---------------------------------------------------------------- planned by kubellm plan


def plan(files: list[Path], hub: Path, *, inventory: Path | None = None) -> list[dict[str, Any]]:
    """``kubellm plan -o json`` offline on ``hub`` (kubellm's own venv, the CLI as users run it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(hub.parent), HF_HUB_CACHE=str(hub),
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT / "operator"))  # fmt: skip
    cmd = [sys.executable, "-m", "kubellm", "plan", "--policy",
           str(EXAMPLES / "licensepolicy.yaml"), "-o", "json"]  # fmt: skip
    for f in files:
        cmd += ["-f", str(f)]
    if inventory is not None:
        cmd += ["--inventory", str(inventory)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return list(json.loads(proc.stdout))


def planned(docs: list[dict[str, Any]], configs: dict[str, dict[str, Any] | None],
            prefix: str) -> Iterator[Rendered]:  # fmt: skip
    for doc in docs:
        if doc["runtime"] != "vllm":
            continue
        refusal = doc["refusal"] and f"{doc['refusal']['reason']}: {doc['refusal']['message']}"
        rendered = from_objects(f"{prefix}{doc['name']}", doc["objects"], refusal)
        rendered.sizing = doc["sizing"]
        rendered.config = configs.get(doc["model"]["repo"])
        yield rendered


def example_renderings(root: Path) -> tuple[Path, list[Rendered]]:
    """The examples planned on their real metadata; returns (that cache, renderings)."""
    hub = build_cache_from_metadata(root, META)
    docs = plan([EXAMPLES], hub, inventory=EXAMPLES / "cluster" / "inventory.yaml")
    configs = {repo: json.loads((META / repo / "config.json").read_text())
               for repo in metadata_sources(META) if (META / repo / "config.json").is_file()}
    return hub, list(planned(docs, configs, "example-"))


def _with_bases(repos: set[str]) -> set[str]:
    """``repos`` and their catalogue base_model chains (the licence gate reads every link)."""
    out, todo = set(), list(repos)
    while todo:
        repo = todo.pop()
        if repo in out or repo not in CATALOGUE:
            continue
        out.add(repo)
        base = CATALOGUE[repo].card.get("base_model")
        todo += [base] if isinstance(base, str) else list(base or [])
    return out


def quantization_renderings(root: Path) -> tuple[Path, list[Rendered]]:
    """One LLMDeployment per quantization in QUANT_MATRIX, planned on the fixture cache."""
    repos = sorted(_with_bases({repo for repo, _ in QUANT_MATRIX.values()}
                               - {"openai/gpt-oss-20b"}))
    hub = build_offline_cache(root, repos)
    write_repo(hub, gpt_oss_repo())
    manifests = []
    for quant, (repo, extra) in QUANT_MATRIX.items():
        spec: dict[str, Any] = {"model": {"repo": repo}, "runtime": "vllm", "quantization": quant,
                                "context": {"maxModelLen": 8192}}  # fmt: skip
        for key, value in extra.items():
            spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
        manifests.append({"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
                          "metadata": {"name": f"q-{quant}", "namespace": "ai"}, "spec": spec})
    path = root / "quantizations.yaml"
    path.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
    docs = plan([path], hub)
    configs = {repo: (gpt_oss_repo() if repo == "openai/gpt-oss-20b" else CATALOGUE[repo]).config
               for repo, _ in QUANT_MATRIX.values()}  # fmt: skip
    return hub, list(planned(docs, configs, ""))


def witness_cases(hub: Path, bf16_args: list[str]) -> list[dict[str, Any]]:
    """What kubellm refuses for vLLM, as its renderer produced it before the refusal: a local
    .gguf file as the model (vllm-gguf.yaml until vLLM 0.32), ``--quantization bitsandbytes``."""
    repo = CATALOGUE["bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"]
    gguf = "/models/" + "/".join((repo_folder(repo.repo_id), "snapshots", repo.sha,
                                  "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"))  # fmt: skip
    old = Rendered("witness-gguf", [gguf, "--gpu-memory-utilization", "0.9", "--max-model-len",
                                    "8192", "--port", "8000", "--served-model-name",
                                    repo.repo_id, "--tensor-parallel-size", "1"])  # fmt: skip
    seed_golden(hub, old)
    bnb = [*bf16_args, "--quantization", "bitsandbytes"]
    return [old.case(hub), {"name": "witness-bitsandbytes", "args": bnb}]


def link_snapshots(src: Path, dst: Path) -> None:
    """Make every snapshot of the cache ``src`` visible in ``dst`` (symlinks; sparse files stay
    sparse). Refs are not linked: every rendered argument list names its revision."""
    for snap in src.glob("models--*/snapshots/*"):
        target = dst / snap.parent.parent.name / "snapshots" / snap.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(snap, target_is_directory=True)


# ---------------------------------------------------------------- fixture configs for the KV check


def fixture_configs(root: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """name -> (a directory holding only that config.json, the config) for every config the
    tests own: the fixture catalogue (``hubfixtures.models``) and examples/hub-metadata."""
    configs: dict[str, dict[str, Any]] = {
        f"catalogue:{repo_id}": repo.config
        for repo_id, repo in CATALOGUE.items()
        if repo.config is not None
    }
    for repo_id in metadata_sources(META):
        path = META / repo_id / "config.json"
        if path.is_file():
            configs[f"metadata:{repo_id}"] = json.loads(path.read_text())
    out = {}
    for i, (name, config) in enumerate(sorted(configs.items())):
        folder = root / f"{i:02d}-{name.split(':', 1)[1].replace('/', '--')}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        out[name] = (folder, config)
    return out


# ---------------------------------------------------------------- running the checker

#: KV variants checked on every fixture config: (kv cache dtype, tensor parallel, pipeline).
KV_VARIANTS = (("auto", 1, 1), ("fp8", 1, 1), ("auto", 8, 1), ("auto", 1, 3))
#: A known flag vLLM must reject: proves every run that the check can fail.
BOGUS_FLAG = "--kubellm-no-such-flag"


@dataclass
class EngineRun:
    """The renderings, the fixture configs and vLLM's report on each."""

    vllm: str
    renderings: dict[str, Rendered]
    fixtures: dict[str, tuple[Path, dict[str, Any]]]
    reports: dict[str, dict[str, Any]]
    log: Path


def kv_case_name(fixture: str, kv: str, tp: int, pp: int) -> str:
    return f"kv:{fixture}:{kv}:tp{tp}:pp{pp}"


def run_checker(python: Path, cases: list[dict[str, Any]], hub: Path, work: Path,
                env: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """Run vllm_check.py under the engine's ``python`` on ``cases``; its JSON result."""
    request, result = work / "vllm-cases.json", work / "vllm-result.json"
    request.write_text(json.dumps({"cases": cases}, indent=2))
    run_env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "VLLM_", "PYTHON", "VIRTUAL_ENV"))}  # fmt: skip
    run_env.update(env)
    run_env.update(HF_HUB_CACHE=str(hub), HF_HOME=str(hub.parent), HF_HUB_OFFLINE="1",
                   HF_HUB_DISABLE_TELEMETRY="1", VLLM_TARGET_DEVICE="cpu",
                   VLLM_LOGGING_STREAM="ext://sys.stderr")  # fmt: skip
    log = work / "vllm-check.log"
    with log.open("w") as out:
        proc = subprocess.run([str(python), str(CHECKER), str(request), str(result)],
                              env=run_env, stdout=out, stderr=subprocess.STDOUT, timeout=1500,
                              check=False)  # fmt: skip
    tail = "\n".join(log.read_text().splitlines()[-40:])
    assert proc.returncode == 0, f"vllm_check.py exited {proc.returncode}:\n{tail}"
    return dict(json.loads(result.read_text()))
