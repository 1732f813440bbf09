"""Golden files: the whole rendered objects per runtime x quantization (+ cache, tp > 1).

Each case renders [PVC, download Job, Deployment, Service] (or [Deployment, Service] without the
cache), or, where the runtime cannot serve the combination, the refusal it raises. Review changes
in the diff; regenerate with::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_render_golden.py
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from goldens import GOLDEN, assert_golden
from test_render_cases import IMAGE, Case, cases

from kubellm.cache import render_download_job, render_pvc
from kubellm.errors import KubellmError
from kubellm.runtimes import RUNTIMES, get_runtime


def render_case(case: Case) -> str:
    try:
        ctx = case.context()
        objects: list[dict[str, Any]] = []
        if ctx.cache is not None:
            objects += [
                render_pvc(ctx.cache, ctx.namespace, ctx.spec),
                render_download_job(ctx.cache, ctx.namespace, ctx.facts, ctx.spec, image=IMAGE),
            ]
        objects += get_runtime(case.runtime).render(ctx)
    except KubellmError as exc:
        refusal = {"error": type(exc).__name__, "reason": exc.reason, "message": str(exc)}
        return yaml.safe_dump(refusal, sort_keys=False, width=100)
    return yaml.safe_dump_all(objects, sort_keys=False, width=100)


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_golden(case: Case) -> None:
    assert_golden(GOLDEN / f"{case.name}.yaml", render_case(case), __file__)


def test_rendering_is_deterministic() -> None:
    for case in cases():
        assert render_case(case) == render_case(case)


def test_no_stale_golden_files() -> None:
    expected = {f"{c.name}.yaml" for c in cases()}
    prefixes = tuple(f"{name}-" for name in RUNTIMES)
    present = {p.name for p in GOLDEN.glob("*.yaml") if p.name.startswith(prefixes)}
    assert present <= expected, f"stale golden files: {sorted(present - expected)}"
