"""A shortcut for the commonest CEL condition shapes, with CEL's answer whenever in doubt.

Conditions such as `has(data.topic)`, `data.status == "open"`, `data.status in ["a", "b"]`,
`data.score >= 4` and conjunctions of them are evaluated in Python. Each atom answers True,
False, or UNSURE (a type CEL might treat differently); one UNSURE sends the whole expression to
CEL. Equivalence with CEL is property-tested (tests/unit/engine/test_fastpath.py).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, Final

UNSURE: Final = None
_MISSING: Final[Any] = object()   # Final: a C static when compiled, not a dict look-up
Atom = Callable[[dict[str, Any]], bool | None]

_FIELD = r"data\.([A-Za-z_][A-Za-z0-9_]*)"
_STRING = r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\''
_HAS = re.compile(rf"^has\({_FIELD}\)$")
_CMP_STR = re.compile(rf"^{_FIELD}\s*(==|!=)\s*(?:{_STRING})$")
_IN_STR = re.compile(rf"^{_FIELD}\s+in\s+\[(.*)\]$")
_CMP_NUM = re.compile(rf"^{_FIELD}\s*(==|!=|<=|>=|<|>)\s*(-?\d+)$")
_CMP_BOOL = re.compile(rf"^{_FIELD}\s*==\s*(true|false)$")
# `!(has(data.x) && data.x)`: "not set, or set to false"
_NOT_SET_TRUE = re.compile(rf"^!\(\s*has\({_FIELD}\)\s*&&\s*data\.([A-Za-z_][A-Za-z0-9_]*)\s*\)$")
_LIST_ITEM = re.compile(rf"\s*(?:{_STRING})\s*(?:,|$)")
_NUMERIC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
    "<": operator.lt, ">": operator.gt}


def _unescaped(double: str | None, single: str | None) -> str | None:
    text = double if double is not None else single
    if text is None or "\\" in text:
        return None  # escapes: leave them to CEL
    return text


def _atom(text: str) -> Atom | None:
    if m := _HAS.match(text):
        name = m.group(1)
        return lambda data: name in data
    if m := _CMP_STR.match(text):
        name, op, literal = m.group(1), m.group(2), _unescaped(m.group(3), m.group(4))
        if literal is None:
            return None
        equal = op == "=="

        def compare(data: dict[str, Any]) -> bool | None:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                return False  # CEL: no such key -> error -> the condition is false
            if not isinstance(value, str):
                return UNSURE
            return (value == literal) is equal

        return compare
    if m := _IN_STR.match(text):
        name, body = m.group(1), m.group(2)
        items = [_unescaped(a, b) for a, b in _LIST_ITEM.findall(body)]
        if not items or any(i is None for i in items) or _LIST_ITEM.sub("", body).strip():
            return None
        allowed = frozenset(i for i in items if i is not None)

        def member(data: dict[str, Any]) -> bool | None:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                return False
            if not isinstance(value, str):
                return UNSURE
            return value in allowed

        return member
    if m := _CMP_BOOL.match(text):
        name, wanted = m.group(1), m.group(2) == "true"

        def boolean(data: dict[str, Any]) -> bool | None:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                return False
            if not isinstance(value, bool):
                return UNSURE  # CEL's equality across types: let it decide
            return value is wanted

        return boolean
    if (m := _NOT_SET_TRUE.match(text)) and m.group(1) == m.group(2):
        name = m.group(1)

        def unset_or_false(data: dict[str, Any]) -> bool | None:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                return True   # has() is false: false && (error) is false, negated true
            if not isinstance(value, bool):
                return UNSURE  # a non-boolean operand of && is an error in CEL
            return not value

        return unset_or_false
    if m := _CMP_NUM.match(text):
        name, op, number = m.group(1), _NUMERIC_OPS[m.group(2)], int(m.group(3))

        def numeric(data: dict[str, Any]) -> bool | None:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                return False
            if isinstance(value, bool) or not isinstance(value, int):
                return UNSURE  # doubles, strings, bools: CEL decides
            return op(value, number)

        return numeric
    return None


def compile_fast(source: str) -> Callable[[dict[str, Any]], bool | None] | None:
    """A Python test over `data` for a conjunction of simple atoms, or None if not that shape."""
    parts = _conjuncts(source)
    if parts is None or any(("||" in p) or ("(" in p and not p.startswith(("has(", "!(")))
                            for p in parts):
        return None
    atoms = [_atom(p) for p in parts]
    if not atoms or any(a is None for a in atoms):
        return None
    checks = tuple(a for a in atoms if a is not None)

    def test(data: dict[str, Any]) -> bool | None:
        unsure = False
        for check in checks:
            answer = check(data)
            if answer is False:
                return False  # false && anything is false in CEL, errors included
            if answer is UNSURE:
                unsure = True
        return UNSURE if unsure else True

    return test


def _conjuncts(source: str) -> list[str] | None:
    """The operands of the top-level `&&`s (parentheses kept whole); None if unbalanced."""
    parts: list[str] = []
    depth = start = 0
    i = 0
    while i < len(source):
        char = source[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif char == "&" and depth == 0 and source.startswith("&&", i):
            parts.append(source[start:i].strip())
            start = i + 2
            i += 1
        i += 1
    if depth:
        return None
    parts.append(source[start:].strip())
    return parts


def compile_field(source: str) -> str | None:
    """`data.name` -> 'name' (a key expression that is a plain field), else None."""
    m = re.match(rf"^{_FIELD}$", source.strip())
    return m.group(1) if m else None
