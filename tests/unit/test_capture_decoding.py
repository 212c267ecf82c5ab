"""What the capture side reads from the database, fuzzed: no notification and no trigger
configuration can make it raise. Notifications are classified without being decoded; a
payload on the internal channel is ignored, counted and logged at most once a minute."""

from __future__ import annotations

import json
import logging
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pgevents.capture.listener import WAKE_LOG, WAKE_TRANSIENT, Listener, _IgnoredNotifications
from pgevents.core import envelope
from pgevents.store.columns import parse_config, visible
from tests.strategies import json_values

#: The payload that made the listener exit (json.loads raised RecursionError).
DEEP = '{"channel":"people","op":"INSERT","row":' + "[" * 3900 + "]" * 3900 + "}"

payloads = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 5000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["", "t", "T", " ", "t ", "\x7f", '""', "null", DEEP]),
)
channels = st.one_of(st.sampled_from([envelope.INTERNAL_CHANNEL, "people", "Pgevents"]), st.text(max_size=70))


@pytest.fixture(scope="module")
def listener() -> Listener:
    return Listener(layer=object(), channels=("people",))


@settings(max_examples=300, deadline=None)
@given(channel=channels, payload=payloads)
@example(channel=envelope.INTERNAL_CHANNEL, payload=DEEP)
@example(channel="people", payload=DEEP)
def test_any_notification_is_classified_without_raising(listener: Listener, channel: str, payload: str) -> None:
    plain: list[envelope.Event] = []
    wake = listener._take(channel, payload, plain)
    if channel != envelope.INTERNAL_CHANNEL:
        # relayed as the raw payload, inside an envelope that cannot pass for a row change
        assert wake == 0
        (message,) = plain
        frame = json.loads(message["frame"])
        assert (frame["channel"], frame["payload"], frame["id"], frame["op"], frame["row"]) == (
            channel,
            payload,
            None,
            None,
            None,
        )
    else:
        assert plain == []
        assert wake == {"": WAKE_LOG, "t": WAKE_TRANSIENT}.get(payload, 0)


def test_ignored_notifications_are_counted_and_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    prometheus = pytest.importorskip("prometheus_client")

    def ignored() -> float:
        value = prometheus.REGISTRY.get_sample_value("pgevents_notifications_received_total", {"kind": "ignored"})
        return value or 0.0

    listener = Listener(layer=object(), channels=())
    before = ignored()
    with caplog.at_level(logging.WARNING, logger="pgevents.capture.listener"):
        for payload in (DEEP, "junk", '{"channel": "people"}'):
            assert listener._take(envelope.INTERNAL_CHANNEL, payload, []) == 0
    assert ignored() == before + 3
    (record,) = caplog.records
    assert "ignored 1 notification(s)" in record.getMessage() and f"{len(DEEP)} bytes" in record.getMessage()


def test_the_ignored_log_line_says_how_many_came_meanwhile(caplog: pytest.LogCaptureFixture) -> None:
    counter = _IgnoredNotifications(every=0.0)  # no quiet period: every call logs
    counter.count = 41  # as if 41 came during the last minute
    with caplog.at_level(logging.WARNING, logger="pgevents.capture.listener"):
        counter.add(7)
    assert "ignored 42 notification(s)" in caplog.records[0].getMessage() and counter.count == 0


tgargs = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode() + b"\x00{id}\x00{}\x00"),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n + b"\x00"),
)


@settings(max_examples=300, deadline=None)
@given(raw=tgargs, columns=st.lists(st.text(alphabet=string.ascii_lowercase, max_size=4), max_size=5))
def test_any_trigger_configuration_is_read_without_raising(raw: bytes, columns: list[str]) -> None:
    config = parse_config(raw)
    assert config is None or isinstance(config, dict)
    if config is not None:
        assert visible(config, columns) <= frozenset(columns)


def test_the_columns_a_trigger_sends() -> None:
    table = ["id", "name", "nickname", "password"]
    assert visible({"columns": ["id", "name", "gone"]}, table) == {"id", "name"}  # decided at install
    assert visible({"exclude": ["password"]}, table) == {"id", "name", "nickname"}  # a v2 trigger
    assert visible({"include": ["id", "password"], "exclude": ["password"]}, table) == {"id"}
    assert visible({"columns": "id"}, table) == set(table)  # not a list: read as a v2 trigger with no options
