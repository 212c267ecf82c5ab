"""The admin makes a table live: Django's test client against real PostgreSQL, and a real
WebSocket client on the shared daphne + runlisten stack seeing the events."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import reverse

from pgevents.core.sql import TriggerSpec
from pgevents.models import Watch
from tests.support import Client, Stack, execute, run

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = "live_orders"
CHANNEL = "t.orders"  # allowed by the test settings' "t.*"


@pytest.fixture
def orders_table(db_url: str) -> Iterator[str]:
    """A table no Django model maps, created by another client."""
    execute(
        db_url,
        f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, status text, note text, amount int, api_token text)",
    )
    yield TABLE
    execute(db_url, f"DROP TABLE IF EXISTS {TABLE}")


def triggers(pg: psycopg.Connection, table: str = TABLE) -> list[tuple[str, str]]:
    rows = pg.execute(
        "SELECT t.tgname, obj_description(t.oid, 'pg_trigger') FROM pg_trigger t"
        " WHERE t.tgrelid = to_regclass(%s) AND NOT t.tgisinternal ORDER BY 1",
        (table,),
    ).fetchall()
    return [(name, comment) for name, comment in rows]


def form(**overrides: Any) -> dict[str, Any]:
    data = {
        "relation": json.dumps(["public", TABLE]),
        "channel": CHANNEL,
        "events": ["INSERT", "UPDATE"],
        "include": "",
        "exclude": "note",
        "update_columns": "status",
        "durable": "on",
        "notify": "on",
        "enabled": "on",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def statuses(client: DjangoClient) -> dict[str, str]:
    page = client.get(reverse("admin:pgevents_watch_changelist")).content.decode()
    rows = re.findall(
        r'<th class="field-__str__">.*?>([^<]+)</a></th>.*?<td class="field-trigger_state">(\w+)</td>', page
    )
    return dict(rows)


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a Django call off the event loop (the ORM is sync-only), closing its connection."""

    def call() -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return asyncio.to_thread(call)


def test_admin_lists_every_table_of_the_database(admin_client: DjangoClient, orders_table: str) -> None:
    page = admin_client.get(reverse("admin:pgevents_watch_add")).content.decode()
    assert "public.live_orders" in page  # no model maps it
    assert "public.auth_user (auth.User)" in page
    assert "pgevents_event" not in page


def test_create_edit_drift_and_delete_from_the_admin(
    admin_client: DjangoClient, stack: Stack, pg: psycopg.Connection, orders_table: str
) -> None:
    # create: the trigger appears in pg_trigger, in the same request
    response = admin_client.post(reverse("admin:pgevents_watch_add"), form())
    assert response.status_code == 302, response.content.decode()
    watch = Watch.objects.get(table=TABLE)
    installed = triggers(pg)
    assert [name for name, _ in installed] == [f"{watch.stub().base_name}_r", f"{watch.stub().base_name}_u"]
    assert statuses(admin_client) == {str(watch): "installed"}

    async def events_flow() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/{CHANNEL}/") as client:
            await client.expect("subscribed")
            pg.execute(f"INSERT INTO {TABLE} (status, note, amount, api_token) VALUES ('new', 'n', 5, 'tok')")
            pg.execute(f"UPDATE {TABLE} SET amount = 6")  # status unchanged: no event
            pg.execute(f"UPDATE {TABLE} SET status = 'paid'")
            inserted, updated = await client.events(2)
            assert inserted["op"] == "INSERT" and inserted["table"] == TABLE
            assert set(inserted["row"]) == {"id", "status", "amount"}  # note excluded, api_token sensitive
            assert updated["op"] == "UPDATE" and updated["row"]["status"] == "paid"
            assert updated["old"]["status"] == "new" and updated["row"]["amount"] == 6

            # the test-event action goes through the same path as the triggers
            changelist = reverse("admin:pgevents_watch_changelist")
            await in_thread(
                admin_client.post, changelist, {"action": "send_test_event", "_selected_action": [watch.pk]}
            )
            (test_event,) = await client.events(1)
            assert test_event["op"] is None and test_event["row"] is None and test_event["table"] == TABLE
            assert test_event["id"] > updated["id"]

            # edit: DELETE added, the note column now sent; the triggers follow
            response = await in_thread(
                admin_client.post,
                reverse("admin:pgevents_watch_change", args=[watch.pk]),
                form(events=["INSERT", "UPDATE", "DELETE"], exclude=""),
            )
            assert response.status_code == 302
            pg.execute(f"DELETE FROM {TABLE}")
            (deleted,) = await client.events(1)
            assert deleted["op"] == "DELETE" and set(deleted["old"]) == {"id", "status", "note", "amount"}

    run(events_flow())
    edited = triggers(pg)
    assert edited != installed and all(comment == edited[0][1] for _, comment in edited)
    assert statuses(admin_client) == {str(watch): "installed"}

    # drift made by hand is reported
    pg.execute(f'DROP TRIGGER "{watch.stub().base_name}_u" ON {TABLE}')
    assert statuses(admin_client) == {str(watch): "outdated"}
    pg.execute(f'DROP TRIGGER "{watch.stub().base_name}_r" ON {TABLE}')
    pg.execute(f'DROP TRIGGER "{watch.stub().base_name}_d" ON {TABLE}')
    assert triggers(pg) == []
    assert statuses(admin_client) == {str(watch): "missing"}

    # the install action repairs it
    admin_client.post(
        reverse("admin:pgevents_watch_changelist"), {"action": "install_triggers", "_selected_action": [watch.pk]}
    )
    assert statuses(admin_client) == {str(watch): "installed"}

    # delete: the row and its triggers go together
    response = admin_client.post(reverse("admin:pgevents_watch_delete", args=[watch.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Watch.objects.exists()
    assert triggers(pg) == []


def test_remove_action_keeps_the_watch_disabled(
    admin_client: DjangoClient, pg: psycopg.Connection, orders_table: str
) -> None:
    admin_client.post(reverse("admin:pgevents_watch_add"), form())
    watch = Watch.objects.get()
    changelist = reverse("admin:pgevents_watch_changelist")
    admin_client.post(changelist, {"action": "remove_triggers", "_selected_action": [watch.pk]})
    watch.refresh_from_db()
    assert watch.enabled is False and triggers(pg) == []
    assert statuses(admin_client) == {str(watch): "missing"}
    watch.delete()


def test_bulk_delete_removes_every_trigger(
    admin_client: DjangoClient, pg: psycopg.Connection, orders_table: str
) -> None:
    admin_client.post(reverse("admin:pgevents_watch_add"), form())
    admin_client.post(reverse("admin:pgevents_watch_add"), form(channel="t.other"))
    assert len(triggers(pg)) == 4
    pks = list(Watch.objects.values_list("pk", flat=True))
    admin_client.post(
        reverse("admin:pgevents_watch_changelist"),
        {"action": "delete_selected", "_selected_action": pks, "post": "yes"},
    )
    assert not Watch.objects.exists() and triggers(pg) == []


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"exclude": "no_such_column"}, "__all__", "has no column(s) no_such_column"),
        ({"include": "status", "exclude": "status"}, "__all__", "both included and excluded"),
        ({"channel": "é" * 32}, "channel", "longer than 63 bytes"),  # 32 characters, 64 bytes
        ({"relation": json.dumps(["public", "no_such_table"])}, "relation", "Select a valid choice"),
        ({"events": []}, "events", "required"),
    ],
)
def test_invalid_watches_are_refused_and_nothing_is_installed(
    admin_client: DjangoClient,
    pg: psycopg.Connection,
    orders_table: str,
    overrides: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = admin_client.post(reverse("admin:pgevents_watch_add"), form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors
    assert not Watch.objects.exists() and triggers(pg) == []


def test_a_second_watch_on_the_same_table_and_channel_is_refused(admin_client: DjangoClient, orders_table: str) -> None:
    admin_client.post(reverse("admin:pgevents_watch_add"), form())
    response = admin_client.post(reverse("admin:pgevents_watch_add"), form())
    assert "already watched" in response.content.decode()
    assert Watch.objects.count() == 1
    Watch.objects.get().delete()


def test_hostile_names_are_quoted(admin_client: DjangoClient, db_url: str, pg: psycopg.Connection) -> None:
    table = 'we"ird; DROP TABLE people; --'
    execute(db_url, 'CREATE TABLE "we""ird; DROP TABLE people; --" (id int, "Mixed Col" text)')
    try:
        response = admin_client.post(
            reverse("admin:pgevents_watch_add"),
            form(relation=json.dumps(["public", table]), channel="q'uote", exclude="Mixed Col", update_columns=""),
        )
        assert response.status_code == 302, response.content.decode()
        assert len(triggers(pg, '"we""ird; DROP TABLE people; --"')) == 2
        assert pg.execute("SELECT to_regclass('people')").fetchone() == ("people",)
        Watch.objects.get().delete()
        assert triggers(pg, '"we""ird; DROP TABLE people; --"') == []
    finally:
        execute(db_url, 'DROP TABLE IF EXISTS "we""ird; DROP TABLE people; --"')


def test_permissions(client: DjangoClient, django_user_model: Any, orders_table: str) -> None:
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:pgevents_watch_changelist")).status_code == 403
    assert client.post(reverse("admin:pgevents_watch_add"), form()).status_code == 403
    assert client.get(reverse("admin:pgevents_watch_status")).status_code == 403
    assert not Watch.objects.exists()

    staff.user_permissions.add(Permission.objects.get(codename="view_watch"))
    page = client.get(reverse("admin:pgevents_watch_changelist")).content.decode()
    assert "install_triggers" not in page and "send_test_event" not in page  # actions need change
    assert client.get(reverse("admin:pgevents_watch_status")).status_code == 200
    assert client.post(reverse("admin:pgevents_watch_add"), form()).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="add_watch"))
    assert client.post(reverse("admin:pgevents_watch_add"), form()).status_code == 302
    page = client.get(reverse("admin:pgevents_watch_changelist")).content.decode()
    assert "install_triggers" not in page
    Watch.objects.get().delete()


def test_test_event_of_a_non_durable_watch_and_unlisted_channel_warning(
    admin_client: DjangoClient, stack: Stack, orders_table: str
) -> None:
    response = admin_client.post(reverse("admin:pgevents_watch_add"), form(channel="unlisted", durable=""), follow=True)
    assert "not in PGEVENTS[&#x27;CHANNELS&#x27;]" in response.content.decode()
    admin_client.post(reverse("admin:pgevents_watch_add"), form(channel="t.fleeting", durable=""))
    watch = Watch.objects.get(channel="t.fleeting")
    assert watch.durable is False

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/t.fleeting/") as client:
            await client.expect("subscribed")
            await in_thread(
                admin_client.post,
                reverse("admin:pgevents_watch_changelist"),
                {"action": "send_test_event", "_selected_action": [watch.pk]},
            )
            (event,) = await client.events(1)
            assert event["id"] is None and event["op"] is None and event["table"] == TABLE

    run(scenario())
    Watch.objects.all().delete()


def test_the_admin_says_watches_and_lists_migration_watches_read_only(
    admin_client: DjangoClient, pg: psycopg.Connection
) -> None:
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert ">Watches</a>" in index and "Watchs" not in index
    page = admin_client.get(reverse("admin:pgevents_watch_changelist")).content.decode()
    table = page.split('<table id="pgevents-migration-watches">')[1].split("</table>")[0]
    rows = re.findall(
        r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", table
    )
    assert ("public.people", "people", "INSERT UPDATE DELETE TRUNCATE", "installed", "people.0001_people") in rows
    assert {row[1] for row in rows} == {"people", "authors", "books"}
    # Drift shows here too, and a channel no client may subscribe to is pointed out.
    name = TriggerSpec(table="people", channel="people").base_name
    pg.execute(f'DROP TRIGGER "{name}_r" ON people')
    try:
        with override_settings(PGEVENTS={"CHANNELS": ["authors", "books"]}):
            page = admin_client.get(reverse("admin:pgevents_watch_changelist")).content.decode()
        row = page.split("<td>public.people</td>")[1].split("</tr>")[0]
        assert 'not in PGEVENTS["CHANNELS"]' in row and "<td>outdated</td>" in row
    finally:
        call_command("pgevents_sync", stdout=StringIO())
