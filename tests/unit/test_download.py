"""``kubellm download`` end to end against the fake Hub, one subprocess per run (as the Job runs
it, and because huggingface_hub reads HF_ENDPOINT at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubfixtures import HubServer, get_repo, serve_hub

ROOT = Path(__file__).resolve().parents[2]
TINY = get_repo("kubellm-test/tiny-llama")
GATED = get_repo("kubellm-test/tiny-gated")
TINY_FILES = sorted(f.path for f in TINY.all_files())


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with serve_hub(["kubellm-test/tiny-llama", "kubellm-test/tiny-gated"],
                   tokens={"hf_good"}) as server:
        yield server


def run(hub: HubServer, cache: Path, *args: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update({"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(cache.parent / "home"),
                 "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT / "operator")})
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "kubellm", "download", "--cache-dir",
                           str(cache), *args], capture_output=True, text=True, env=full,
                          timeout=120, check=False)


def markers(cache: Path) -> list[Path]:
    return sorted((cache / ".kubellm").glob("*.complete")) if (cache / ".kubellm").exists() \
        else []


def test_download_then_rerun_is_a_no_op(hub: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    first = run(hub, cache, "--repo", TINY.repo_id, "--revision", TINY.sha)
    assert first.returncode == 0, first.stderr
    assert "7 to fetch" in first.stdout and "complete" in first.stdout
    snap = cache / "models--kubellm-test--tiny-llama" / "snapshots" / TINY.sha
    assert sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file()) \
        == TINY_FILES
    assert (snap / "model.safetensors").read_bytes() == \
        TINY.file("model.safetensors").read()  # type: ignore[union-attr]
    (marker,) = markers(cache)
    body = json.loads(marker.read_text())
    assert body["sha"] == TINY.sha and [f["path"] for f in body["files"]] == TINY_FILES

    before = len(hub.requests)
    again = run(hub, cache, "--repo", TINY.repo_id, "--revision", TINY.sha)
    assert again.returncode == 0 and "already complete" in again.stdout
    assert len(hub.requests) == before  # no request at all


def test_resumes_after_a_lost_file(hub: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    assert run(hub, cache, "--repo", TINY.repo_id, "--revision", TINY.sha).returncode == 0
    snap = cache / "models--kubellm-test--tiny-llama" / "snapshots" / TINY.sha
    link = snap / "tokenizer.json"
    link.resolve().unlink()  # the blob: as if the download had been interrupted
    link.unlink()
    before = len(hub.requests)
    again = run(hub, cache, "--repo", TINY.repo_id, "--revision", TINY.sha)
    assert again.returncode == 0, again.stderr
    assert "1 to fetch" in again.stdout
    assert (snap / "tokenizer.json").is_file()
    fetched = [p for m, p, _ in hub.requests[before:] if m == "GET" and "/resolve/" in p]
    assert fetched == [f"/kubellm-test/tiny-llama/resolve/{TINY.sha}/tokenizer.json"]


def test_include_patterns_and_branch_revision(hub: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    res = run(hub, cache, "--repo", TINY.repo_id, "--revision", "main", "--include", "*.json")
    assert res.returncode == 0, res.stderr
    (marker,) = markers(cache)
    body = json.loads(marker.read_text())
    assert body["sha"] == TINY.sha
    assert [f["path"] for f in body["files"]] == [p for p in TINY_FILES if p.endswith(".json")]


@pytest.mark.parametrize(
    ("repo", "token", "code", "needle"),
    [
        ("kubellm-test/tiny-gated", None, 2,
         "gated model: set spec.hubTokenSecretRef to a Secret holding a token"),
        ("kubellm-test/tiny-gated", "hf_bad", 2, "gated model"),
        ("kubellm-test/tiny-gated", "hf_good", 0, ""),
        ("nobody/missing", None, 2, "model nobody/missing not found"),
    ],
)
def test_access_errors(hub: HubServer, tmp_path: Path, repo: str, token: str | None, code: int,
                       needle: str) -> None:
    cache = tmp_path / "hub"
    args = ["--repo", repo, "--revision", "main", "--retries", "0"]
    if token:
        (tmp_path / "token").write_text(token + "\n")
        args += ["--token-file", str(tmp_path / "token")]
    res = run(hub, cache, *args)
    assert res.returncode == code, (res.stdout, res.stderr)
    if code:
        assert needle in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1  # one clear line, no traceback
        assert markers(cache) == []
    else:
        assert len(markers(cache)) == 1


@pytest.mark.parametrize(("mode", "retries", "timeout"), [("500", 2, 5.0), ("hang", 1, 0.5),
                                                          ("reset", 1, 5.0)])
def test_unavailable_bounded_retries(hub: HubServer, tmp_path: Path, mode: str, retries: int,
                                     timeout: float) -> None:
    hub.fail, hub.hang_seconds = mode, 3.0
    cache = tmp_path / "hub"
    started = time.monotonic()
    res = run(hub, cache, "--repo", TINY.repo_id, "--revision", TINY.sha, "--retries",
              str(retries), "--backoff", "0.05", "--timeout", str(timeout))
    elapsed = time.monotonic() - started
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"giving up after {retries + 1} attempts" in res.stderr
    assert res.stdout.count("failed after") == retries
    assert markers(cache) == []
    assert elapsed < 20


def test_recovers_when_the_hub_comes_back(hub: HubServer, tmp_path: Path) -> None:
    hub.fail, hub.fail_remaining = "500", 2
    cache = tmp_path / "hub"
    res = run(hub, cache, "--repo", TINY.repo_id, "--revision", TINY.sha, "--retries", "3",
              "--backoff", "0.05")
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert res.stdout.count("failed after") >= 1
    assert len(markers(cache)) == 1


def test_bad_token_file(hub: HubServer, tmp_path: Path) -> None:
    res = run(hub, tmp_path / "hub", "--repo", TINY.repo_id, "--token-file",
              str(tmp_path / "absent"))
    assert res.returncode == 2 and "--token-file" in res.stderr


def test_progress_lines_while_downloading(hub: HubServer, tmp_path: Path) -> None:
    hub.delay = 0.2
    res = run(hub, tmp_path / "hub", "--repo", TINY.repo_id, "--revision", TINY.sha,
              "--progress-interval", "0.1")
    assert res.returncode == 0, res.stderr
    assert "progress: " in res.stdout and "GiB (" in res.stdout


def test_offline_mode_is_a_clear_error(hub: HubServer, tmp_path: Path) -> None:
    res = run(hub, tmp_path / "hub", "--repo", TINY.repo_id, env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2 and "HF_HUB_OFFLINE" in res.stderr
    assert hub.requests == []


# --- the finished cache as offline readers (vLLM, TGI, plan) see it ---------------------------

MISTRAL = get_repo("kubellm-test/tiny-mistral")
# vLLM's weight loader offline (vllm/model_executor/model_loader/weight_utils.py,
# download_weights_from_hf): snapshot_download of the weight patterns, ignoring original/.
VLLM_OFFLINE_LOOKUP = """
import sys
from huggingface_hub import snapshot_download
print(snapshot_download(sys.argv[1], revision=sys.argv[2], cache_dir=sys.argv[3],
                        allow_patterns=["*.safetensors", "*.bin", "*.pt"],
                        ignore_patterns=["original/**/*"]))
"""


def offline_lookup(cache: Path, repo: str, revision: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run([sys.executable, "-c", VLLM_OFFLINE_LOOKUP, repo, revision, str(cache)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def planned_includes(hub: HubServer, repo: str) -> list[str]:
    """The --include list of the download Job `kubellm plan` renders for ``repo`` (what the
    operator would run), from the fake Hub."""
    manifest = ("apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: m}\n"
                f"spec: {{model: {{repo: {repo}}}}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(ROOT / "operator"))
    proc = subprocess.run([sys.executable, "-m", "kubellm", "plan", "-f", "-", "-o", "json"],
                          input=manifest, capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert proc.returncode in (0, 1), proc.stderr
    out = json.loads(proc.stdout)
    doc = out if isinstance(out, dict) else out[0]  # one deployment: one object
    (job,) = [o for o in doc["objects"] if o["kind"] == "Job"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return [args[i + 1] for i, a in enumerate(args) if a == "--include"]


def test_mistral_layout_cache_serves_offline(tmp_path: Path) -> None:
    with serve_hub(["kubellm-test/tiny-mistral"]) as hub:
        includes = planned_includes(hub, MISTRAL.repo_id)
        assert "consolidated.safetensors" not in includes  # the duplicate is left out
        cache = tmp_path / "hub"
        args = ["--repo", MISTRAL.repo_id, "--revision", MISTRAL.sha]
        for pattern in includes:
            args += ["--include", pattern]
        res = run(hub, cache, *args)
        assert res.returncode == 0, res.stderr
    looked = offline_lookup(cache, MISTRAL.repo_id, MISTRAL.sha)
    assert looked.returncode == 0, looked.stderr  # was IncompleteSnapshotError
    snap = Path(looked.stdout.strip().splitlines()[-1])
    assert (snap / "model.safetensors.index.json").is_file()
    assert not (snap / "consolidated.safetensors").exists()


def test_branch_download_leaves_the_ref(hub: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    res = run(hub, cache, "--repo", TINY.repo_id, "--revision", "main")
    assert res.returncode == 0, res.stderr
    ref = cache / "models--kubellm-test--tiny-llama" / "refs" / "main"
    assert ref.read_text() == TINY.sha  # no newline, as huggingface_hub writes refs
    looked = offline_lookup(cache, TINY.repo_id, "main")
    assert looked.returncode == 0, looked.stderr


def test_finished_cache_has_no_partial_tree_listing(hub: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    res = run(hub, cache, "--repo", TINY.repo_id, "--revision", TINY.sha, "--include", "*.json")
    assert res.returncode == 0, res.stderr
    trees = cache / "models--kubellm-test--tiny-llama" / "trees"
    assert not list(trees.glob("*.json")) if trees.exists() else True
    assert offline_lookup(cache, TINY.repo_id, TINY.sha).returncode == 0


def _as_nobody() -> list[str]:
    """A command prefix that drops root (root writes everywhere), or nothing when not root."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] \
        if os.geteuid() == 0 else []


def test_an_unwritable_cache_is_a_permanent_error_before_any_hub_request(
    hub: HubServer, tmp_path: Path
) -> None:
    cache = tmp_path / "ro" / "hub"
    cache.mkdir(parents=True)
    cache.chmod(0o555)
    tmp_path.chmod(0o755)
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update({"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(cache / "home"),
                 "PYTHONPATH": str(ROOT / "operator")})
    res = subprocess.run([*_as_nobody(), sys.executable, "-m", "kubellm", "download",
                          "--cache-dir", str(cache), "--repo", TINY.repo_id, "--retries", "3"],
                         capture_output=True, text=True, env=full, timeout=120, check=False)
    assert res.returncode == 2, (res.stdout, res.stderr)  # permanent: the Job must not retry
    assert f"cannot write the model cache at {cache}" in res.stderr, res.stderr
    assert "EACCES" in res.stderr and "read-only" in res.stderr and "Traceback" not in res.stderr
    assert hub.requests == []


def test_a_cache_path_through_a_file_is_a_permanent_error(hub: HubServer, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    res = run(hub, tmp_path / "file" / "hub", "--repo", TINY.repo_id)
    assert res.returncode == 2 and "cannot write the model cache" in res.stderr, res.stderr
    assert hub.requests == []


def test_a_full_volume_says_so() -> None:
    import errno

    from kubellm.modelinfo.download import storage_error

    err = storage_error(OSError(errno.ENOSPC, "No space left on device", "/models/blobs/x"))
    assert err is not None and err.reason == "DownloadFailed"
    assert "/models/blobs/x" in err.message and "spec.cache.size" in err.message
    wrapped = RuntimeError("download failed")
    wrapped.__cause__ = OSError(errno.EROFS, "Read-only file system", "/models")
    assert storage_error(wrapped) is not None
    assert storage_error(OSError(errno.ECONNREFUSED, "Connection refused")) is None
