"""Rule conditions in CEL (Common Expression Language), compiled once at load, never `eval`."""

from __future__ import annotations

import re
from typing import Any

import cel

from valeur_monitor.engine.event import Event, format_time
from valeur_monitor.engine.fastpath import compile_fast, compile_field

# Names a condition may use; `time` is the event time as an RFC 3339 string.
VARIABLES = frozenset({"type", "customer", "ref", "source", "channel", "team", "data", "time"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
# Comprehension macros bind their first argument: `data.items.exists(x, x > 5)` reads `x`.
_MACRO = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
# Regex literals of `matches`: `s.matches("re")` or `matches(s, "re")`.
_PATTERN = re.compile(
    r"""matches\s*\((?:[^()"']*,\s*)?("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\)""")


def free_names(program: Any, source: str) -> frozenset[str]:
    """The variables an expression reads from its context (macro-bound names left out)."""
    bound = set(_MACRO.findall(_STRINGS.sub('""', source)))
    return frozenset(set(program.variables()) - bound)


def check_patterns(source: str) -> None:
    """Refuse at load a `matches` regex literal that cannot compile (syntax, or over the regex
    engine's size limit): at run time it would only make every evaluation fail."""
    for literal in _PATTERN.findall(source):
        try:
            cel.compile(f'"".matches({literal})').execute({})
        except (ValueError, RuntimeError) as exc:
            text = str(exc)
            why = ("exceeds the regex size limit" if "size limit" in text
                   else text.split("\n")[-1].split(". Check function")[0].strip() or text)
            raise ValueError(f"regex {literal[:40]} cannot be used: {why}") from None


def compile_checked(source: str, allowed: frozenset[str]) -> tuple[Any, frozenset[str]]:
    """The compiled CEL program of `source` and the names it reads, refused (ValueError with
    the parser's column, or the unknown names) unless it reads only `allowed` names and every
    `matches` regex literal compiles: one check for rule conditions and source mappings."""
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(_first_line(str(exc))) from None
    names = free_names(program, source)
    unknown = sorted(names - allowed)
    if unknown:
        raise ValueError(
            f"unknown name(s) {', '.join(unknown)} in {source!r}; "
            f"use {', '.join(sorted(allowed))}"
        )
    check_patterns(source)
    return program, names


class Condition:
    """A compiled CEL expression evaluated against one event."""

    __slots__ = ("_fast", "_field", "_needs", "_program", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        program, names = compile_checked(source, VARIABLES)
        self._program = program
        # Only the names the expression reads are converted to CEL values.
        self._needs = tuple(sorted(names))
        self._fast = compile_fast(source)
        self._field = compile_field(source)

    def context(self, event: Event) -> dict[str, Any]:
        """The variables of `event` this expression reads."""
        ctx: dict[str, Any] = {}
        for name in self._needs:
            if name == "time":
                ctx[name] = format_time(event.time)
            else:
                ctx[name] = getattr(event, name)
        return ctx

    def value(self, event: Event) -> Any:
        """The expression's value for `event`; raises LookupError/ValueError on errors."""
        if self._field is not None:
            value = event.data.get(self._field)
            if isinstance(value, str):
                return value
        return self._program.execute(self.context(event))

    def test(self, event: Event) -> bool:
        """True only when the expression evaluates to true; a missing field counts as false."""
        if self._fast is not None:
            answer = self._fast(event.data)
            if answer is not None:
                return answer
        try:
            return self._program.execute(self.context(event)) is True
        except (LookupError, ValueError, RuntimeError, TypeError):
            return False


def _first_line(message: str) -> str:
    """CEL's parser message, shortened: 'column 14: Syntax error: mismatched input ...'."""
    match = re.search(r"<input>:\d+:(\d+): (.*?)(?: expecting .*)?$", message, re.MULTILINE)
    if match:
        return f"column {match.group(1)}: {match.group(2).strip()}"
    lines = [line for line in message.splitlines() if line.strip()]
    return lines[0] if lines else message


# String helpers CEL's standard library lacks here (vendor payloads mix "Open" and "OPEN").
FUNCTIONS: dict[str, Any] = {
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "trim": lambda s: str(s).strip(),
}
_CALLS = re.compile(r"\b(" + "|".join(FUNCTIONS) + r")\s*\(")
_NAME = re.compile(r"(?<![\w.])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)")


def _paths(source: str, names: frozenset[str]) -> dict[str, list[tuple[str, ...]] | None]:
    """Per variable, the dotted paths the expression reads (None: it uses the value whole)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', source)
    found: dict[str, list[tuple[str, ...]] | None] = {}
    for match in _NAME.finditer(text):
        name, rest = match.group(1), match.group(2)
        if name not in names:
            continue
        after = text[match.end():match.end() + 1]
        if after == "(" and rest:
            rest = rest[:rest.rfind(".")]   # a method or macro call: `data.m.exists(k, ...)`
        if not rest or after == "[":
            found[name] = None          # indexed or passed whole: no pruning
        elif found.get(name, []) is not None:
            found.setdefault(name, []).append(tuple(rest[1:].split(".")))  # type: ignore[union-attr]
    return found


def _prune(value: Any, paths: list[tuple[str, ...]]) -> Any:
    """The part of `value` the paths reach: converting a whole vendor payload to CEL values
    for every expression costs far more than evaluating it."""
    if not isinstance(value, dict):
        return value
    whole: set[str] = set()
    deeper: dict[str, list[tuple[str, ...]]] = {}
    for path in paths:
        if len(path) == 1:
            whole.add(path[0])
        else:
            deeper.setdefault(path[0], []).append(path[1:])
    out: dict[str, Any] = {}
    for head in whole | deeper.keys():
        if head in value:
            out[head] = value[head] if head in whole else _prune(value[head], deeper[head])
    return out


class Expression:
    """A compiled CEL expression over variables the caller names (source mappings use it).

    Same dialect and compiler as rule conditions, plus `lower`, `upper` and `trim`.
    """

    __slots__ = ("_functions", "_paths", "_program", "source", "variables")

    def __init__(self, source: str, allowed: frozenset[str]) -> None:
        self.source = source
        program, names = compile_checked(source, allowed)
        self._program = program
        self.variables = names
        self._functions = bool(_CALLS.search(source))
        found = _paths(source, self.variables)
        self._paths = {n: found.get(n) for n in self.variables}

    def evaluate(self, variables: dict[str, Any]) -> Any:
        """The value; raises LookupError/ValueError/RuntimeError/TypeError on errors."""
        values: dict[str, Any] = {}
        for name, paths in self._paths.items():
            if name in variables:
                value = variables[name]
                values[name] = value if paths is None else _prune(value, paths)
        if not self._functions:
            return self._program.execute(values)
        context = cel.Context()
        for name, fn in FUNCTIONS.items():
            context.add_function(name, fn)
        context.update(values)
        return self._program.execute(context)
