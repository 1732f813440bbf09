"""kubellm.sandbox.argocd: the wrapper module that builds Argo CD from the Go module proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubellm.sandbox import argocd, versions
from kubellm.sandbox.errors import SandboxError

ARGOCD_GO_MOD = """module github.com/argoproj/argo-cd/v3

go 1.27.0

require (
\tgithub.com/argoproj/argo-cd/gitops-engine/v3 v3.6.2 // Tagged at release time
\tk8s.io/api v0.37.0
)

replace (
\tgithub.com/golang/protobuf => github.com/golang/protobuf v1.5.4

\t// Avoid CVE-2022-3064
\tgopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.4.0

\tk8s.io/api => k8s.io/api v0.37.0
)

replace github.com/argoproj/argo-cd/gitops-engine/v3 => ./gitops-engine
"""


def test_wrapper_requires_both_modules_and_keeps_the_published_replaces() -> None:
    text = argocd.wrapper_go_mod(ARGOCD_GO_MOD, "v3.6.2")
    assert "go 1.27.0\n" in text
    assert "\tgithub.com/argoproj/argo-cd/v3 v3.6.2\n" in text
    assert "\tgithub.com/argoproj/argo-cd/gitops-engine/v3 v3.6.2\n" in text
    for kept in ("github.com/golang/protobuf => github.com/golang/protobuf v1.5.4",
                 "gopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.4.0",
                 "k8s.io/api => k8s.io/api v0.37.0"):
        assert f"\t{kept}\n" in text
    assert "./gitops-engine" not in text and "CVE" not in text


def test_wrapper_refuses_a_go_mod_without_the_local_gitops_engine() -> None:
    with pytest.raises(SandboxError, match="gitops-engine"):
        argocd.wrapper_go_mod(ARGOCD_GO_MOD.replace("=> ./gitops-engine", "=> x v1"))


def test_ldflags_stamp_the_pinned_version() -> None:
    flags = argocd.ldflags()
    assert f"common.version={versions.ARGOCD.lstrip('v')}" in flags
    assert f"common.gitTag={versions.ARGOCD}" in flags


def test_cache_is_per_version_and_missing_build_says_how(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert argocd.root() == tmp_path / "kubellm" / "sandbox" / f"argocd-{versions.ARGOCD}"
    assert argocd.locate() is None
    with pytest.raises(SandboxError, match="kubellm sandbox install --argocd"):
        argocd.require()
    (argocd.root() / "bin").mkdir(parents=True)
    (argocd.root() / "crds").mkdir()
    binary = argocd.root() / "bin" / "argocd"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert argocd.locate() is None  # the scripts the repo-server runs are missing
    for name in argocd.SCRIPTS:
        (argocd.root() / "bin" / name).write_text("#!/bin/sh\n")
        (argocd.root() / "bin" / name).chmod(0o755)
    (argocd.root() / "crds" / "application-crd.yaml").write_text("kind: CustomResourceDefinition\n")
    found = argocd.require()
    assert found.binary == binary and found.env("argocd-repo-server") == {
        "ARGOCD_BINARY_NAME": "argocd-repo-server"}
