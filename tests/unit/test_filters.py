"""Row filters: the grammar, its refusals, and what a filtered subscription does per event."""

from __future__ import annotations

import pytest

from pgevents.core.filters import FilterError, combine, compile_filter
from pgevents.delivery.gate import leave_frame, parsed

ROW = {"id": 1, "owner_id": 5, "age": 30, "status": "open", "score": 2.5, "flag": True, "note": None}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"owner_id": 5}, True),
        ({"owner_id": 6}, False),
        ({"owner_id": "5"}, False),  # no coercion between strings and numbers
        ({"note": None}, True),
        ({"status": None}, False),
        ({"flag": True}, True),
        ({"flag": 1}, False),  # booleans are not numbers
        ({"age": {"gte": 18}}, True),
        ({"age": {"gte": 18, "lt": 30}}, False),
        ({"age": {"gt": 29.5, "lte": 30}}, True),
        ({"score": {"lt": 3}}, True),
        ({"status": {"in": ["open", "held"]}}, True),
        ({"status": {"not_in": ["open"]}}, False),
        ({"note": {"not_in": ["x"]}}, False),  # NULL is never "not in", as in SQL
        ({"status": {"ne": "closed"}}, True),
        ({"note": {"ne": "closed"}}, False),
        ({"status": {"gt": "a"}}, True),
        ({"status": {"gt": 1}}, False),  # mismatched kinds do not compare
        ({"age": {"eq": 30}, "owner_id": {"in": [1, 5]}}, True),
        ({"missing": 1}, False),
        ({}, True),
    ],
)
def test_matches(spec: dict[str, object], expected: bool) -> None:
    assert compile_filter(spec).matches(ROW) is expected


@pytest.mark.parametrize(
    "spec",
    [
        [],
        "x",
        None,
        {"age": {"like": "%"}},
        {"age": {}},
        {"age": {"in": 5}},
        {"age": {"in": list(range(101))}},
        {"age": {"gte": [1]}},
        {"age": {"gte": {"x": 1}}},
        {"age": float("inf")},
        {"age": float("nan")},
        {"": 1},
        {"c" * 64: 1},
        {"\ud800": 1},
        {"name": "\ud800"},
        {"name": "x" * 1025},
        {f"c{i}": 1 for i in range(33)},
    ],
)
def test_malformed_filters_are_refused(spec: object) -> None:
    with pytest.raises(FilterError):
        compile_filter(spec)


def test_decide_sends_leaves_and_skips() -> None:
    flt = compile_filter({"status": "open"})
    open_, closed = {"status": "open"}, {"status": "closed"}
    assert flt.decide({"op": "INSERT", "row": open_, "old": None}) == "send"
    assert flt.decide({"op": "INSERT", "row": closed, "old": None}) == "skip"
    assert flt.decide({"op": "UPDATE", "row": open_, "old": closed}) == "send"  # enters the set
    assert flt.decide({"op": "UPDATE", "row": open_, "old": open_}) == "send"
    assert flt.decide({"op": "UPDATE", "row": closed, "old": open_}) == "leave"
    assert flt.decide({"op": "UPDATE", "row": closed, "old": closed}) == "skip"
    assert flt.decide({"op": "DELETE", "row": None, "old": open_}) == "send"
    assert flt.decide({"op": "DELETE", "row": None, "old": closed}) == "skip"
    # Nothing to judge: sent, so a TRUNCATE still clears lists and a NOTIFY still arrives.
    assert flt.decide({"op": "TRUNCATE", "row": None, "old": None}) == "send"
    assert flt.decide({"op": None, "payload": "hi"}) == "send"


def test_combined_filters_must_all_hold() -> None:
    both = combine(compile_filter({"owner_id": 5}), compile_filter({"age": {"gt": 40}}))
    assert both is not None and not both.matches(ROW)
    assert both.columns == {"owner_id", "age"}
    assert combine(None, None) is None


def test_leave_frame_carries_the_old_row_and_id() -> None:
    event = {"type": "event", "channel": "c", "id": 7, "op": "UPDATE", "schema": "public", "table": "t"}
    event |= {"row": {"id": 1, "s": "b"}, "old": {"id": 1, "s": "a"}, "at": "2026-01-01T00:00:00Z"}
    leave = parsed(leave_frame(event))
    assert leave == {
        "type": "leave",
        "channel": "c",
        "id": 7,
        "schema": "public",
        "table": "t",
        "row": {"id": 1, "s": "a"},
        "at": "2026-01-01T00:00:00Z",
    }


def test_frames_are_parsed_once_per_frame_object() -> None:
    frame = '{"type":"event","op":"INSERT","row":{"a":1}}'
    first = parsed(frame)
    assert parsed(frame) is first
    assert parsed("not json") is None
    assert parsed("[1]") is None
