"""Pure modules: names, protocol parsing, settings, SQL rendering (no network)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from pgevents import conf
from pgevents.core import envelope, grants, names, protocol, sql


def test_group_names_are_valid_for_any_channel() -> None:
    assert names.group_name("people") == "pgevents.people"
    for hostile in ["sp ace", "q'uote", "ünï", "a" * 63, "x;DROP TABLE people"]:
        group = names.group_name(hostile)
        assert len(group) < 100 and all(c.isalnum() or c in "_.-" for c in group)
    assert names.group_name("sp ace") != names.group_name("sp_ace")


@pytest.mark.parametrize("bad", ["", "a" * 64, "é" * 32, "nul\x00", 5, None, ["people"]])
def test_invalid_channel_names_are_refused(bad: object) -> None:
    with pytest.raises(names.BadChannel):
        names.validate_channel(bad)


def test_channel_patterns() -> None:
    assert names.matches("orders.eu", ("orders.*",))
    assert not names.matches("Orders.eu", ("orders.*",))
    assert names.matches("people", ("people",)) and not names.matches("peoplex", ("people",))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "bad_request"),
        ("null", "bad_request"),
        ('{"type": 1}', "bad_request"),
        ('{"type": "subscribe", "channel": "p", "last_event_id": true}', "bad_request"),
        ('{"type": "subscribe", "channel": "p", "last_event_id": "12a"}', "bad_request"),
        ('{"type": "subscribe", "channel": "p", "filter": []}', "bad_request"),
        ('{"type": "what"}', "bad_request"),
        ("x" * 100, "too_large"),
    ],
)
def test_protocol_errors(text: str, code: str) -> None:
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.parse(text, max_bytes=64)
    assert err.value.code == code


def test_protocol_commands() -> None:
    cmd = protocol.parse('{"type": "subscribe", "channel": "people", "last_event_id": "7"}', 1000)
    assert cmd == protocol.Subscribe("people", 7, None)
    assert protocol.parse('{"type": "unsubscribe", "channel": "people"}', 1000) == protocol.Unsubscribe("people")
    assert protocol.parse('{"type": "ping"}', 1000) == protocol.Ping()


def test_unknown_settings_keys_are_an_error() -> None:
    with override_settings(PGEVENTS={"CHANELS": ["people"]}), pytest.raises(ImproperlyConfigured, match="CHANELS"):
        conf.get()


def test_settings_defaults_and_reset_on_override() -> None:
    with override_settings(PGEVENTS={}):
        assert conf.get().channels == () and conf.get().durable is True
    with override_settings(PGEVENTS={"CHANNELS": ["a", "b.*"], "RETENTION": 60}):
        assert conf.get().channels == ("a", "b.*")
        assert conf.get().retention == 60


def test_trigger_sql_quotes_every_identifier() -> None:
    spec = sql.TriggerSpec(table='we"ird table', schema="my schema", channel="it's", columns=('co"l', "it's"))
    text = sql.render(spec.create_statements())
    assert '"my schema"."we""ird table"' in text
    assert '\'{"channel": "it\'\'s"' in text  # the JSON argument is a quoted literal
    assert 'OLD."co""l", OLD."it\'s"' in text  # the UPDATE condition names each sent column
    assert all(len(name.encode()) <= 63 for name in spec.trigger_names())


def test_array_literal() -> None:
    assert sql.array_literal([]) == "{}"
    assert sql.array_literal(["a", 'b"c', "d\\e", "NULL", "x,y}"]) == '{"a","b\\"c","d\\\\e","NULL","x,y}"}'


def test_trigger_spec_rejects_bad_events_and_overlap() -> None:
    with pytest.raises(ValueError):
        sql.TriggerSpec(table="t", channel="c", events=("UPSERT",))
    with pytest.raises(ValueError):
        sql.TriggerSpec(table="t", channel="c", columns=("a",), hidden=("a",))


def test_an_update_trigger_compares_only_sent_columns() -> None:
    names = sql.TriggerSpec(table="t", channel="c", columns=("a",)).trigger_names()
    assert [n[-2:] for n in names] == ["_r", "_d", "_u", "_t"]
    # sending no column, an UPDATE can show no change: no UPDATE trigger at all
    assert [n[-2:] for n in sql.TriggerSpec(table="t", channel="c").trigger_names()] == ["_r", "_d", "_t"]
    text = sql.render(
        sql.TriggerSpec(table="t", channel="c", columns=("a", "b"), update_columns=("b",)).create_statements()
    )
    assert 'record_image_ne(ROW(OLD."b"), ROW(NEW."b"))' in text


def test_digest_changes_with_the_definition() -> None:
    a = sql.TriggerSpec(table="t", channel="c", columns=("a",))
    assert a.digest == sql.TriggerSpec(table="t", channel="c", columns=("a",)).digest
    assert a.digest != sql.TriggerSpec(table="t", channel="c", columns=("a", "x")).digest
    assert a.digest != sql.TriggerSpec(table="t", channel="c", columns=("a",), hidden=("x",)).digest


def test_plain_frame_keeps_the_payload_raw() -> None:
    frame = json.loads(envelope.plain_frame("people", '{"a":1}'))
    assert frame["payload"] == '{"a":1}' and frame["id"] is None and frame["at"].endswith("Z")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"DURABLE": "yes"}, "PGEVENTS['DURABLE'] must be True or False"),
        ({"BATCH_SIZE": 1.5}, "PGEVENTS['BATCH_SIZE'] must be an integer"),
        ({"CHANNELS": ["a", 1]}, "PGEVENTS['CHANNELS'] must be a list of strings"),
        ({"NOTIFY_CHANNELS": 3}, "PGEVENTS['NOTIFY_CHANNELS'] must be a list of strings"),
        ({"EMBEDDED_LISTENER": 1}, "must be True or False or None"),
    ],
)
def test_settings_of_the_wrong_type_are_an_error(raw: dict[str, object], message: str) -> None:
    with override_settings(PGEVENTS=raw), pytest.raises(ImproperlyConfigured) as err:
        conf.get()
    assert message in str(err.value)


def test_settings_accept_ints_for_seconds_and_none_where_documented() -> None:
    with override_settings(PGEVENTS={"RETENTION": 60, "EMBEDDED_LISTENER": None, "NOTIFY_CHANNELS": None}):
        assert conf.get().retention == 60.0 and isinstance(conf.get().retention, float)
        assert conf.get().embedded_listener is None and conf.get().notify_channels == ()


def test_probe_event_statements_quote_the_channel() -> None:
    durable = sql.render(sql.probe_event(sql.TriggerSpec(table="t", channel="it's")))
    assert "VALUES ('it''s', NULL, 'public', 't')" in durable and "pg_notify('pgevents', '')" in durable
    assert 'INSERT INTO "pgevents_event"' in durable
    fleeting = sql.render(sql.probe_event(sql.TriggerSpec(table="t", channel="it's", durable=False)))
    assert 'INSERT INTO "pgevents_transient"' in fleeting and "VALUES ('it''s', NULL, 'public', 't')" in fleeting
    assert "pg_notify('pgevents', 't')" in fleeting


def test_a_reference_pairs_each_column_with_a_key() -> None:
    with pytest.raises(ValueError, match="as many columns as keys"):
        sql.Reference(channel="books", table="books", columns=("a", "b"), keys=("id",))


def test_listener_sessions_are_known_by_the_first_word_of_their_name() -> None:
    assert names.is_listener_session("pgevents-listener") and names.is_listener_session("pgevents-embedded")
    assert names.is_listener_session("pgevents-listener web-1:4242")
    assert not names.is_listener_session("pgevents-listeners") and not names.is_listener_session("psql")


def test_the_grants_script_adds_what_older_servers_need() -> None:
    assert grants.server_advice(150000) == [] and grants.server_advice(160004) == []
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC;" in "\n".join(grants.server_advice(140011))
