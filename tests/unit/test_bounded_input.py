"""What a client puts in a URL, and what the delivery side decodes, is bounded and answered.

Fuzzed with Hypothesis: a subscription URL's query string, the depth-tolerant decoder of
event frames, and the filter gate never raise anything but their own answers, however
hostile or deep the input; hand-picked cases pin the answers themselves.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgevents.core import protocol, tolerant
from pgevents.core.filters import compile_filter
from pgevents.delivery.gate import FilteredSink, parsed

DEEP = 3000


def deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


# -- query strings ------------------------------------------------------------------------
def test_query_string_becomes_a_subscription() -> None:
    query = "last_event_id=5&filter=%7B%22age%22%3A%7B%22gt%22%3A3%7D%7D&token=abc"
    assert protocol.parse_query("people", query.encode()) == protocol.Subscribe("people", 5, {"age": {"gt": 3}}, "abc")
    # SSE's Last-Event-ID header wins over the query's; the last of repeated keys counts.
    assert protocol.parse_query("people", "last_event_id=5&last_event_id=6", "9").last_event_id == 9
    assert protocol.parse_query("people", "last_event_id=5&last_event_id=6").last_event_id == 6


@pytest.mark.parametrize(
    "query",
    [
        "filter=" + deep(),  # RecursionError in json.loads before
        "filter=" + "%5B" * DEEP + "%5D" * DEEP,
        "filter=not-json",
        "filter=%5B1%5D",  # JSON, but not an object
        "last_event_id=-1",
        "last_event_id=" + "9" * 40,
        "token=" + "t" * 5000,
        "x=1&" * 20,  # too many fields
        "filter=" + "a" * (protocol.MAX_QUERY_BYTES + 1),  # too long
    ],
)
def test_bad_query_strings_are_bad_requests(query: str) -> None:
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_query("people", query.encode())
    assert caught.value.code == "bad_request" and caught.value.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode), st.text(max_size=70), st.text(max_size=30))
def test_query_parsing_never_raises_anything_else(query: bytes, channel: str, header: str) -> None:
    try:
        command = protocol.parse_query(channel, query, header or None)
    except protocol.ProtocolError as exc:
        assert exc.code == "bad_request"
        return
    assert command.channel == channel


# -- depth-tolerant decoding --------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_tolerant_decoding_equals_json_where_json_works(value: Any) -> None:
    assert tolerant.loads(json.dumps(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.integers(0, 4000))
def test_tolerant_decoding_raises_only_value_error(text: str, depth: int) -> None:
    for candidate in (text, "[" * depth + text + "]" * depth, '{"row":' + "[" * depth + text):
        try:
            tolerant.loads(candidate)
        except ValueError:
            pass


def test_deep_columns_stay_opaque_and_encode_back() -> None:
    frame = f'{{"type":"event","op":"INSERT","row":{{"kind":"a","doc":{deep()}}},"old":null}}'
    event = tolerant.loads(frame)
    assert event["row"]["kind"] == "a"
    assert isinstance(event["row"]["doc"], tolerant.Opaque) and event["row"]["doc"].text == deep()
    assert tolerant.object_text(event["row"]) == f'{{"kind":"a","doc":{deep()}}}'
    with pytest.raises(ValueError):
        tolerant.loads(frame[:-1])  # truncated
    assert repr(event["row"]["doc"]).startswith("Opaque(")


@pytest.mark.parametrize(
    "text",
    [
        f'{{"a":{deep()},1:2}}',  # a key that is not a string
        f'{{"a":{deep()},"b" 2}}',  # no colon
        f'{{"a":{deep()},"b":}}',  # no value
        f'{{"a":{deep()},"b":',  # ends after the colon
        f'{{"a":{deep()[:-1]}}}',  # a container never closed
        f'{{"a":{deep()}}} x',  # trailing data
        f"[{deep()}]]",  # closed twice
        f"[{deep()};1]",  # not a separator
    ],
)
def test_deep_text_that_is_not_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        tolerant.loads(text)


# -- the filter gate ------------------------------------------------------------------------
class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[str, int | None]] = []
        self.controls: list[dict[str, Any]] = []

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        self.events.append((frame, id))

    async def send_control(self, frame: str) -> None:
        self.controls.append(json.loads(frame))


def gate(spec: dict[str, Any]) -> tuple[FilteredSink, Collect]:
    inner = Collect()
    return FilteredSink(inner, compile_filter(spec), "t.deep"), inner


def row_frame(op: str, row: str | None, old: str | None = None) -> str:
    return (
        f'{{"type":"event","channel":"t.deep","id":1,"op":"{op}","row":{row or "null"},"old":{old or "null"},"at":"x"}}'
    )


def test_deep_rows_are_decided_by_the_filter() -> None:
    sink, got = gate({"kind": "a"})
    match = row_frame("INSERT", f'{{"kind":"a","doc":{deep()}}}')
    other = row_frame("INSERT", f'{{"kind":"b","doc":{deep()}}}')
    asyncio.run(sink.send_event(match, 1))
    asyncio.run(sink.send_event(other, 2))
    assert got.events == [(match, 1)] and got.controls == []


def test_a_deep_row_leaving_the_set_gets_a_leave_with_its_old_row() -> None:
    sink, got = gate({"kind": "a"})
    old = f'{{"kind":"a","doc":{deep()}}}'
    asyncio.run(sink.send_event(row_frame("UPDATE", '{"kind":"b","doc":1}', old), 3))
    ((frame, id_),) = got.events
    leave = parsed(frame)
    assert id_ == 3 and leave is not None and leave["type"] == "leave"
    assert leave["row"]["kind"] == "a" and leave["row"]["doc"].text == deep()
    assert frame.endswith(f',"row":{old},"at":"x"}}')  # the old row's own text, deep part included


def test_an_undecodable_event_is_reported_not_skipped_silently() -> None:
    sink, got = gate({"kind": "a"})
    asyncio.run(sink.send_event("not json", 4))
    assert got.events == []
    assert got.controls == [
        {
            "type": "error",
            "code": "filter_failed",
            "channel": "t.deep",
            "id": 4,
            "message": "an event could not be checked against the filter and was not sent",
        }
    ]


@settings(max_examples=200, deadline=None)
@given(json_values, st.integers(0, 2500))
def test_the_gate_decides_any_row(row: Any, depth: int) -> None:
    sink, got = gate({"kind": {"in": ["a", 1]}})
    wrapped = "[" * depth + json.dumps(row) + "]" * depth
    for frame in (
        row_frame("INSERT", f'{{"kind":{json.dumps(row)},"v":{wrapped}}}'),
        row_frame("DELETE", None, wrapped),
    ):
        asyncio.run(sink.send_event(frame, 9))
    assert got.controls == []
