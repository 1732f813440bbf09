"""GPU catalogue and runtime image overrides (``--gpu-catalog``, ``--runtime-image``): the pure
merge and validation, and ``kubellm plan`` sizing and rendering with them as the operator would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubellm.errors import SpecError
from kubellm.runtimes import catalog as runtimes
from kubellm.sizing import catalog as gpus
from kubellm.sizing.types import GpuType

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

NEW_GPU = {"product": "NVIDIA-RTX-PRO-6000-Blackwell", "aliases": ["rtx-pro-6000"],
           "memory_mib": 97887, "compute_capability": "12.0", "relative_cost": 1.8,
           "source": "NVIDIA RTX PRO 6000 data sheet (96 GB GDDR7)"}


def write(tmp_path: Path, doc: Any, name: str = "gpus.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


# ---------------------------------------------------------------- GPU catalogue


def test_an_added_gpu_is_found_by_product_and_alias(tmp_path: Path) -> None:
    before = len(gpus.load_gpu_catalog())
    assert gpus.lookup_gpu("rtx-pro-6000") is None
    catalog = gpus.GpuCatalog.with_extra(
        gpus.read_gpu_catalog_file(write(tmp_path, {"gpus": [NEW_GPU]})))
    found = gpus.lookup_gpu("nvidia-rtx-pro-6000-blackwell", catalog)
    assert found is not None and found is catalog.lookup("RTX-PRO-6000")
    assert found.memory_gib == round(97887 / 1024, 2) and found.compute_capability == (12, 0)
    assert len(catalog.gpus) == before + 1 and catalog.gpus[-1] is found  # appended, order kept
    # a value: the built-in catalogue is unchanged
    assert gpus.lookup_gpu("rtx-pro-6000") is None and len(gpus.load_gpu_catalog()) == before


def test_an_entry_with_a_known_product_replaces_it_in_place(tmp_path: Path) -> None:
    base = gpus.load_gpu_catalog()
    position = [g.product for g in base].index("NVIDIA-L4")
    entry = {"product": "nvidia-l4", "aliases": ["l4"], "memory_mib": 23034,
             "compute_capability": 8.9, "relative_cost": 0.1, "source": "our price"}
    catalog = gpus.GpuCatalog.with_extra(gpus.read_gpu_catalog_file(write(tmp_path, [entry])))
    assert len(catalog.gpus) == len(base)
    replaced = catalog.gpus[position]
    assert replaced.relative_cost == 0.1 and replaced.source == "our price"
    assert catalog.lookup("l4") is replaced
    # the replaced entry's other spellings are gone with it (the override says what it knows)
    assert catalog.lookup("nvidia-l4") is replaced
    assert gpus.lookup_gpu("l4") is base[position]


def test_no_extra_entries_is_the_built_in_catalogue() -> None:
    assert gpus.GpuCatalog.with_extra(()) is gpus.builtin_gpu_catalog()


def test_an_inventory_reads_its_products_in_its_catalogue(tmp_path: Path) -> None:
    from kubellm.sizing import default_inventory, inventory_from_file
    from kubellm.sizing.commitments import committed_inventory

    catalog = gpus.GpuCatalog.with_extra(gpus.read_gpu_catalog_file(write(tmp_path, [NEW_GPU])))
    pools = [{"gpuProduct": "rtx-pro-6000", "gpusPerNode": 2}]
    with pytest.raises(SpecError, match="unknown GPU 'rtx-pro-6000'"):
        inventory_from_file(pools, "t")
    assert inventory_from_file(pools, "t", catalog).pools[0].gpu_product == NEW_GPU["product"]
    assert NEW_GPU["product"] in [p.gpu_product for p in default_inventory(catalog).pools]
    node = {"metadata": {"name": "n", "labels": {"nvidia.com/gpu.product": NEW_GPU["product"]}},
            "status": {"allocatable": {"nvidia.com/gpu": "2"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    assert committed_inventory([node], [], []).pools == ()  # not in the built-in catalogue
    seen = committed_inventory([node], [], [], catalog=catalog)
    assert [p.gpu_product for p in seen.pools] == [NEW_GPU["product"]] and seen.gpus is catalog


def test_merge_is_pure_and_refuses_a_name_meaning_two_gpus() -> None:
    a = GpuType("A", 10.0, (8, 0), aliases=("x",))
    b = GpuType("B", 20.0, (9, 0))
    assert gpus.merge_gpu_catalogs((a,), (b,)) == (a, b)
    with pytest.raises(ValueError, match=r"name 'x' of C is already a name of A"):
        gpus.merge_gpu_catalogs((a, b), (GpuType("C", 30.0, (9, 0), aliases=("X",)),))


def test_a_clash_with_the_built_in_catalogue_is_reported_at_once(tmp_path: Path) -> None:
    clash = {**NEW_GPU, "aliases": ["h100"]}
    extra = gpus.read_gpu_catalog_file(write(tmp_path, [clash]))
    with pytest.raises(ValueError, match="'h100' of NVIDIA-RTX-PRO-6000-Blackwell"):
        gpus.GpuCatalog.with_extra(extra)


@pytest.mark.parametrize(("change", "message"), [
    ({"memory_mib": None}, r"gpus\[0\] \(NVIDIA-RTX-PRO-6000-Blackwell\)\.memory_mib: missing"),
    ({"memory_mib": "96GB"}, r"\.memory_mib: '96GB' is not a positive whole number"),
    ({"memory_mib": 0}, r"\.memory_mib: 0 is not a positive"),
    ({"memory_mib": True}, r"\.memory_mib: True is not"),
    ({"compute_capability": "Blackwell"}, r"\.compute_capability: 'Blackwell' is not a CUDA"),
    ({"aliases": "rtx"}, r"\.aliases: 'rtx' is not a list"),
    ({"aliases": ["ok", ""]}, r"\.aliases: \['ok', ''\] is not a list"),
    ({"relative_cost": -1}, r"\.relative_cost: -1.0 is not a positive number"),
    ({"memory": 1}, r"unknown field\(s\) memory; known: product, memory_mib"),
    ({"product": ""}, r"gpus\[0\]\.product: empty"),
    ({"product": None}, r"gpus\[0\]\.product: missing"),
])
def test_bad_entries_name_the_file_entry_and_field(tmp_path: Path, change: dict[str, Any],
                                                   message: str) -> None:
    entry = {k: v for k, v in {**NEW_GPU, **change}.items() if v is not None}
    path = write(tmp_path, {"gpus": [entry]})
    with pytest.raises(ValueError, match=message) as info:
        gpus.read_gpu_catalog_file(path)
    assert str(info.value).startswith(path)


@pytest.mark.parametrize(("text", "message"), [
    ("gpus: {product: x}\n", "gpus must be a list"),
    ("gpu: []\n", "unknown top-level key.* gpu; expected gpus"),
    ("gpus: [\n", "not valid YAML"),
    ("gpus: [42]\n", r"gpus\[0\]: expected a mapping"),
])
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        gpus.read_gpu_catalog_file(str(path))
    with pytest.raises(ValueError, match="cannot read"):
        gpus.read_gpu_catalog_file(str(tmp_path / "missing.yaml"))


def test_the_built_in_catalogue_passes_the_same_validation() -> None:
    raw = yaml.safe_load((ROOT / "operator" / "kubellm" / "data" / "gpus.yaml").read_text())
    assert gpus.parse_gpu_entries(raw["gpus"], "gpus.yaml") == gpus.load_gpu_catalog()


# ---------------------------------------------------------------- runtime images


def test_image_overrides_are_values_the_planner_renders() -> None:
    from test_planner import L4_ONLY, facts, llmd, policy

    from kubellm.planner import plan_deployment

    pinned = runtimes.runtime_info("vllm").image
    images = runtimes.parse_image_overrides(
        ["vllm=registry.example:5000/vllm/vllm-openai:v0.29.0",
         "tgi=mirror.example/tgi@sha256:" + "a" * 64])
    assert images["tgi"].endswith("a" * 64)

    def image(plan: Any) -> str:
        dep = next(o for o in plan.serving_objects if o["kind"] == "Deployment")
        return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

    spec = {"gpu": {"type": "l4"}, "runtime": "vllm"}
    mirrored = plan_deployment(llmd(**spec), facts(), [], L4_ONLY, runtime_images=images)
    assert image(mirrored) == "registry.example:5000/vllm/vllm-openai:v0.29.0"
    # a value, not process state: the next plan without it renders the catalogue's image
    assert image(plan_deployment(llmd(**spec), facts(), [], L4_ONLY)) == pinned
    assert runtimes.runtime_info("vllm").image == pinned
    # the deployment's own spec.image (where a policy allows it) still wins over the override
    allow = policy(allowedImages=[pinned.rsplit(":", 1)[0]])
    own = plan_deployment(llmd(**spec, image=pinned), facts(), [allow], L4_ONLY,
                          runtime_images=images)
    assert own.deployable, own.refusal
    assert image(own) == pinned


@pytest.mark.parametrize(("pairs", "message"), [
    (["vllm"], "expected RUNTIME=IMAGE"),
    (["vllm="], "expected RUNTIME=IMAGE"),
    (["triton=x/y:1"], "unknown runtime 'triton'; known: "),
    (["vllm=not an image"], "'not an image' is not an image reference"),
    (["vllm=a/b:1", "vllm=a/b:2"], "vllm given twice"),
])
def test_bad_image_overrides(pairs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        runtimes.parse_image_overrides(pairs)


# ---------------------------------------------------------------- kubellm plan


def _plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from hubfixtures.cache import build_offline_cache

    hub = build_offline_cache(tmp_path / "hf")
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub),
           "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": str(ROOT / "operator")}
    return subprocess.run([sys.executable, "-m", "kubellm", "plan", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_plan_sizes_and_renders_with_the_overrides(tmp_path: Path) -> None:
    doc = yaml.safe_load((EXAMPLES / "qwen2.5-7b-l4.yaml").read_text())
    doc["spec"]["gpu"]["type"] = "rtx-pro-6000"
    manifest = write(tmp_path, doc, "llmd.yaml")
    inventory = write(tmp_path, [{"gpuProduct": NEW_GPU["product"], "gpusPerNode": 2,
                                  "nodes": 1}], "inventory.yaml")
    catalog = write(tmp_path, {"gpus": [NEW_GPU]})
    without = _plan(tmp_path, "-f", manifest, "--inventory", inventory, "-o", "json")
    assert without.returncode != 0, "an unknown GPU type must not plan"
    proc = _plan(tmp_path, "-f", manifest, "--inventory", inventory, "-o", "json",
                 "--gpu-catalog", catalog, "--runtime-image", "vllm=mirror.example/vllm:v1")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["sizing"]["gpuType"] == NEW_GPU["product"]
    images = [c["image"] for o in report["objects"] if o["kind"] == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"]]
    assert images == ["mirror.example/vllm:v1"]


def test_plan_refuses_a_bad_catalogue_with_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, {"gpus": [{**NEW_GPU, "memory_mib": "lots"}]})
    proc = _plan(tmp_path, "-f", str(EXAMPLES / "qwen2.5-7b-l4.yaml"), "--gpu-catalog", bad)
    assert proc.returncode == 2
    assert "--gpu-catalog" in proc.stderr and "memory_mib" in proc.stderr, proc.stderr
    proc = _plan(tmp_path, "-f", str(EXAMPLES / "qwen2.5-7b-l4.yaml"),
                 "--runtime-image", "triton=x/y:1")
    assert proc.returncode == 2 and "unknown runtime 'triton'" in proc.stderr, proc.stderr
