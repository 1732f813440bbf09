"""The fast unit set stays fast: a unit test that starts a process must say so.

``pytest tests/unit -m "not tools and not fuzz"`` is the quick inner loop (seconds, no subprocess
toolchains). Tests that start processes (the ``kubellm`` CLI as a user runs it, helm, hadolint, Go
builds, Argo CD, Lua) carry the ``tools`` marker; bounded hypothesis runs carry ``fuzz``. Modules
are marked here, in one table, so the markers cannot drift from the files; and an unmarked test
that starts a process anyway fails, naming the marker to add, instead of silently making the fast
set slow.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

#: test module (or ``module::test``) -> marker. ``tools``: starts processes; ``fuzz``: bounded
#: property-based runs.
MODULE_MARKS: dict[str, str] = {
    "test_layers": "tools",
    "test_license::test_license_package_is_pure": "tools",
    "test_modelinfo_resolver::test_import_is_lazy": "tools",
    "test_sandbox_cluster": "tools",
    "test_sandbox_harness": "tools",
    "test_argocd_health": "tools",
    "test_catalog_overrides": "tools",
    "test_chart": "tools",
    "test_chart_golden": "tools",
    "test_chart_ha": "tools",
    "test_download": "tools",
    "test_eval_cli::test_kubellm_eval_as_a_user_runs_it": "tools",
    "test_examples_offline": "tools",
    "test_image": "tools",
    "test_leader_run": "tools",
    "test_modelinfo": "tools",
    "test_modelscope::test_kubellm_download_cli": "tools",
    "test_plan_cli": "tools",
    "test_readme_commands": "tools",
    "test_sandbox_install": "tools",
    "test_fuzz_hub": "fuzz",
    "test_fuzz_plan": "fuzz",
    "test_license_property": "fuzz",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        test = item.name.split("[", 1)[0]
        mark = MODULE_MARKS.get(f"{module}::{test}") or MODULE_MARKS.get(module)
        if mark is not None:
            item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(autouse=True)
def _processes_need_a_marker(request: pytest.FixtureRequest,
                             monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail an unmarked unit test that starts a process (subprocess.Popen underlies run,
    check_output and friends)."""
    marked = any(request.node.get_closest_marker(m) for m in ("tools", "fuzz", "engines"))
    if not marked:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(
                f"{request.node.nodeid} starts a process: add its module to MODULE_MARKS in "
                "tests/unit/conftest.py as 'tools', so that the fast unit set stays fast")

        monkeypatch.setattr(subprocess, "Popen", refuse)
    yield
