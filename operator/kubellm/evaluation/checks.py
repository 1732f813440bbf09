"""Application checks: read, validate and score (pure).

A check is a prompt (or chat messages) and one expectation on the answer: ``contains``,
``regex`` (``re.search``), ``exact`` (after stripping surrounding whitespace), ``jsonSchema``
(the answer parses as JSON and validates, draft 2020-12, with the ``jsonschema`` library) or
``numeric`` (the answer's first number within a tolerance). ``compile_checks`` validates what
pydantic cannot (a regex that does not compile, a schema that is not a schema, duplicate names)
and raises ``SpecError`` naming the field, e.g. ``spec.evaluation.checks[3].expect.regex``.
``parse_checks_text`` reads the larger sets of a ConfigMap key (JSON Lines or a YAML list) with
the same rules, naming the key and line/item. ``score`` never raises: every answer is a pass or
a failure with a reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import yaml
from pydantic import ValidationError

from kubellm.api.v1alpha1 import EvaluationCheck, EvaluationSpec
from kubellm.errors import SpecError
from kubellm.manifests import field_path

MAX_CHECKS = 10_000  # a ConfigMap holds at most 1 MiB; more checks than this is a mistake
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class Check:
    """A validated check, ready to send and score."""

    name: str
    kind: str  # contains | regex | exact | jsonSchema | numeric
    spec: EvaluationCheck
    pattern: re.Pattern[str] | None = None
    validator: Any = None  # a jsonschema validator for jsonSchema checks

    @property
    def weight(self) -> float:
        return self.spec.weight

    @property
    def chat(self) -> bool:
        """Chat messages (chat/completions) rather than a plain prompt (completions)."""
        return self.spec.messages is not None


@dataclass(frozen=True)
class Score:
    """One answer scored: passed, and why not."""

    passed: bool
    failure: str | None = None


def compile_check(check: EvaluationCheck, where: str) -> Check:
    """Validate ``check`` beyond its schema; ``where`` is its path (``...checks[3]``)."""
    expect = check.expect
    kind = expect.kind
    if kind == "regex":
        assert expect.regex is not None
        try:
            pattern = re.compile(expect.regex)
        except re.error as exc:
            raise SpecError(f"{where}.expect.regex", f"invalid regular expression: {exc}",
                            "write a Python re pattern; escape literal ( [ { . * + ? with \\"
                            ) from None
        return Check(check.name, kind, check, pattern=pattern)
    if kind == "jsonSchema":
        assert expect.json_schema is not None
        cls = jsonschema.validators.validator_for(expect.json_schema,
                                                  default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(expect.json_schema)
        except jsonschema.SchemaError as exc:
            at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
            raise SpecError(f"{where}.expect.jsonSchema{at}",
                            f"not a valid JSON Schema: {exc.message}",
                            "see https://json-schema.org/draft/2020-12 for the keywords"
                            ) from None
        return Check(check.name, kind, check, validator=cls(expect.json_schema))
    if kind == "numeric":
        assert expect.numeric is not None
        if not (math.isfinite(expect.numeric.value) and math.isfinite(expect.numeric.tolerance)):
            raise SpecError(f"{where}.expect.numeric", "value and tolerance must be finite",
                            "write a plain number such as 42 or 0.5")
    return Check(check.name, kind, check)


def compile_checks(checks: Sequence[EvaluationCheck], where: str) -> list[Check]:
    """All checks validated, names unique; ``where`` is the list's path."""
    if not checks:
        raise SpecError(where, "no checks", "add at least one check")
    if len(checks) > MAX_CHECKS:
        raise SpecError(where, f"{len(checks)} checks, more than {MAX_CHECKS}",
                        "split the set or sample it")
    out: list[Check] = []
    seen: dict[str, int] = {}
    for index, check in enumerate(checks):
        if check.name in seen:
            raise SpecError(f"{where}[{index}].name",
                            f"duplicate name {check.name!r} (also {where}[{seen[check.name]}])",
                            "give every check its own name")
        seen[check.name] = index
        out.append(compile_check(check, f"{where}[{index}]"))
    return out


def inline_checks(spec: EvaluationSpec, where: str = "spec.evaluation") -> list[Check]:
    """The inline ``checks`` of ``spec``, compiled (``spec.checks`` must be set)."""
    if spec.checks is None:
        raise SpecError(f"{where}.checks", "not set (the checks come from checksFrom)",
                        "pass the ConfigMap key's content (kubellm eval --checks-file)")
    return compile_checks(spec.checks, f"{where}.checks")


def parse_checks_text(text: str, source: str) -> list[Check]:
    """Checks from a ConfigMap key's text: JSON Lines (one object a line, blank and ``#`` lines
    skipped) when the first item starts with ``{``, else a YAML list. ``source`` names the key
    in errors (``ConfigMap evals key checks.jsonl``)."""
    stripped = text.lstrip()
    items: list[tuple[str, Any]] = []
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                items.append((f"{source} line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise SpecError(f"{source} line {number}", f"not JSON: {exc.msg}",
                                "write one JSON object per line (JSON Lines)") from None
    else:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(source, f"not YAML: {str(exc).splitlines()[0]}",
                            "write a YAML list of checks or JSON Lines") from None
        if isinstance(doc, dict) and isinstance(doc.get("checks"), list):
            doc = doc["checks"]
        if not isinstance(doc, list):
            raise SpecError(source, "is not a list of checks",
                            "write a YAML list (- name: ...) or JSON Lines")
        items = [(f"{source} item {i}", item) for i, item in enumerate(doc)]
    parsed: list[EvaluationCheck] = []
    for where, item in items:
        try:
            parsed.append(EvaluationCheck.model_validate(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            path = field_path(first["loc"])
            raise SpecError(f"{where}{': ' + path if path else ''}",
                            first["msg"].removeprefix("Value error, "),
                            "see `kubectl explain llmd.spec.evaluation.checks`") from None
    checks = compile_checks(parsed, source) if parsed else []
    if not checks:
        raise SpecError(source, "holds no checks", "add at least one check")
    return checks


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_number(answer: str) -> float | None:
    """The first number written in ``answer`` (``1,234.5`` -> 1234.5), or None."""
    match = _NUMBER.search(answer)
    return float(match.group(0).replace(",", "")) if match else None


def _json_text(answer: str) -> str:
    """The answer without a surrounding Markdown code fence (```json ... ```)."""
    stripped = answer.strip()
    fenced = _FENCE.match(stripped)
    return fenced.group(1) if fenced else stripped


def score(check: Check, answer: str) -> Score:
    """Whether ``answer`` meets ``check``'s expectation, and if not, why (never raises)."""
    expect = check.spec.expect
    if not answer.strip():
        return Score(False, "empty answer")
    if check.kind == "contains":
        assert expect.contains is not None
        if expect.contains in answer:
            return Score(True)
        return Score(False, f"does not contain {_shorten(expect.contains)!r}")
    if check.kind == "regex":
        assert check.pattern is not None
        if check.pattern.search(answer):
            return Score(True)
        return Score(False, f"no match for /{_shorten(check.pattern.pattern)}/")
    if check.kind == "exact":
        assert expect.exact is not None
        if answer.strip() == expect.exact.strip():
            return Score(True)
        return Score(False, f"not exactly {_shorten(expect.exact)!r}")
    if check.kind == "jsonSchema":
        try:
            value = json.loads(_json_text(answer))
        except json.JSONDecodeError as exc:
            return Score(False, f"not JSON: {exc.msg} at char {exc.pos}")
        error = jsonschema.exceptions.best_match(check.validator.iter_errors(value))
        if error is None:
            return Score(True)
        at = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Score(False, f"schema: {at}: {_shorten(error.message, 160)}")
    assert expect.numeric is not None
    number = first_number(answer)
    if number is None:
        return Score(False, "no number in the answer")
    want, tolerance = expect.numeric.value, expect.numeric.tolerance
    if abs(number - want) <= tolerance:
        return Score(True)
    return Score(False, f"{number:g} is not {want:g} ± {tolerance:g}")
