"""Authorisation, signed channels, row filters, row policy, column safety and sessions,
end to end on the shared stack with real users and real Django sessions."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import websockets
from django.template import Context, Template

from pgevents.setup import installation
from pgevents.signing import sign_channel
from tests.support import Client, Stack, execute, run


@dataclass
class Login:
    user: Any
    session_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.session_key}"}


def _login(user: Any) -> Login:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    assert store.session_key is not None
    return Login(user, store.session_key)


@pytest.fixture(scope="module")
def logins(db_url: str, django_db_blocker: Any) -> Iterator[dict[str, Login]]:
    """A plain user, a staff user and a user holding ``people.view_person``, logged in."""
    from django.contrib.auth.models import Permission, User

    with django_db_blocker.unblock():
        User.objects.filter(username__startswith="sec-").delete()
        plain = User.objects.create_user("sec-plain", password="x")
        staff = User.objects.create_user("sec-staff", password="x", is_staff=True)
        viewer = User.objects.create_user("sec-viewer", password="x")
        viewer.user_permissions.add(Permission.objects.get(codename="view_person", content_type__app_label="people"))
        yield {"plain": _login(plain), "staff": _login(staff), "viewer": _login(viewer)}
        User.objects.filter(username__startswith="sec-").delete()


def _watch(db_url: str, **options: Any) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
        installation.install(cur, installation.build_spec(cur, **options))


@pytest.fixture(scope="module")
def docs(db_url: str) -> Iterator[str]:
    """``sec_docs`` watched on ``sec.docs`` (filters) and ``sec.owned`` (row policy)."""
    execute(
        db_url,
        "DROP TABLE IF EXISTS sec_docs",
        "CREATE TABLE sec_docs (id serial PRIMARY KEY, owner_id int, status text, title text)",
    )
    _watch(db_url, table="sec_docs", channel="sec.docs")
    _watch(db_url, table="sec_docs", channel="sec.owned")
    yield "sec_docs"
    execute(db_url, "DROP TABLE sec_docs")


async def _refused(client: Client, channel: str, code: str = "forbidden", **fields: Any) -> dict[str, Any]:
    await client.send({"type": "subscribe", "channel": channel, **fields})
    error = await client.expect("error")
    assert (error["code"], error["channel"]) == (code, channel), error
    return error


# -- policies ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "allowed", "refused"),
    [
        ("people", ["anonymous", "plain"], []),  # allow_all
        ("sec.login", ["plain", "staff"], ["anonymous"]),  # require_login
        ("sec.staff", ["staff"], ["anonymous", "plain"]),  # staff_only
        ("sec.perm.explicit", ["viewer"], ["anonymous", "plain", "staff"]),  # require_permission (PERMISSIONS)
        ("sec.closed", [], ["anonymous", "plain", "staff", "viewer"]),  # deny_all
    ],
)
def test_each_policy_allows_and_refuses(
    stack: Stack, logins: dict[str, Login], channel: str, allowed: list[str], refused: list[str]
) -> None:
    async def scenario() -> None:
        for who in allowed + refused:
            headers = logins[who].headers if who in logins else None
            async with Client.connect(f"{stack.ws}/ws/pgevents/", headers=headers) as client:
                if who in allowed:
                    assert (await client.subscribe(channel))["channel"] == channel
                else:
                    await _refused(client, channel)

    run(scenario())


def test_permission_derived_from_the_watched_model(stack: Stack, db_url: str, logins: dict[str, Login]) -> None:
    """No PERMISSIONS entry: the channel is fed by ``people`` (model Person), so it needs
    ``people.view_person``; a channel fed by a table without a model is refused to all."""
    _watch(db_url, table="people", channel="sec.perm.people", events=["INSERT"])
    execute(db_url, "CREATE TABLE IF NOT EXISTS sec_nomodel (id serial PRIMARY KEY)")
    _watch(db_url, table="sec_nomodel", channel="sec.perm.nomodel")
    try:

        async def scenario() -> None:
            async with Client.connect(f"{stack.ws}/ws/pgevents/", headers=logins["viewer"].headers) as client:
                await client.subscribe("sec.perm.people")
                await _refused(client, "sec.perm.nomodel")
                execute(db_url, "INSERT INTO people (name) VALUES ('seen by a viewer')")
                (event,) = await client.events(1)
                assert event["row"]["name"] == "seen by a viewer"
            async with Client.connect(f"{stack.ws}/ws/pgevents/", headers=logins["plain"].headers) as client:
                await _refused(client, "sec.perm.people")

        run(scenario())
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
            installation.remove(cur, installation.build_spec(cur, table="people", channel="sec.perm.people"))
        execute(db_url, "DROP TABLE sec_nomodel")


# -- signed channel names ---------------------------------------------------------------
def test_signed_channels_need_a_token_for_that_channel_and_user(stack: Stack, logins: dict[str, Login]) -> None:
    plain = logins["plain"]
    for_plain = sign_channel("sec.signed.a", user=plain.user)
    for_anyone = sign_channel("sec.signed.a")
    other_channel = sign_channel("sec.signed.b")

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/", headers=plain.headers) as client:
            await _refused(client, "sec.signed.a")
            await _refused(client, "sec.signed.a", token=other_channel)
            await _refused(client, "sec.signed.a", token=for_plain[:-3] + "abc")
            await client.subscribe("sec.signed.a", token=for_plain)
            await client.subscribe("sec.signed.a", token=for_anyone)
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as anonymous:
            error = await _refused(anonymous, "sec.signed.a", token=for_plain)
            assert "another user" in error["message"]
            await anonymous.subscribe("sec.signed.a", token=for_anyone)
        async with Client.connect(f"{stack.ws}/ws/pgevents/sec.signed.a/?token={for_anyone}") as single:
            await single.expect("subscribed")
        # A token also works on channels that do not require one, and is checked there.
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            await client.subscribe("people", token=sign_channel("people"))
            await _refused(client, "people", token=other_channel)

    run(scenario())


def test_template_tag_renders_a_token_bound_to_the_request_user(stack: Stack, logins: dict[str, Login]) -> None:
    plain = logins["plain"]
    request = type("Request", (), {"user": plain.user})()
    token = Template('{% load pgevents_signing %}{% pgevents_signed "sec.signed.t" %}').render(
        Context({"request": request})
    )

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/", headers=plain.headers) as client:
            await client.subscribe("sec.signed.t", token=token)
        async with Client.connect(f"{stack.ws}/ws/pgevents/", headers=logins["staff"].headers) as client:
            await _refused(client, "sec.signed.t", token=token)

    run(scenario())


def test_a_signed_filter_is_enforced(stack: Stack, docs: str, db_url: str) -> None:
    token = sign_channel("sec.signed.docs", filter={"owner_id": 1})
    _watch(db_url, table="sec_docs", channel="sec.signed.docs")

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            await _refused(client, "sec.signed.docs", token=token, filter={"owner_id": 2})
            await client.subscribe("sec.signed.docs", token=token)  # the token's filter applies
            execute(db_url, "INSERT INTO sec_docs (owner_id, title) VALUES (2, 'not yours'), (1, 'yours')")
            (event,) = await client.events(1)
            assert event["row"]["title"] == "yours"
            execute(db_url, "INSERT INTO sec_docs (owner_id, title) VALUES (2, 'not yours'), (1, 'fence')")
            (fence,) = await client.events(1)
            assert fence["row"]["title"] == "fence"

    try:
        run(scenario())
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
            installation.remove(cur, installation.build_spec(cur, table="sec_docs", channel="sec.signed.docs"))


# -- row filters and leave --------------------------------------------------------------
def test_row_filter_sends_matching_rows_and_leave_when_a_row_stops_matching(
    stack: Stack, docs: str, db_url: str
) -> None:
    def kinds(messages: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
        return [(m["type"], m.get("op"), (m["row"] or m.get("old") or {}).get("title")) for m in messages]

    expected = [
        ("event", "INSERT", "a"),  # inserted open
        ("event", "UPDATE", "b"),  # closed -> open: enters the set, delivered as the update
        ("leave", None, "a"),  # open -> closed: leaves, with the old row
        ("event", "DELETE", "b"),  # an open row deleted
    ]

    async def scenario() -> None:
        async with (
            Client.connect(f"{stack.ws}/ws/pgevents/") as filtered,
            Client.connect(f"{stack.ws}/ws/pgevents/sec.docs/") as everything,
        ):
            start = (await filtered.subscribe("sec.docs", filter={"status": {"in": ["open"]}}))["last_event_id"]
            await everything.expect("subscribed")
            execute(
                db_url,
                "INSERT INTO sec_docs (status, title) VALUES ('open', 'a'), ('closed', 'b'), ('closed', 'c')",
            )
            execute(db_url, "UPDATE sec_docs SET status = 'open' WHERE title = 'b'")
            execute(db_url, "UPDATE sec_docs SET status = 'closed' WHERE title = 'a'")
            execute(db_url, "UPDATE sec_docs SET title = 'c2' WHERE title = 'c'")  # never matched
            execute(db_url, "DELETE FROM sec_docs WHERE title IN ('b', 'c2')")
            all_events = await everything.events(8)
            live = [await filtered.recv() for _ in expected]
            execute(db_url, "INSERT INTO sec_docs (status, title) VALUES ('open', 'fence')")
            fence = await filtered.recv()  # the next message: nothing else was sent before it
        assert kinds(live) == expected
        leave = live[2]
        assert leave["row"]["status"] == "open" and leave["channel"] == "sec.docs" and leave["table"] == "sec_docs"
        ids = [m["id"] for m in live]
        assert ids == sorted(ids) and set(ids) <= {e["id"] for e in all_events}

        # Replay applies the same filter: resuming from before gives the same messages.
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as resumed:
            await resumed.subscribe("sec.docs", filter={"status": {"in": ["open"]}}, last_event_id=start)
            replayed = [await resumed.recv() for _ in expected]
            assert await resumed.recv() == fence  # the fence ends the replay too
        assert replayed == live

    run(scenario())


def test_row_policy_limits_each_user_to_their_rows(
    stack: Stack, docs: str, db_url: str, logins: dict[str, Login]
) -> None:
    plain, staff = logins["plain"], logins["staff"]

    async def scenario() -> None:
        async with (
            Client.connect(f"{stack.ws}/ws/pgevents/", headers=plain.headers) as mine,
            Client.connect(f"{stack.ws}/ws/pgevents/", headers=staff.headers) as theirs,
        ):
            await mine.subscribe("sec.owned")
            # The client's own filter narrows further; it can never widen the policy.
            await theirs.subscribe("sec.owned", filter={"owner_id": {"in": [plain.user.pk, staff.user.pk]}})
            execute(
                db_url,
                "INSERT INTO sec_docs (owner_id, title) VALUES (%s, 'plain doc')",
                params=(plain.user.pk,),
            )
            execute(db_url, "INSERT INTO sec_docs (owner_id, title) VALUES (%s, 'staff doc')", params=(staff.user.pk,))
            execute(db_url, "UPDATE sec_docs SET owner_id = %s WHERE title = 'plain doc'", params=(staff.user.pk,))
            got_mine = [await mine.recv() for _ in range(2)]
            got_theirs = await theirs.events(2)
            execute(db_url, "INSERT INTO sec_docs (owner_id, title) VALUES (%s, 'fence')", params=(plain.user.pk,))
            (fence,) = await mine.events(1)
            assert fence["row"]["title"] == "fence"
        assert [(m["type"], m["row"]["title"]) for m in got_mine] == [("event", "plain doc"), ("leave", "plain doc")]
        assert [(e["op"], e["row"]["title"]) for e in got_theirs] == [("INSERT", "staff doc"), ("UPDATE", "plain doc")]

    run(scenario())


# -- column safety ----------------------------------------------------------------------
def test_sensitive_columns_never_leave_the_database_unless_included(stack: Stack, db_url: str) -> None:
    execute(
        db_url,
        "DROP TABLE IF EXISTS sec_accounts",
        "CREATE TABLE sec_accounts (id serial PRIMARY KEY, name text, password text, api_token text, note text)",
    )
    _watch(db_url, table="sec_accounts", channel="sec.accounts")
    _watch(db_url, table="sec_accounts", channel="sec.accounts.inc", include=["id", "name", "api_token"])
    secrets = {"password", "api_token"}
    try:

        async def scenario() -> None:
            async with (
                Client.connect(f"{stack.ws}/ws/pgevents/sec.accounts/") as default,
                Client.connect(f"{stack.ws}/ws/pgevents/sec.accounts.inc/") as included,
            ):
                start = (await default.expect("subscribed"))["last_event_id"]
                await included.expect("subscribed")
                execute(
                    db_url, "INSERT INTO sec_accounts (name, password, api_token, note) VALUES ('ann', 'pw', 'tk', 'n')"
                )
                execute(db_url, "UPDATE sec_accounts SET password = 'pw2', api_token = 'tk2', note = 'n2'")
                execute(db_url, "DELETE FROM sec_accounts")
                plain = await default.events(3)
                inc = await included.events(3)
            # Filtering on a hidden column would leak it bit by bit: refused.
            async with Client.connect(f"{stack.ws}/ws/pgevents/") as prober:
                await _refused(prober, "sec.accounts", code="unknown_column", filter={"password": "pw2"})
                await prober.subscribe("sec.accounts.inc", filter={"api_token": "tk"})  # included: allowed
            async with Client.connect(f"{stack.ws}/ws/pgevents/sec.accounts/?last_event_id={start}") as replay:
                await replay.expect("subscribed")
                replayed = await replay.events(3)
            for event in plain + replayed:
                for part in (event["row"], event["old"]):
                    assert part is None or not secrets & set(part), event
            assert set(plain[0]["row"]) == {"id", "name", "note"}
            assert plain[1]["old"]["note"] == "n" and plain[1]["row"]["note"] == "n2"
            assert set(inc[0]["row"]) == {"id", "name", "api_token"} and inc[0]["row"]["api_token"] == "tk"
            assert inc[1]["old"]["api_token"] == "tk" and inc[2]["old"]["api_token"] == "tk2"

        run(scenario())
    finally:
        execute(db_url, "DROP TABLE sec_accounts")


# -- sessions ---------------------------------------------------------------------------
def test_a_logged_out_session_stops_receiving(
    stack: Stack, db_url: str, logins: dict[str, Login], django_db_blocker: Any
) -> None:
    from django.contrib.auth.models import User

    with django_db_blocker.unblock():
        login = _login(User.objects.get(username="sec-plain"))

    async def scenario() -> None:
        async with (
            Client.connect(f"{stack.ws}/ws/pgevents/", headers=login.headers) as leaving,
            Client.connect(f"{stack.ws}/ws/pgevents/", headers=logins["plain"].headers) as staying,
        ):
            await leaving.subscribe("people")
            await staying.subscribe("people")
            execute(db_url, "INSERT INTO people (name) VALUES ('before logout')")
            assert (await leaving.events(1))[0]["row"]["name"] == "before logout"
            # What logout() does to the session (from outside the server, as another worker would).
            execute(db_url, "DELETE FROM django_session WHERE session_key = %s", params=(login.session_key,))
            error = await leaving.expect("error")
            assert error["code"] == "session_ended"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await leaving.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            execute(db_url, "INSERT INTO people (name) VALUES ('after logout')")
            names = [e["row"]["name"] for e in await staying.events(2)]
            assert names == ["before logout", "after logout"]  # another session is untouched

    run(scenario())


# -- Server-Sent Events get the same decisions ------------------------------------------
@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/pgevents/sse/sec.owned/", 403, "forbidden"),  # the row policy refuses anonymous users
        ("/pgevents/sse/sec.signed.a/", 403, "forbidden"),
        ("/pgevents/sse/sec.signed.a/?token=garbage", 403, "forbidden"),
        ("/pgevents/sse/nope/", 404, "unknown_channel"),
        ("/pgevents/sse/people/?filter=" + quote('{"nope": 1}'), 400, "unknown_column"),
        ("/pgevents/sse/people/?filter=" + quote('{"age": {"like": 1}}'), 400, "bad_request"),
        ("/pgevents/sse/people/?filter=notjson", 400, "bad_request"),
    ],
)
def test_sse_refusals(stack: Stack, path: str, status: int, code: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(stack.http + path, timeout=20)
    assert refused.value.code == status
    assert json.loads(refused.value.read())["code"] == code


def test_sse_stream_applies_the_filter(stack: Stack, docs: str, db_url: str) -> None:
    query = quote('{"status": "open"}')
    with urllib.request.urlopen(f"{stack.http}/pgevents/sse/sec.docs/?filter={query}", timeout=20) as stream:
        lines = iter(stream)
        assert next(lines).startswith(b"retry:")
        while b"subscribed" not in next(lines):
            pass
        execute(db_url, "INSERT INTO sec_docs (status, title) VALUES ('closed', 'sse-no'), ('open', 'sse-yes')")
        data = next(line for line in lines if line.startswith(b"data:"))
    assert json.loads(data[5:])["row"]["title"] == "sse-yes"


def test_a_logged_out_sse_stream_ends(
    stack: Stack, db_url: str, logins: dict[str, Login], django_db_blocker: Any
) -> None:
    from django.contrib.auth.models import User

    with django_db_blocker.unblock():
        login = _login(User.objects.get(username="sec-plain"))
    request = urllib.request.Request(f"{stack.http}/pgevents/sse/sec.login/", headers=login.headers)
    with urllib.request.urlopen(request, timeout=20) as stream:
        lines = iter(stream)
        while b"subscribed" not in next(lines):  # sec.login requires login: the cookie worked
            pass
        execute(db_url, "DELETE FROM django_session WHERE session_key = %s", params=(login.session_key,))
        rest = b"".join(lines)  # the server ends the stream
    assert b'"code":"session_ended"' in rest
