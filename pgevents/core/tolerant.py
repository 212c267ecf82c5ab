"""Decoding event frames however deeply their rows nest, without recursion.

``json.loads`` raises ``RecursionError`` past about a thousand nested levels, while
PostgreSQL's ``jsonb`` stores far deeper values. A row filter only ever compares a row's
top-level column values with scalars, so an event is decoded in full when it can be, and
otherwise level by level down to the columns (:data:`LEVELS`): a value that still cannot be
decoded stays :class:`Opaque` — its JSON text, kept whole — which no scalar condition
matches (as with any list or object), and which encodes back to exactly that text
(:func:`object_text`). The scanner is iterative, so no input makes it recurse.

Pure: nothing raised but ``ValueError`` for text that is not JSON (property-tested).
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Levels decoded member by member when the whole does not decode: the frame, then its rows;
#: a column value that still does not decode is Opaque.
LEVELS = 2

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[^\s\[\]{}",:]+|[,:]|\s+', re.S)
_decoder = json.JSONDecoder()


class Opaque:
    """A JSON value too deep to decode; ``text`` is its JSON."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Opaque({self.text[:20]!r}…)"


class Partial(dict[str, Any]):
    """An object decoded member by member; ``text`` is its JSON, to encode it back as is."""

    text: str = ""


def loads(text: str) -> Any:
    """``text`` decoded, with values nested too deeply for ``json`` left :class:`Opaque`."""
    try:
        return json.loads(text)
    except RecursionError:
        pass
    try:
        return _decode(text.strip(), LEVELS)
    except IndexError:  # ran off the end: truncated
        raise ValueError("not JSON") from None


def _decode(span: str, levels: int) -> Any:
    try:
        return json.loads(span)
    except RecursionError:
        pass
    if levels <= 0:
        _end(span, 0, whole=True)  # still reject text that is not JSON
        return Opaque(span)
    if span.startswith("{"):
        obj = Partial()
        for key, value in _members(span):
            obj[key] = _decode(value, levels - 1)
        obj.text = span
        return obj
    if span.startswith("["):
        return [_decode(value, levels - 1) for _, value in _members(span)]
    raise AssertionError("unreachable")  # json.loads recurses only into a container


def _members(span: str) -> list[tuple[str, str]]:
    """The ``(key, value text)`` pairs of an object (keys are "" for an array's items).

    Only called on a container ``json.loads`` recursed into too deeply, so it has a member."""
    out: list[tuple[str, str]] = []
    is_object = span[0] == "{"
    i = _skip_ws(span, 1)
    while True:
        key = ""
        if is_object:
            key, i = _decoder.raw_decode(span, i)
            if not isinstance(key, str):
                raise ValueError("object keys must be strings")
            i = _skip_ws(span, i)
            if span[i] != ":":
                raise ValueError("expected ':'")
            i = _skip_ws(span, i + 1)
        end = _end(span, i)
        out.append((key, span[i:end]))
        i = _skip_ws(span, end)
        if span[i] == ",":
            i = _skip_ws(span, i + 1)
            continue
        if span[i] != ("}" if is_object else "]") or _skip_ws(span, i + 1) != len(span):
            raise ValueError("malformed container")
        return out


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _end(text: str, start: int, whole: bool = False) -> int:
    """Index just past the JSON value starting at ``start`` (brackets counted, not recursed)."""
    if start >= len(text):
        raise ValueError("unexpected end")
    if text[start] not in "[{":
        _, end = _decoder.raw_decode(text, start)
        return int(end)
    depth = 0
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                end = match.end()
                if whole and _skip_ws(text, end) != len(text):
                    raise ValueError("trailing data")
                return end
    raise ValueError("unterminated container")


def object_text(value: Any) -> str:
    """``value`` as JSON: a :class:`Partial` as the text it came from, anything else encoded."""
    if isinstance(value, Partial):
        return value.text
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
