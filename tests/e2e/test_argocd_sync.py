"""e2e: a real Argo CD syncs examples/argocd from Git onto the sandbox, with kubellm's checks.

Argo CD (the pinned build of ``kubellm sandbox install --argocd``) runs as local processes
(tests/e2e/argocd_harness.py): Redis, argocd-repo-server, argocd-application-controller with
``--persist-resource-health``, and ``argocd-cm`` carrying both shipped patches of
deploy/argocd/. The source is a local bare Git repository (``file://``) holding the chart,
examples/argocd's three Applications (only the repo URL, the namespaces and the models path
adapted) and a folder with a LicensePolicy and LLMDeployments. The operator is the chart's:
once Argo CD has synced the chart, ``kubellm run`` starts as a local process under the chart's
ServiceAccount token (kwok runs the chart's pod, which has no process).

Everything is asserted on Argo CD's own status (the Applications' sync/health, the operation
state, the per-resource health the controller persisted), in one test because each commit
builds on the previous one:

1. the root Application syncs the chart Application (wave -1) before the models one (wave 0);
2. the models Application goes Progressing -> Healthy once the LLMDeployment is Ready;
3. a commit adding a denied model makes it Degraded with kubellm's reason in the message;
4. a commit removing it prunes it;
5. a commit changing a spec is Progressing until the operator has reconciled that generation
   (the operator is stopped across the commit, so the window cannot be missed);
6. deleting the model from Git prunes the LLMDeployment, and its Deployment and Service go too;
7. throughout, under automated sync with self-heal, the models Application never turns
   OutOfSync while the operator writes status (only a commit does), and every sync in its
   history is of a new revision.

Commit -> Synced / Healthy timings are printed at the end (docs/argocd.md records them).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from argocd_harness import (
    NAMESPACE,
    ArgoCDProcesses,
    GitRepo,
    app_state,
    install_control_plane,
    resource_health,
    uninstall_control_plane,
)
from test_operator_helpers import OperatorProcess, items, token_kubeconfig, wait_until

from hubfixtures.server import HubServer, serve_hub
from kubellm.sandbox import argocd
from kubellm.sandbox.errors import SandboxError

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ROOT_APP, CHART_APP, MODELS_APP = "kubellm-root", "kubellm", "kubellm-models"


class Recorder(threading.Thread):
    """Polls every Application twice a second: a timeline of Argo CD's own status."""

    def __init__(self, cluster: Any) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.timeline: list[tuple[float, dict[str, dict[str, Any]]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.5):
            proc = self.cluster.kubectl("get", "applications.argoproj.io", "-n", NAMESPACE,
                                        "-o", "json", check=False)
            if proc.returncode == 0:
                apps = {a["metadata"]["name"]: a for a in json.loads(proc.stdout)["items"]}
                self.timeline.append((time.monotonic(), apps))

    def latest(self, name: str) -> dict[str, Any] | None:
        return self.timeline[-1][1].get(name) if self.timeline else None

    def since(self, start: float, name: str) -> list[tuple[float, dict[str, Any] | None]]:
        return [(t, apps.get(name)) for t, apps in self.timeline if t >= start]


def _doc(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(path.read_text())
    return found


def _model(path: Path, **spec: Any) -> dict[str, Any]:
    """An example LLMDeployment without its namespace (the Application's destination)."""
    doc = _doc(path)
    doc["metadata"].pop("namespace", None)
    doc["spec"].update(spec)
    return doc


def _applications(url: str, ops: str, models: str) -> dict[str, dict[str, Any]]:
    """examples/argocd's Applications, pointed at the local repository and test namespaces."""
    apps = {f: _doc(EXAMPLES / "argocd" / f) for f in ("root.yaml", "operator.yaml", "models.yaml")}
    for app in apps.values():
        app["spec"]["source"]["repoURL"] = url
    apps["operator.yaml"]["spec"]["destination"]["namespace"] = ops
    apps["models.yaml"]["spec"]["destination"]["namespace"] = models
    apps["models.yaml"]["spec"]["source"]["path"] = "models"
    return apps


@pytest.fixture(scope="module")
def argocd_build() -> argocd.ArgoCD:
    try:
        return argocd.require()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with serve_hub() as server:
        yield server


@pytest.fixture
def argo(cluster: Any, argocd_build: argocd.ArgoCD,
         tmp_path: Path) -> Iterator[ArgoCDProcesses]:
    install_control_plane(cluster, argocd_build)
    work = tmp_path / "argocd"
    work.mkdir()
    procs = ArgoCDProcesses(argocd_build, cluster.kubeconfig, Path(cluster.bin_dir), work)
    try:
        yield procs.start()
    finally:
        procs.stop()
        for name in ("argocd-application-controller", "argocd-repo-server"):
            print(f"--- {name} log tail ---\n{procs.tail(name, 30)}")
        uninstall_control_plane(cluster)


def _wait_app(recorder: Recorder, name: str, what: str, timeout: float = 180,
              **want: str) -> tuple[float, dict[str, Any]]:
    """Until Application ``name`` has the wanted sync/health/revision: (time, app)."""

    def check() -> tuple[float, dict[str, Any]] | None:
        app = recorder.latest(name)
        if app is None:
            return None
        sync, health, revision = app_state(app)
        got = {"sync": sync, "health": health, "revision": revision}
        if all(got[k] == v for k, v in want.items()):
            return recorder.timeline[-1][0], app
        return None

    try:
        return wait_until(check, timeout, 0.25, what=f"{name}: {what}")
    except AssertionError:
        raise AssertionError(f"{name} never {what}; last status: "
                             f"{json.dumps((recorder.latest(name) or {}).get('status'))[:3000]}"
                             ) from None


def _no_status_out_of_sync(recorder: Recorder, start: float, end: float) -> None:
    """Between a sync and the next commit, only the operator writes: never OutOfSync."""
    seen = [(round(t - start, 1), app_state(app)) for t, app in recorder.since(start, MODELS_APP)
            if t <= end]
    assert seen, "no observation of the models Application in this window"
    drift = [s for s in seen if s[1][0] == "OutOfSync"]
    assert not drift, f"OutOfSync without a commit (the operator's status writes?): {drift}"


def test_argocd_syncs_kubellm_from_git(cluster: Any, argo: ArgoCDProcesses, hub: HubServer,
                                       tmp_path: Path, request: pytest.FixtureRequest) -> None:
    suffix = uuid.uuid4().hex[:6]
    ops, models = f"argo-kubellm-{suffix}", f"argo-models-{suffix}"
    cluster.kubectl("create", "namespace", models)
    cluster.kubectl("create", "secret", "generic", "hf-token", "-n", models,
                    "--from-literal=HF_TOKEN=hf_good")
    repo = GitRepo(tmp_path / "git")
    apps = _applications(repo.url, ops, models)
    policy = _doc(EXAMPLES / "licensepolicy.yaml")
    policy["metadata"]["name"] = f"argo-{suffix}"
    policy["spec"]["namespaces"] = [models]
    qwen = _model(EXAMPLES / "qwen2.5-7b-l4.yaml")
    repo.copytree(ROOT / "charts" / "kubellm", "charts/kubellm")
    for name, app in apps.items():
        repo.write(f"examples/argocd/{name}", app)
    repo.write("models/licensepolicy.yaml", policy)
    repo.write("models/qwen-7b.yaml", qwen)
    first, t_commit = repo.commit("kubellm, a policy and qwen-7b")
    timings: dict[str, float] = {}
    recorder = Recorder(cluster)
    recorder.start()
    operator: OperatorProcess | None = None
    try:
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(apps["root.yaml"]))

        # 1. waves between Applications: the chart is Healthy before the models app exists.
        t_chart, chart = _wait_app(recorder, CHART_APP, "Synced and Healthy", 300,
                                   sync="Synced", health="Healthy", revision=first)
        timings["chart Application Healthy"] = t_chart - t_commit
        early = [(round(t - t_commit, 1), app_state(seen.get(CHART_APP)))
                 for t, seen in recorder.timeline if t < t_chart and MODELS_APP in seen]
        assert not early, f"the models Application existed before the chart was Healthy: {early}"
        _, models_app = _wait_app(recorder, MODELS_APP, "created", 120)
        created = models_app["metadata"]["creationTimestamp"]
        assert chart["status"]["operationState"]["finishedAt"] <= created
        waited = {(app_state(a)[1], (a or {}).get("status", {}).get("operationState", {})
                   .get("message", "")) for _, a in recorder.since(0, ROOT_APP)}
        assert any("waiting for healthy state of argoproj.io/Application/kubellm" in m
                   for _, m in waited), waited

        # The chart's operator, as a local process under the chart's ServiceAccount.
        kubeconfig = token_kubeconfig(cluster, ops, "kubellm", tmp_path / "sa.yaml", "1h")
        operator = OperatorProcess(kubeconfig, hub.endpoint, tmp_path / "operator.log", "-A",
                                   "--resync-seconds", "3", "--cache-grace-period", "4",
                                   "--image", "ghcr.io/kubellm/kubellm:e2e")

        # 2. Progressing (no status yet: the operator is not running) -> Healthy.
        _, app = _wait_app(recorder, MODELS_APP, "Synced and Progressing", 120,
                           sync="Synced", health="Progressing", revision=first)
        assert resource_health(app, "LLMDeployment", "qwen-7b") == {
            "status": "Progressing",
            "message": "Waiting for the kubellm operator to reconcile this LLMDeployment"}
        assert resource_health(app, "LicensePolicy", policy["metadata"]["name"])["status"] == (
            "Healthy")
        t_start = time.monotonic()
        operator.start()
        t_healthy, app = _wait_app(recorder, MODELS_APP, "Healthy", 180, sync="Synced",
                                   health="Healthy", revision=first)
        assert resource_health(app, "LLMDeployment", "qwen-7b") == {
            "status": "Healthy", "message": "Ready: Serving"}
        timings["commit 1 -> models Healthy"] = t_healthy - t_commit
        timings["operator start -> models Healthy"] = t_healthy - t_start
        _wait_app(recorder, ROOT_APP, "Healthy (app-of-apps check)", 60, health="Healthy")
        time.sleep(8)  # the operator's resyncs (3 s) write status; Argo CD refreshes (5 s)
        _no_status_out_of_sync(recorder, t_healthy, time.monotonic())

        # 3. A denied model: Degraded with kubellm's reason.
        repo.write("models/mistral-large.yaml",
                   _model(EXAMPLES / "mistral-large-denied.yaml"))
        denied, t_commit = repo.commit("add a model the policy denies")
        t_degraded, app = _wait_app(recorder, MODELS_APP, "Degraded", 120, sync="Synced",
                                    health="Degraded", revision=denied)
        health = resource_health(app, "LLMDeployment", "mistral-large") or {}
        assert health.get("status") == "Degraded", health
        assert health.get("message", "").startswith("LicenseDenied: "), health
        timings["commit (denied model) -> Degraded"] = t_degraded - t_commit
        _wait_app(recorder, ROOT_APP, "Degraded (app-of-apps check)", 60, health="Degraded")

        # 4. Removing it from Git prunes it.
        repo.remove("models/mistral-large.yaml")
        without, t_commit = repo.commit("drop the denied model")
        t_back, _ = _wait_app(recorder, MODELS_APP, "Healthy again", 120, sync="Synced",
                              health="Healthy", revision=without)
        wait_until(lambda: not items(cluster, "llmd", models, "--field-selector",
                                     "metadata.name=mistral-large"), 60, what="mistral pruned")
        timings["commit (remove denied) -> Healthy"] = t_back - t_commit

        # 5. A spec change: Progressing until the operator has reconciled that generation.
        generation = _llmd(cluster, models, "qwen-7b")["metadata"]["generation"]
        operator.stop()
        repo.write("models/qwen-7b.yaml", _model(
            EXAMPLES / "qwen2.5-7b-l4.yaml",
            context={**qwen["spec"]["context"], "concurrency": 2}))
        changed, t_commit = repo.commit("qwen-7b: concurrency 2")
        t_synced, app = _wait_app(recorder, MODELS_APP, "Synced at the new revision, "
                                  "Progressing", 120, sync="Synced", health="Progressing",
                                  revision=changed)
        assert resource_health(app, "LLMDeployment", "qwen-7b") == {
            "status": "Progressing",
            "message": f"Waiting for the kubellm operator to reconcile generation "
                       f"{generation + 1} (observed {generation})"}
        timings["commit (spec change) -> Synced, Progressing"] = t_synced - t_commit
        time.sleep(6)  # still Progressing while nobody reconciles: never Healthy by accident
        assert app_state(recorder.latest(MODELS_APP))[1] == "Progressing"
        t_start = time.monotonic()
        operator.start()
        t_healthy, app = _wait_app(recorder, MODELS_APP, "Healthy at the new generation", 180,
                                   sync="Synced", health="Healthy", revision=changed)
        live = _llmd(cluster, models, "qwen-7b")
        assert live["status"]["observedGeneration"] == generation + 1
        timings["commit (spec change) -> Healthy"] = t_healthy - t_commit
        timings["operator restart -> Healthy"] = t_healthy - t_start
        time.sleep(8)
        _no_status_out_of_sync(recorder, t_healthy, time.monotonic())

        # 6. Deleting the model from Git prunes it, and kubellm's children go with it.
        children = {kind: [o["metadata"]["name"] for o in items(
            cluster, kind, models, "-l", "app.kubernetes.io/instance=qwen-7b")]
            for kind in ("deployments", "services")}
        assert children["deployments"] and children["services"], children
        repo.remove("models/qwen-7b.yaml")
        pruned, t_commit = repo.commit("drop qwen-7b")
        _wait_app(recorder, MODELS_APP, "Synced without the model", 120, sync="Synced",
                  revision=pruned)

        def gone() -> bool:
            left = [kind for kind in ("llmd", "deployments", "services")
                    if items(cluster, kind, models, "-l", "app.kubernetes.io/instance=qwen-7b")
                    or (kind == "llmd" and items(cluster, kind, models))]
            return not left

        wait_until(gone, 120, what="the LLMDeployment and its Deployment/Service deleted")
        timings["commit (delete model) -> LLMDeployment and children gone"] = (
            time.monotonic() - t_commit)

        # 7. Every sync in the history is of a new revision: self-heal never had to re-sync.
        history = (recorder.latest(MODELS_APP) or {})["status"].get("history") or []
        revisions = [h["revision"] for h in history]
        assert len(revisions) == len(set(revisions)), revisions
        # No health script failed in the controller (a Lua error is logged, not shown as health).
        lua_errors = [line for line in argo.errors("argocd-application-controller")
                      if "lua" in line.lower() or "health" in line.lower()]
        assert not lua_errors, lua_errors[:5]
    finally:
        recorder.halt.set()
        recorder.join(5)
        if operator is not None:
            operator.stop()
        cluster.kubectl("delete", "licensepolicy", policy["metadata"]["name"],
                        "--ignore-not-found", check=False)
        for ns in (models, ops):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for kind in ("clusterrole", "clusterrolebinding"):
            cluster.kubectl("delete", kind, "kubellm", "--ignore-not-found", check=False)
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    lines = [f"Argo CD {argocd.versions.ARGOCD} e2e timings (s):"]
    lines += [f"  {what:58} {seconds:6.1f}" for what, seconds in timings.items()]
    if reporter is not None:
        reporter.write_line("\n" + "\n".join(lines))
    (tmp_path / "timings.txt").write_text("\n".join(lines) + "\n")


def _llmd(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cluster.kubectl("get", "llmd", name, "-n", namespace,
                                                       "-o", "json").stdout)
    return found
