"""Property-based tests: whatever a client sends, the parser, the channel-name rules and the
filter grammar answer with their own error type or a valid value — never anything else."""

from __future__ import annotations

import json
import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from pgevents.core import names, protocol
from pgevents.core.filters import FilterError, compile_filter
from tests.strategies import json_scalars, json_values

MAX = 64 * 1024

channels = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=string.ascii_letters + "._-*' \";", max_size=70),
    st.sampled_from(["people", "demo", "sec.closed", "t.x", "", "a" * 64, "é" * 32, "nul\x00", "\ud800"]),
    json_scalars,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "ping", "event", "", "SUBSCRIBE"]) | json_scalars},
    optional={
        "channel": channels,
        "last_event_id": st.integers() | st.text(max_size=25) | json_scalars,
        "filter": json_values,
        "token": json_values,
    },
)
GROUP = re.compile(r"^[A-Za-z0-9_.-]+$")


def _answer(text: str) -> protocol.Command | protocol.ProtocolError:
    try:
        return protocol.parse(text, MAX)
    except protocol.ProtocolError as exc:
        assert exc.code in {"bad_request", "too_large"} and exc.message
        return exc


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_raises_anything_else_on_any_text(text: str) -> None:
    _answer(text)


@settings(max_examples=200, deadline=None)
@given(messages)
def test_parser_on_message_shaped_input(message: dict[str, object]) -> None:
    answer = _answer(json.dumps(message))
    if isinstance(answer, protocol.Subscribe | protocol.Unsubscribe):
        assert names.validate_channel(answer.channel) == answer.channel
        answer.channel.encode("utf-8")  # it can be echoed to the client and sent to PostgreSQL
    if isinstance(answer, protocol.Subscribe):
        assert answer.last_event_id is None or 0 <= answer.last_event_id < 2**63
        assert answer.filter is None or compile_filter(answer.filter) is not None
        assert answer.token is None or isinstance(answer.token, str)


@settings(max_examples=400, deadline=None)
@given(channels)
def test_channel_names_are_valid_or_refused_and_always_map_to_a_valid_group(name: object) -> None:
    try:
        valid = names.validate_channel(name)
    except names.BadChannel:
        return
    assert valid == name and 0 < len(valid.encode("utf-8")) <= names.MAX_CHANNEL_BYTES
    assert not any(ord(c) < 32 or ord(c) == 127 for c in valid)
    group = names.group_name(valid)
    assert GROUP.match(group) and len(group) < 100


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_different_channels_never_share_a_group(a: str, b: str) -> None:
    if a != b:
        assert names.group_name(a) != names.group_name(b)


@settings(max_examples=200, deadline=None)
@given(json_values, st.dictionaries(st.text(max_size=8), json_scalars, max_size=5))
def test_filters_compile_or_refuse_and_never_fail_on_rows(spec: object, row: dict[str, object]) -> None:
    try:
        flt = compile_filter(spec)
    except FilterError:
        return
    flt.matches(row)
    for op in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", None):
        assert flt.decide({"op": op, "row": row, "old": row}) in {"send", "leave", "skip"}


@settings(max_examples=300, deadline=None)
@given(st.integers(-1000, 1000), st.integers(-1000, 1000) | st.none())
def test_comparisons_agree_with_python_on_numbers(bound: int, value: int | None) -> None:
    row = {"n": value}
    for op, fn in {"lt": int.__lt__, "lte": int.__le__, "gt": int.__gt__, "gte": int.__ge__}.items():
        expected = value is not None and fn(value, bound)
        assert compile_filter({"n": {op: bound}}).matches(row) is expected
