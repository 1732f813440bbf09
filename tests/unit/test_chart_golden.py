"""Golden files of `helm template charts/kubellm`: the default values and a values file that
switches every optional feature on (tests/data/chart-values-full.yaml). Review changes in the
diff; regenerate with::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_chart_golden.py

The release name and namespace are fixed, and nothing in the templates depends on the Helm
version (``managed-by`` is ``.Release.Service``, always "Helm"), so the output is deterministic.
The CRDs are left out (no ``--include-crds``): ``charts/kubellm/crds/`` is checked byte for byte
against the generated ``crds/`` (tests/unit/test_chart.py), which a test keeps in step with the
API; a copy here would be a third place to update for every API change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from goldens import GOLDEN, assert_golden
from test_chart import CHART, NAMESPACE, RELEASE, run_helm
from test_chart import helm as helm  # the fixture (a helm binary, or a failure saying how)

ROOT = Path(__file__).resolve().parents[2]
VALUES = {"default": None, "full": ROOT / "tests" / "data" / "chart-values-full.yaml"}


def template(helm: str, values: Path | None) -> str:
    extra = ["--values", str(values)] if values else []
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", sorted(VALUES))
def test_chart_golden(helm: str, name: str) -> None:
    assert_golden(GOLDEN / "chart" / f"{name}.yaml", template(helm, VALUES[name]), __file__)


def test_full_values_switch_every_optional_object_on(helm: str) -> None:
    """The full rendering has every object kind the chart can render; the default one does not
    have the optional ones (so the golden of the full values covers them)."""
    full = {d["kind"] for d in yaml.safe_load_all(template(helm, VALUES["full"])) if d}
    default = {d["kind"] for d in yaml.safe_load_all(template(helm, None)) if d}
    optional = {"ServiceMonitor", "LicensePolicy", "PodDisruptionBudget", "ConfigMap"}
    assert optional <= full and not optional & default
    assert default <= full


def test_no_stale_chart_golden_files() -> None:
    present = {p.stem for p in (GOLDEN / "chart").glob("*.yaml")}
    assert present <= set(VALUES), f"stale golden files: {sorted(present - set(VALUES))}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (YAML parsers keep the last,
    so a second copy of a block silently replaces the first)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[object, object]:
    keys = [loader.construct_object(k) for k, _ in node.value]
    twice = sorted({str(k) for k in keys if keys.count(k) > 1})
    assert not twice, f"duplicate keys {twice} in the mapping at line {node.start_mark.line + 1}"
    return yaml.SafeLoader.construct_mapping(loader, node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def test_full_values_have_no_duplicate_keys() -> None:
    yaml.load(VALUES["full"].read_text(), Loader=_UniqueKeyLoader)
    with pytest.raises(AssertionError, match="duplicate keys"):
        yaml.load("a: 1\nb: 2\na: 3\n", Loader=_UniqueKeyLoader)
