"""docs/: every condition reason the code can set has a troubleshooting section, and every
relative link in docs/*.md resolves to a file.

The reasons are not centralised in one enum, so they are enumerated from the code itself:

- the ``reason`` class attribute of every ``kubellm.errors`` exception class (the reasons of
  ``PermanentError`` / ``TemporaryError`` subclasses, which status reports);
- in the package source (the sandbox excluded: it never writes status), every string literal
  passed as ``reason=...``; the third positional argument of ``Want(...)`` (a condition);
  the second of ``_refuse(...)`` (a planner refusal) and of ``camel_reason(...)`` (its default);
  the middle of a ``(status, reason, message)`` tuple literal whose status is True/False/Unknown;
- the licence decisions an allowed ``LicenseApproved`` carries as its reason (the ``Decision``
  literal of the API, except ``Denied``, reported as ``LicenseDenied``).

A new reason in any of those shapes fails the test until docs/troubleshooting.md has a heading
naming it.
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest

from kubellm import errors
from kubellm.api import v1alpha1

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "operator" / "kubellm"
STATUSES = {"True", "False", "Unknown"}
_CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]+$")


def _error_reasons() -> set[str]:
    found: set[str] = set()
    todo: list[type[errors.KubellmError]] = [errors.KubellmError]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls is not errors.KubellmError and cls.__module__ == errors.__name__:
            found.add(cls.reason)
    return found


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


# positional index of the reason argument, by callee name
_REASON_ARG = {"Want": 2, "_refuse": 1, "camel_reason": 1}


def _source_reasons(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "reason" and _literal(kw.value):
                    found.add(str(_literal(kw.value)))
            index = _REASON_ARG.get(_callee(node))
            if index is not None and len(node.args) > index and _literal(node.args[index]):
                found.add(str(_literal(node.args[index])))
        elif isinstance(node, ast.Tuple) and len(node.elts) == 3:
            first, second = _literal(node.elts[0]), _literal(node.elts[1])
            if first in STATUSES and second and second not in STATUSES:
                found.add(second)
    return found


def code_reasons() -> set[str]:
    found = _error_reasons()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "sandbox" in path.relative_to(PACKAGE).parts:
            continue
        found |= _source_reasons(ast.parse(path.read_text(encoding="utf-8")))
    found |= set(typing.get_args(v1alpha1.Decision)) - {"Denied"}
    return {r for r in found if _CAMEL.match(r)}


REASONS = sorted(code_reasons())


def _headings(text: str) -> set[str]:
    """Every back-quoted word in a Markdown heading (``### `DoesNotFit` ...``)."""
    return {
        word
        for line in text.splitlines() if line.startswith("#")
        for word in re.findall(r"`([A-Za-z0-9]+)`", line)
    }


def test_the_enumeration_finds_the_reasons_it_should() -> None:
    """The scan itself must work: reasons from each shape are found."""
    expected = {
        "InvalidSpec", "HubUnavailable",  # error classes
        "KindNotServed", "GpusBusy", "InternalError",  # reason=
        "NoReplicasReady", "Fits",  # Want(...)
        "GatedModel",  # _refuse(...)
        "Downloading", "CacheDisabled",  # (status, reason, message)
        "DownloadFailed",  # camel_reason default
        "AllowedWithWarnings",  # licence decision
    }
    assert expected <= set(REASONS), expected - set(REASONS)


def test_the_scan_reads_each_shape() -> None:
    tree = ast.parse(
        "X(reason='A1')\nWant('T', 'False', 'B1', 'm')\n_refuse(p, 'C1', 'm')\n"
        "x = ('Unknown', 'D1', 'm')\ny = ('a', 'E1', 'm')\ncamel_reason(t, 'F1')\n"
    )
    assert _source_reasons(tree) == {"A1", "B1", "C1", "D1", "F1"}


@pytest.mark.parametrize("reason", REASONS)
def test_every_reason_has_a_troubleshooting_section(reason: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    assert reason in _headings(text), (
        f"docs/troubleshooting.md has no section for condition reason {reason!r}: add a heading "
        f"like \"### `{reason}`\" saying what it means, how to see it and the fix"
    )


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _doc_files() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces -> -."""
    out: set[str] = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # an absolute URL
        path, _, anchor = target.partition("#")
        file = (doc.parent / path) if path else doc
        if not file.exists() or (
            anchor and file.suffix == ".md" and anchor not in _anchors(file)
        ):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links to missing files or headings: {broken}"


def test_anchors_follow_github() -> None:
    doc = DOCS / "troubleshooting.md"
    assert "doesnotfit" in _anchors(doc)
    assert "backofflimitexceeded-deadlineexceeded-and-other-job-reasons" in _anchors(doc)


def test_link_check_sees_links() -> None:
    assert _LINK.findall("see [a](concepts/x.md) and [b](https://e.org) ![i](p.png)") == [
        "concepts/x.md", "https://e.org"]
