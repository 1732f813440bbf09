"""The model card's ``model-index`` claims (kubellm.modelinfo.parse.claims_from): read as
huggingface_hub's own parser reads them, bounded, robust to malformed cards, and shown in
``status.claims`` and ``kubellm plan``."""

from __future__ import annotations

import math
from typing import Any

from huggingface_hub.repocard_data import model_index_to_eval_results
from hypothesis import given, settings
from hypothesis import strategies as st

from kubellm.facts import ModelFacts
from kubellm.modelinfo.parse import MAX_CLAIMS, claims_from
from kubellm.reconcile.status import claims_wire

# The shape of a card's model-index as the Open LLM Leaderboard writes it into cards.
CARD: dict[str, Any] = {"model-index": [{"name": "m", "results": [
    {"task": {"type": "text-generation", "name": "Text Generation"},
     "dataset": {"name": "MMLU (5-Shot)", "type": "cais/mmlu", "config": "all", "split": "test",
                 "args": {"num_few_shot": 5}},
     "metrics": [{"type": "acc", "value": 68.9, "name": "accuracy"}],
     "source": {"url": "https://huggingface.co/spaces/open-llm-leaderboard", "name":
                "Open LLM Leaderboard"}},
    {"task": {"type": "text-generation"}, "dataset": {"name": "GSM8k", "type": "gsm8k"},
     "metrics": [{"type": "acc", "value": "57.5"}, {"type": "f1", "value": "n/a"}]},
]}]}


def test_a_leaderboard_card() -> None:
    claims = claims_from(CARD)
    assert [(c.benchmark, c.metric, c.value, c.source) for c in claims] == [
        ("MMLU (5-Shot)", "accuracy", 68.9, "Open LLM Leaderboard"), ("GSM8k", "acc", 57.5, None)]
    assert claims[0].task == "Text Generation" and claims[0].split == "test"
    assert claims[0].url == "https://huggingface.co/spaces/open-llm-leaderboard"
    wire = claims_wire(ModelFacts(repo="o/m", claims=claims))
    assert wire[0] == {"benchmark": "MMLU (5-Shot)", "metric": "accuracy", "value": 68.9,
                       "task": "Text Generation", "split": "test",
                       "source": "Open LLM Leaderboard",
                       "url": "https://huggingface.co/spaces/open-llm-leaderboard",
                       "verified": False}


def test_malformed_cards_give_no_claims_and_no_error() -> None:
    for card in ({}, {"model-index": "x"}, {"model-index": [None, 1, {"results": "x"}]},
                 {"model-index": [{"results": [{"dataset": "x", "metrics": [1]}]}]},
                 {"model-index": [{"results": [{"dataset": {"name": "d"},
                                                "metrics": [{"type": "acc", "value": True}]}]}]},
                 {"model-index": [{"results": [{"dataset": {"name": "d"}, "metrics": [
                     {"type": "acc", "value": float("nan")}, {"value": 1}]}]}]}):
        assert claims_from(card) == ()
    javascript = {"model-index": [{"results": [{"dataset": {"name": "d"}, "metrics": [
        {"type": "acc", "value": 1}], "source": {"url": "javascript:alert(1)"}}]}]}
    assert claims_from(javascript)[0].url is None


def test_claims_are_bounded() -> None:
    many = {"model-index": [{"results": [{"dataset": {"name": f"d{i}"}, "metrics": [
        {"type": "acc", "value": i, "name": "x" * 500}]} for i in range(400)]}]}
    claims = claims_from(many)
    assert len(claims) == MAX_CLAIMS and all(len(c.metric) <= 120 for c in claims)


TEXT = st.text("abcXYZ 5-()", min_size=1, max_size=12).filter(lambda t: t.strip() == t)
VALUE = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False))


@st.composite
def model_indexes(draw: st.DrawFn) -> list[dict[str, Any]]:
    results = []
    for _ in range(draw(st.integers(1, 4))):
        metrics = []
        for _ in range(draw(st.integers(1, 3))):
            metric: dict[str, Any] = {"type": draw(TEXT), "value": draw(VALUE)}
            if draw(st.booleans()):
                metric["name"] = draw(TEXT)
            if draw(st.booleans()):
                metric["verified"] = draw(st.booleans())
            metrics.append(metric)
        result: dict[str, Any] = {"task": {"type": draw(TEXT)},
                                  "dataset": {"type": draw(TEXT), "name": draw(TEXT)},
                                  "metrics": metrics}
        if draw(st.booleans()):
            result["source"] = {"name": draw(TEXT), "url": "https://example.org/" + draw(TEXT)}
        results.append(result)
    return [{"name": "m", "results": results}]


@settings(max_examples=200, deadline=None)
@given(model_indexes())
def test_claims_agree_with_huggingface_hub(index: list[dict[str, Any]]) -> None:
    """Every claim is what huggingface_hub's model_index_to_eval_results reads from the same
    model-index (the Hub's reference parser of the format)."""
    _, results = model_index_to_eval_results(index)
    expected = [(r.dataset_name, r.metric_name or r.metric_type, float(r.metric_value),
                 r.source_name, r.source_url, bool(r.verified)) for r in results]
    got = [(c.benchmark, c.metric, c.value, c.source, c.url, c.verified)
           for c in claims_from({"model-index": index})]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[:2] == e[:2] and math.isclose(g[2], e[2]) and g[3:] == e[3:]


def test_plan_text_shows_the_claims(capsys: Any) -> None:
    from kubellm.commands.plan_text import MAX_CLAIM_LINES, render_text

    claims = claims_wire(ModelFacts(repo="o/m", claims=claims_from(CARD)))
    many = claims * 4
    report = {"name": "m", "namespace": "t", "deployable": True,
              "model": {"repo": "o/m", "sha": "s", "source": "hub", "claims": many}}
    render_text([report], None, show_objects=False)
    out = capsys.readouterr().out
    assert "claims   MMLU (5-Shot): accuracy 68.9  (Open LLM Leaderboard)" in out
    assert f"... {len(many) - MAX_CLAIM_LINES} more (-o json)" in out
