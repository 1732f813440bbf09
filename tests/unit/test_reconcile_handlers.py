"""Unit tests of the kopf layer's pure parts: error mapping, options, metrics."""

from __future__ import annotations

import kopf
import pytest

from kubellm.errors import DoesNotFitError, HubUnavailableError
from kubellm.handlers import Options, backoff, configure_settings, raise_for
from kubellm.metrics import Metrics
from kubellm.reconcile import Outcome


def test_errors_map_onto_kopf() -> None:
    raise_for(Outcome(name="a", namespace="n"))  # no error: nothing raised
    with pytest.raises(kopf.PermanentError, match="DoesNotFit"):
        raise_for(Outcome(name="a", namespace="n", error=DoesNotFitError("needs 140 GiB")))
    with pytest.raises(kopf.TemporaryError) as caught:
        raise_for(Outcome(name="a", namespace="n",
                          error=HubUnavailableError("hub down", delay=12)))
    assert caught.value.delay == 12
    with pytest.raises(kopf.TemporaryError) as caught:
        raise_for(Outcome(name="a", namespace="n", error=HubUnavailableError("down", delay=30)),
                  retry=3)
    assert caught.value.delay == 240


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(30, n) for n in range(7)] == [30, 60, 120, 240, 480, 600, 600]
    assert backoff(0, 0) == 1.0


def test_options_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELLM_NAMESPACE", "team")
    monkeypatch.setenv("KUBELLM_RESYNC_SECONDS", "7")
    monkeypatch.setenv("KUBELLM_METRICS_PORT", "9100")
    options = Options.from_env()
    assert (options.namespace, options.resync_seconds, options.metrics_port) == ("team", 7.0, 9100)


def test_settings_keep_kopf_writes_down() -> None:
    settings = kopf.OperatorSettings()
    configure_settings(settings, Options(workers=5))
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.peering.standalone is True
    assert settings.execution.max_workers == 5
    assert settings.posting.level >= 30  # warnings and errors only


def test_deployments_gauge_counts_last_conditions() -> None:
    metrics = Metrics()
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    metrics.observe_status(("n", "a"), ready)
    metrics.observe_status(("n", "b"), ready)
    metrics.observe_status(("n", "b"), {"conditions": [{"type": "Ready", "status": "False"}]})
    value = metrics.registry.get_sample_value
    assert value("kubellm_deployments", {"condition": "Ready", "status": "True"}) == 1
    assert value("kubellm_deployments", {"condition": "Ready", "status": "False"}) == 1
    metrics.observe_status(("n", "a"), None)
    assert value("kubellm_deployments", {"condition": "Ready", "status": "True"}) == 0
