"""docs/: every condition reason the code can set has a troubleshooting section, and every
relative link in docs/*.md resolves to a file.

The reasons come from the one catalogue, ``kubellm.reasons.Reason``, plus ``PASSED_THROUGH``
(a failed download Job's own reasons, copied from Kubernetes). So that a new reason cannot bypass
the catalogue, one AST guard scans the package source (the sandbox excluded: it never writes
status; ``reasons.py`` excluded: it is the catalogue) for a CamelCase string literal used as a
condition reason:

- a ``reason=...`` keyword argument, or anywhere in the value assigned to a name with
  "reason" in it (a ``reason`` class attribute, ``PROGRESSING_REASONS = frozenset({...})``);
- the third positional argument of ``Want(...)`` (a condition), the second of ``_refuse(...)``
  (a planner refusal) and of ``camel_reason(...)`` (its default);
- the middle of a ``(status, reason, message)`` tuple literal whose status is True/False/Unknown;
- one side of a comparison (``==``, ``!=``, ``in``) whose other side reads a reason
  (``x.reason``, ``x.refusal_reason``, ``x.get("reason")``, a name ending in ``reason``).

Such a literal must be ``Reason.X`` instead.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kubellm.reasons import PASSED_THROUGH, Reason

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "operator" / "kubellm"
STATUSES = {"True", "False", "Unknown"}
_CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]+$")

REASONS = sorted(Reason)


def _camel_literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CAMEL.match(node.value):
        return node.value
    return None


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


# positional index of the reason argument, by callee name
_REASON_ARG = {"Want": 2, "_refuse": 1, "camel_reason": 1}


def _reads_reason(node: ast.AST) -> bool:
    """``x.reason``, ``x.refusal_reason``, ``x.get("reason")`` or a name ending in ``reason``."""
    if isinstance(node, ast.Attribute):
        return node.attr.endswith("reason")
    if isinstance(node, ast.Name):
        return node.id.endswith("reason")
    if isinstance(node, ast.Call) and _callee(node) == "get" and node.args:
        first = node.args[0]
        return isinstance(first, ast.Constant) and first.value == "reason"
    return False


def _names_reasons(target: ast.AST) -> bool:
    """An assignment target named for reasons: ``reason``, ``x.reason``, ``PROGRESSING_REASONS``."""
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return "reason" in name.lower()


def _elements(node: ast.AST) -> list[ast.AST]:
    """A literal, or the elements of a tuple/list/set literal (``reason in ("A", "B")``)."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return list(node.elts)
    return [node]


def literal_reasons(tree: ast.AST) -> set[str]:
    """CamelCase string literals used as condition reasons (see the module docstring)."""
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found |= {_camel_literal(kw.value) for kw in node.keywords if kw.arg == "reason"}
            index = _REASON_ARG.get(_callee(node))
            if index is not None and len(node.args) > index:
                found.add(_camel_literal(node.args[index]))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is not None and any(_names_reasons(t) for t in targets):
                found |= {_camel_literal(n) for n in ast.walk(node.value)}
        elif isinstance(node, ast.Tuple) and len(node.elts) == 3:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in STATUSES:
                second = _camel_literal(node.elts[1])
                found.add(second if second not in STATUSES else None)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_reads_reason(side) for side in sides):
                found |= {_camel_literal(e) for side in sides for e in _elements(side)}
    return {r for r in found if r is not None}


def _package_sources() -> list[Path]:
    return [
        path for path in sorted(PACKAGE.rglob("*.py"))
        if "sandbox" not in path.relative_to(PACKAGE).parts and path.name != "reasons.py"
    ]


def test_no_reason_bypasses_the_catalogue() -> None:
    """Every reason the package emits is ``Reason.X``, never a string literal."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in _package_sources()
        if (found := literal_reasons(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert not offenders, (
        f"condition reasons written as string literals: {offenders}; use kubellm.reasons.Reason "
        "(add a member, with its category and description, if the reason is new)"
    )


def test_the_guard_reads_each_shape() -> None:
    tree = ast.parse(
        "X(reason='A1')\nWant('T', 'False', 'B1', 'm')\n_refuse(p, 'C1', 'm')\n"
        "x = ('Unknown', 'D1', 'm')\ny = ('a', 'E1', 'm')\ncamel_reason(t, 'F1')\n"
        "class K:\n    reason = 'G1'\nWAIT_REASONS = frozenset({'L1'})\n"
        "if e.reason == 'H1' or c.get('reason') != 'I1' or p.refusal_reason in (None, 'J1'):\n"
        "    pass\n"
        "z = ('True', 'Unknown', 'm')\nWant('T', 'True', Reason.FITS)\nif kind == 'K1': pass\n"
        "if c.get('type') == 'Ready': pass\n"
    )
    assert literal_reasons(tree) == {"A1", "B1", "C1", "D1", "F1", "G1", "H1", "I1", "J1",
                                     "L1"}


def test_the_guard_sees_the_package_sources() -> None:
    """It scans the modules that emit reasons (a wrong path would make it pass vacuously)."""
    names = {p.relative_to(PACKAGE).as_posix() for p in _package_sources()}
    assert {"errors.py", "conditions.py", "planner.py", "reconcile/core.py",
            "reconcile/status.py", "sizing/sizer.py", "k8s/cluster.py"} <= names
    assert "reasons.py" not in names


def _headings(text: str) -> set[str]:
    """Every back-quoted word in a Markdown heading (``### `DoesNotFit` ...``)."""
    return {
        word
        for line in text.splitlines() if line.startswith("#")
        for word in re.findall(r"`([A-Za-z0-9]+)`", line)
    }


@pytest.mark.parametrize("reason", REASONS)
def test_every_reason_has_a_troubleshooting_section(reason: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    assert reason in _headings(text), (
        f"docs/troubleshooting.md has no section for condition reason {reason!r}: add a heading "
        f"like \"### `{reason}`\" saying what it means, how to see it and the fix"
    )


@pytest.mark.parametrize("reason", sorted(PASSED_THROUGH))
def test_every_passed_through_reason_is_named_in_troubleshooting(reason: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    assert f"`{reason}`" in text, f"docs/troubleshooting.md does not name Job reason {reason!r}"


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
