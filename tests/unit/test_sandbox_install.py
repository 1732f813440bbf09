"""Installer logic that needs no network: the wrapper go.mod, version pins, Go detection,
KUBEBUILDER_ASSETS lookup and the no-op second install."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kubellm.sandbox import install, versions
from kubellm.sandbox.errors import SandboxError

FAKE_K8S_GO_MOD = """\
module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
)
"""


def _fake_binary(path: Path, script: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)


def test_wrapper_replaces_every_staging_module_with_the_published_tag() -> None:
    text = install.wrapper_go_mod(FAKE_K8S_GO_MOD)
    tag = versions.staging_version()
    for mod in ("k8s.io/api", "k8s.io/client-go", "k8s.io/cri-streaming"):
        assert f"\t{mod} => {mod} {tag}\n" in text
    assert "./staging" not in text
    assert "godebug default=go1.26" in text
    assert f"\tk8s.io/kubernetes {versions.KUBERNETES}\n" in text
    assert f"\tgo.etcd.io/etcd/server/v3 {versions.ETCD}\n" in text
    assert "\ngo 1.26.0\n" in text


def test_wrapper_refuses_a_release_without_staging_replacements() -> None:
    with pytest.raises(SandboxError, match=r"no \./staging replacements"):
        install.wrapper_go_mod("module k8s.io/kubernetes\n\ngo 1.26.0\n")


def test_pins_are_recent_and_consistent() -> None:
    major, minor, _ = (int(x) for x in versions.KUBERNETES.lstrip("v").split("."))
    assert (major, minor) >= (1, 35)
    assert versions.staging_version() == f"v0.{minor}.{versions.KUBERNETES.split('.')[2]}"
    assert versions.ETCD.startswith("v3.") and int(versions.ETCD.split(".")[1]) >= 6
    assert tuple(int(x) for x in versions.KWOK.lstrip("v").split(".")[:2]) >= (0, 8)
    assert versions.HELM.startswith("v4.")
    assert versions.version_key() in str(versions.bin_dir())


def test_ldflags_stamp_the_kubernetes_version() -> None:
    flags = install.kubernetes_ldflags()
    assert f"k8s.io/component-base/version.gitVersion={versions.KUBERNETES}" in flags
    assert f"k8s.io/client-go/pkg/version.gitVersion={versions.KUBERNETES}" in flags


@pytest.mark.parametrize(
    ("text", "expected"),
    [("go1.26.8", (1, 26)), ("go1.24", (1, 24)), ("devel go1.27-abc", (1, 27)), ("", None)],
)
def test_parse_go_version(text: str, expected: tuple[int, int] | None) -> None:
    assert install.parse_go_version(text) == expected


def test_cache_dir_follows_xdg_cache_home(tmp_path: Path) -> None:
    assert versions.bin_dir().is_relative_to(tmp_path / "cache" / "kubellm" / "sandbox")


def test_missing_binaries_say_how_to_install() -> None:
    with pytest.raises(SandboxError, match="kubellm sandbox install"):
        install.binaries()


def test_kubebuilder_assets_are_used_first_and_only_the_rest_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = tmp_path / "assets"
    for name in ("kube-apiserver", "etcd", "kubectl"):
        _fake_binary(assets / name)
    _fake_binary(versions.bin_dir() / "kubectl")  # assets win over the cache
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    found, missing = install.locate()
    assert found["kube-apiserver"] == assets / "kube-apiserver"
    assert found["kubectl"] == assets / "kubectl"
    assert missing == ["kube-controller-manager", "kube-scheduler", "kwok", "helm"]


def test_second_install_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in versions.BINARIES:
        _fake_binary(versions.bin_dir() / name)

    def no_go(*_: object) -> dict[str, str]:
        raise AssertionError("go must not run when every binary is present")

    monkeypatch.setattr(install, "go_env", no_go)
    messages: list[str] = []
    found = install.install(messages.append)
    assert set(found.paths) == set(versions.BINARIES)
    assert "up to date" in messages[0]


def test_missing_go_explains_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "_go_binary", lambda: None)
    with pytest.raises(SandboxError) as err:
        install.go_env(lambda _: None)
    text = str(err.value)
    assert "apt-get install golang-go" in text
    assert f"GOTOOLCHAIN={versions.GO_TOOLCHAIN}" in text
    assert "KUBEBUILDER_ASSETS" in text


def test_old_go_gets_a_newer_toolchain_through_gotoolchain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = _fake_binary(tmp_path / "oldgo" / "go", "#!/bin/sh\necho go1.24.4\n")
    monkeypatch.setattr(install, "_go_binary", lambda: str(go))
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    messages: list[str] = []
    env = install.go_env(messages.append)
    assert env["GOTOOLCHAIN"] == versions.GO_TOOLCHAIN
    assert env["PATH"].split(os.pathsep)[0] == str(go.parent)
    assert "go1.24.4" in messages[0]


def test_recent_go_is_used_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    go = _fake_binary(tmp_path / "go126" / "go", "#!/bin/sh\necho go1.26.8\n")
    monkeypatch.setattr(install, "_go_binary", lambda: str(go))
    env = install.go_env(lambda _: None)
    assert "GOTOOLCHAIN" not in env


def test_failing_go_command_reports_its_output(tmp_path: Path) -> None:
    go = _fake_binary(tmp_path / "go", "#!/bin/sh\necho 'go: module lookup disabled' >&2\nexit 1\n")
    with pytest.raises(SandboxError, match="module lookup disabled"):
        install.stream([str(go)], env=dict(os.environ), what="go build", progress=print)


def test_go_older_than_gotoolchain_fetches_the_toolchain_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = _fake_binary(tmp_path / "go119" / "go", "#!/bin/sh\necho go1.19.8\n")
    newer = _fake_binary(tmp_path / "toolchain" / "bin" / "go")
    monkeypatch.setattr(install, "_go_binary", lambda: str(go))
    monkeypatch.setattr(install, "toolchain_from_proxy", lambda env, progress: newer)
    env = install.go_env(lambda _: None)
    assert env["PATH"].split(os.pathsep)[0] == str(newer.parent)
    assert env["GOTOOLCHAIN"] == "local"
