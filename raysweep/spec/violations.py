"""Collecting sweep-config violations: the `Report`, and helpers that each check one value.

Every check adds to one `Report` instead of raising, because a user should see
every problem in a file at once (W&B's engine also collects all schema
violations). The helpers are shared by the parameter and section checks so
each message is phrased, and each numeric string read, the same way everywhere.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raysweep.errors import Violation
from raysweep.values import finite_number

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# What PyYAML (YAML 1.1) leaves as a string but a reader means as a number: `1e-5`, `1.0e5`, quoted "0.1".
_NUMERIC_TEXT = re.compile(r"([-+]?)(\d+\.?\d*|\.\d+)(?:[eE]([-+]?\d+))?", re.ASCII)


@dataclass
class Report:
    """Every violation found so far, plus the notes that become warnings if the config loads."""

    violations: list[Violation] = field(default_factory=list)
    numeric_fixes: list[str] = field(default_factory=list)
    exponent_notes: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    missing_program: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        """Record one violation at a dotted key path (huge values in it elided, keeping the fix at the end)."""
        self.violations.append(Violation(_elide(path, 200), _elide(message, 600)))


def _elide(text: str, limit: int) -> str:
    """``text`` with its middle cut out when longer than ``limit``: a 100 kB value must not flood the error."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ... {text[-half:]}"


def join(path: str, key: object) -> str:
    """Dotted key path of ``key`` below ``path``."""
    return f"{path}.{key}" if path else str(key)


def closest(word: object, choices: Iterable[str]) -> str | None:
    """The choice ``word`` is most likely a typo of (difflib), or one it abbreviates."""
    choices = list(choices)
    text = str(word)
    close = difflib.get_close_matches(text, choices, n=1, cutoff=0.6)
    close = close or [c for c in choices if text and c.startswith(text)][:1]
    return close[0] if close else None


def suggest(word: object, choices: Iterable[str], listing: str = "allowed") -> str:
    """``did you mean 'x'?`` for a close choice, else the list of choices."""
    choices = list(choices)
    match = closest(word, choices)
    return f"did you mean {match!r}?" if match else f"{listing}: {', '.join(choices)}"


def unknown_keys(report: Report, path: str, mapping: Mapping[Any, Any], allowed: Iterable[str],
                 what: str) -> set[str]:
    """Report keys not in ``allowed``; return the allowed keys suggested for them."""
    allowed = list(allowed)
    suggested: set[str] = set()
    for key in [k for k in mapping if k not in allowed]:
        report.add(join(path, key), f"unknown key for {what}; {suggest(key, allowed)}")
        suggested.update(filter(None, [closest(key, allowed)]))
    return suggested


def yaml_number_literal(text: str) -> str:
    """How to write the number ``text`` spells so PyYAML reads a number: ``1e-5`` -> ``1.0e-5``.

    PyYAML (YAML 1.1) needs a dot in the mantissa and a sign in the exponent.
    """
    sign, mantissa, exponent = _NUMERIC_TEXT.fullmatch(text).groups()  # type: ignore[union-attr]
    if "." not in mantissa and exponent is None:
        return str(int(text))
    whole, _, frac = mantissa.partition(".")
    exponent = "" if exponent is None else "e" + (exponent if exponent[0] in "+-" else f"+{exponent}")
    return f"{sign}{whole or '0'}.{frac or '0'}{exponent}"


def parse_numeric_string(value: object) -> int | float | None:
    """The number a string like ``"1e-5"`` spells, or None if it is not one (or not finite)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    match = _NUMERIC_TEXT.fullmatch(value)
    if match is None:
        return None
    if "." not in match.group(2) and match.group(3) is None:
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def coerce_number(report: Report, path: str, value: object, line_key: str | None) -> object:
    """``value``, or the number a numeric string spells (noted for the one warning)."""
    number = parse_numeric_string(value)
    if number is None:
        return value
    literal = yaml_number_literal(str(value))
    line = f"{line_key}: {literal}" if line_key else literal
    report.numeric_fixes.append(f"{path}: {value!r} is a string to YAML; write `{line}`")
    return number


def coerce_fields(report: Report, path: str, mapping: dict[Any, Any], keys: Iterable[str]) -> dict[Any, Any]:
    """A copy of ``mapping`` with numeric strings under ``keys`` read as numbers."""
    out = dict(mapping)
    for key in keys:
        if key in out:
            out[key] = coerce_number(report, join(path, key), out[key], key)
    return out


def is_number(value: object) -> bool:
    """A finite int or float (not a bool) within float range: W&B's schema number, minus inf/NaN."""
    return isinstance(value, (int, float)) and finite_number(value) is not None


def as_integer(value: object) -> int | None:
    """``value`` as an int when JSON Schema calls it an integer (``3`` or ``3.0``), else None."""
    if not isinstance(value, (int, float)):
        return None
    number = finite_number(value)
    return int(value) if number is not None and number.is_integer() else None


def check_choice(report: Report, path: str, value: object, choices: Iterable[str], hint: str = "") -> bool:
    """Report ``value`` unless it is one of ``choices``."""
    choices = list(choices)
    if isinstance(value, str) and value in choices:
        return True
    found = "missing" if value is None else f"got {value!r}"
    report.add(path, f"{found}; {suggest(value, choices, 'write one of')}{hint}")
    return False


def check_string(report: Report, path: str, value: object) -> bool:
    """Report ``value`` unless it is a string."""
    if isinstance(value, str):
        return True
    report.add(path, f"must be a string, got {value!r}; put it in quotes: '{value}'")
    return False


def check_parameter_name(report: Report, path: str, name: object) -> bool:
    """W&B's name rule ``^[A-Za-z_][A-Za-z0-9_.-]*$``; YAML reads `on`/`yes`/`1` as non-strings."""
    if isinstance(name, str) and _PARAM_NAME.fullmatch(name):
        return True
    if not isinstance(name, str):
        report.add(path, f"parameter name {name!r} is a {type(name).__name__}, not a string "
                         f"(YAML reads yes/no/on/off/true/false/null and numbers that way); quote it: '{name}'")
        return False
    fixed = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    fixed = fixed if re.match(r"[A-Za-z_]", fixed) else f"_{fixed}"
    report.add(path, f"parameter name {name!r} must start with a letter or _ and hold only letters, digits, "
                     f"_ . -; rename it, e.g. to {fixed!r}")
    return False


_MAX_DEPTH = 64
_MAX_NODES = 100_000
_KEY_TYPES = (str, int, float, bool, type(None))


class _TooLarge(Exception):
    """The config holds more values than any sweep needs (a YAML alias bomb)."""


@dataclass
class _PlainCopy:
    """Copies a config into dicts, lists and scalars, reporting anything else (dates, sets, cycles)."""

    report: Report
    nodes: int = 0
    active: set[int] = field(default_factory=set)

    def copy(self, value: Any, path: str, depth: int) -> Any:
        """The plain copy of ``value`` at ``path``, reporting what cannot be copied."""
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise _TooLarge
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        if not isinstance(value, (Mapping, list, tuple)):
            self.report.add(path, f"{value!r} is a {type(value).__name__}, which a sweep config cannot hold; "
                                  f"{_plain_hint(value)}")
            return None
        if id(value) in self.active:
            self.report.add(path, "contains itself (a recursive YAML alias); write the values out")
            return None
        if depth >= _MAX_DEPTH:
            self.report.add(path, f"nested more than {_MAX_DEPTH} levels deep; a sweep config never needs that")
            return None
        self.active.add(id(value))
        try:
            return self._container(value, path, depth)
        finally:
            self.active.discard(id(value))

    def _container(self, value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], path: str, depth: int) -> Any:
        """The plain copy of a list or mapping; mapping keys must be JSON-compatible scalars."""
        if not isinstance(value, Mapping):
            return [self.copy(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        out = {}
        for key, item in value.items():
            if not isinstance(key, _KEY_TYPES):
                self.report.add(join(path, key), f"the key {key!r} is a {type(key).__name__}; quote it: '{key}'")
                continue
            out[key] = self.copy(item, join(path, key), depth + 1)
        return out


def _plain_hint(value: object) -> str:
    """How to write a YAML value that is not plain data."""
    if isinstance(value, (set, frozenset)):
        return "write a list: [a, b]"
    return f"put it in quotes: '{value}'" if not isinstance(value, bytes) else "write it as a string"


def plain_copy(report: Report, value: Any) -> Any:
    """A copy of ``value`` made of dict/list/str/int/float/bool/None only, as JSON and W&B can store.

    YAML's safe loader also builds dates, binary, sets and self-referencing aliases; each
    is reported with its path. Deep or huge inputs are refused instead of crashing later.
    """
    try:
        return _PlainCopy(report).copy(value, "", 0)
    except _TooLarge:
        report.add("", f"the config holds more than {_MAX_NODES:,} values (after expanding YAML aliases); "
                       "a sweep config this large is refused")
        return None
