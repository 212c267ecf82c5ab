"""Row filters: a small JSON grammar, validated up front and evaluated per event.

A filter is an object of ``column: condition`` pairs, all of which must hold::

    {"owner_id": 5, "age": {"gte": 18, "lt": 65}, "status": {"in": ["open", "held"]}}

A condition is a scalar (equality; ``null`` matches SQL NULL) or an object of operators:
``eq``, ``ne``, ``lt``, ``lte``, ``gt``, ``gte`` (a scalar each) and ``in``, ``not_in``
(a list of scalars). Comparisons hold only between two numbers or two strings; anything
else (a NULL, a mismatched type) does not match, as in SQL. Booleans are never numbers.

Pure: no I/O, nothing raised but ``FilterError`` for any input (property-tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_COLUMNS = 32
MAX_IN = 100
MAX_STRING = 1024

SCALAR_OPS = ("eq", "ne", "lt", "lte", "gt", "gte")
LIST_OPS = ("in", "not_in")

Decision = Literal["send", "leave", "skip"]


class FilterError(ValueError):
    """A filter that does not follow the grammar; the message says what is wrong."""


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON allows them, PostgreSQL never stores them
        return False
    return True


def _scalar(value: object, where: str) -> object:
    if value is None or isinstance(value, bool | str):
        if isinstance(value, str) and (len(value) > MAX_STRING or not _encodable(value)):
            raise FilterError(f"{where}: strings must be valid Unicode of at most {MAX_STRING} characters")
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise FilterError(f"{where}: expected a string, number, boolean or null")


def _same_kind(a: object, b: object) -> bool:
    """Both numbers (not booleans) or both strings: the only pairs that can be ordered."""
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, int | float) and isinstance(b, int | float)) or (isinstance(a, str) and isinstance(b, str))


def _equal(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return _same_kind(a, b) and a == b


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def _test(op: str, operand: Any) -> Callable[[object], bool]:
    if op == "eq":
        return lambda v: _equal(v, operand)
    if op == "ne":
        return lambda v: v is not None and operand is not None and not _equal(v, operand)
    if op in _ORDER:
        compare = _ORDER[op]
        return lambda v: _same_kind(v, operand) and compare(v, operand)
    values = tuple(operand)
    if op == "in":
        return lambda v: any(_equal(v, x) for x in values)
    return lambda v: v is not None and not any(_equal(v, x) for x in values)


@dataclass(frozen=True)
class RowFilter:
    """A validated filter: ``matches(row)`` for one row, ``decide(event)`` for an event."""

    spec: Mapping[str, Any]
    tests: tuple[tuple[str, tuple[Callable[[object], bool], ...]], ...]

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(column for column, _ in self.tests)

    def matches(self, row: object) -> bool:
        """Whether ``row`` (an object of column values) meets every condition. Anything that is
        not an object (a missing row, a malformed frame) matches nothing."""
        if not isinstance(row, Mapping):
            return False
        for column, checks in self.tests:
            value = row.get(column)
            if not all(check(value) for check in checks):
                return False
        return True

    def decide(self, event: Mapping[str, Any]) -> Decision:
        """What a filtered subscription does with one event.

        INSERT: send if the new row matches. DELETE: send if the old row matched. UPDATE:
        send if the new row matches (it may be entering the set); ``leave`` if only the old
        one did, so lists drop it. Events without row data (TRUNCATE, plain NOTIFY, rows too
        large for a non-durable NOTIFY) cannot be judged and are sent: dropping a TRUNCATE
        would leave stale lists behind.
        """
        op = event.get("op")
        row, old = event.get("row"), event.get("old")
        if op == "INSERT" and row is not None:
            return "send" if self.matches(row) else "skip"
        if op == "DELETE" and old is not None:
            return "send" if self.matches(old) else "skip"
        if op == "UPDATE" and (row is not None or old is not None):
            if self.matches(row):
                return "send"
            return "leave" if self.matches(old) else "skip"
        return "send"


def compile_filter(spec: object) -> RowFilter:
    """Validate ``spec`` against the grammar; ``FilterError`` says what is wrong."""
    if not isinstance(spec, dict):
        raise FilterError("filter must be an object of column: condition")
    if len(spec) > MAX_COLUMNS:
        raise FilterError(f"filter has more than {MAX_COLUMNS} columns")
    tests: list[tuple[str, tuple[Callable[[object], bool], ...]]] = []
    for column, condition in spec.items():
        if not isinstance(column, str) or not column or not _encodable(column) or len(column.encode()) > 63:
            raise FilterError("filter columns must be non-empty names of at most 63 bytes")
        if not isinstance(condition, dict):
            tests.append((column, (_test("eq", _scalar(condition, column)),)))
            continue
        if not condition:
            raise FilterError(f"{column}: empty condition")
        checks = []
        for op, operand in condition.items():
            if op in SCALAR_OPS:
                checks.append(_test(op, _scalar(operand, f"{column}.{op}")))
            elif op in LIST_OPS:
                if not isinstance(operand, list) or len(operand) > MAX_IN:
                    raise FilterError(f"{column}.{op}: expected a list of at most {MAX_IN} values")
                checks.append(_test(op, [_scalar(v, f"{column}.{op}") for v in operand]))
            else:
                raise FilterError(
                    f"{column}: unknown operator {str(op)[:40]!r} (known: {', '.join(SCALAR_OPS + LIST_OPS)})"
                )
        tests.append((column, tuple(checks)))
    return RowFilter(spec, tuple(tests))


def combine(*filters: RowFilter | None) -> RowFilter | None:
    """All of ``filters`` at once (the client's and the row policy's), or None if none."""
    present = [f for f in filters if f is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    spec = {f"#{i}": dict(f.spec) for i, f in enumerate(present)}
    return RowFilter(spec, tuple(test for f in present for test in f.tests))
