"""Shared hypothesis strategies for the fuzz tests (tests/unit/test_fuzz_*.py).

``JUNK`` is any JSON/YAML-like value with the extremes that break parsers (huge and negative
integers, NaN and infinities, unicode, dates, nested lists and mappings); ``mutated(base)``
applies 0-3 mutations to a document drawn from ``base``, each at a random path of any depth
(replace with junk, delete, add an unknown field, wrap in a list, stringify, null, empty).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from hypothesis import strategies as st

IDENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
UNICODE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=20,
)
EXTREME_INTS = st.sampled_from(
    [0, -1, 1, 15, 16, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 10**30, 10**400]
)
EXTREME_FLOATS = st.sampled_from(
    [0.0, -0.0, 1e-300, 0.1, 0.99, 1.5, 1e308, float("inf"), float("-inf"), float("nan")]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    EXTREME_INTS,
    st.integers(),
    EXTREME_FLOATS,
    st.floats(),
    UNICODE,
    st.sampled_from(["", " ", "auto", "none", "8B", "1e999B", "nanB", "-3B", "0x10", "~", "null",
                     "yes", "no", "on", "2027-02-30", "2027-01-31", "{", "- a", "*a", "&a",
                     "'", '"', "\t", "\u202e", "\U0001f600", "a" * 300]),
    st.dates(min_value=datetime.date(1, 1, 1)),
)
JUNK: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(IDENT, UNICODE, st.integers()), inner, max_size=3),
    ),
    max_leaves=4,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON-like tree (the root is ``()``)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


MUTATIONS = ("replace", "delete", "unknown-field", "wrap-list", "stringify", "null", "empty")


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> Any:
    """``base`` with 0-3 mutations, each at a random path of any depth."""
    doc: Any = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths(doc)))
        how = draw(st.sampled_from(MUTATIONS))
        if how == "replace":
            new: Any = draw(JUNK)
        elif how == "null":
            new = None
        elif how == "empty":
            new = draw(st.sampled_from([{}, [], ""]))
        elif how == "wrap-list":
            new = [get(doc, path)]
        elif how == "stringify":
            new = json.dumps(get(doc, path), default=str)
        elif how == "unknown-field":
            target = get(doc, path)
            if isinstance(target, dict):
                target[draw(st.one_of(IDENT, UNICODE, st.sampled_from(
                    ["Spec", "spec_", "max_model_len", "licenseName", "x-kubernetes"])))] = draw(
                    JUNK)
            continue
        else:  # delete
            if not path:
                doc = None
                continue
            parent = get(doc, path[:-1])
            del parent[path[-1]]
            continue
        if not path:
            doc = new
        else:
            get(doc, path[:-1])[path[-1]] = new
    return doc
