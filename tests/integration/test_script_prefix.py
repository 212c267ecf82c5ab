"""A project mounted under a script prefix (``/app/``): daphne's ``--root-path``, Django's
``FORCE_SCRIPT_NAME``, a WSGI server's ``SCRIPT_NAME``. The tags reverse URLs under it, and
shared regions and coalesced fragments render those URLs as requests under it would: the
prefix is the script name, the rest the URLconf's path, and the view's own ``reverse()``
includes the prefix."""

from __future__ import annotations

import html
import json
import re
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
from django.core import signals
from django.db import close_old_connections
from django.test import Client as DjangoClient
from django.test import override_settings

from demo_project.people.models import Person
from pgevents.delivery.render import render_path, split
from pgevents.signing import verify_region
from tests.support import Client, Stack, run


def test_split_takes_the_prefix_as_the_script_name() -> None:
    assert split("/app/people/row/1/", "/app/") == ("/app", "/people/row/1/")
    assert split("/app", "/app/") == ("/app", "/")
    assert split("/application/x/", "/app/") == ("", "/application/x/")  # not under the prefix
    assert split("/people/", "/") == ("", "/people/")


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Iterator[None]:
    """A render ends like a request; here its connection is the test's transaction: keep it."""
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.parametrize("force", [None, "/app/"])
def test_renders_under_a_script_name_or_force_script_name(force: str | None) -> None:
    person = Person.objects.create(name="Prefixed", age=5)
    with override_settings(FORCE_SCRIPT_NAME=force):
        row = render_path(f"/app/people/row/{person.pk}/", prefix="/app/")
        assert row.status == 200 and "Prefixed" in row.html
        page = render_path("/app/", prefix="/app/")
        assert page.status == 200 and 'href="/app/books/"' in page.html  # the view reversed under it
        assert 'data-pgevents-url="/app/ws/pgevents/"' in page.html
        assert 'data-pgevents-fragments-url="/app/pgevents/fragments/"' in page.html
        token = html.unescape(re.findall(r'data-pgevents-shared="([^"]+)"', page.html)[0])
        assert verify_region(token, "people").prefix == "/app/"
    assert render_path(f"/app/people/row/{person.pk}/").status == 404  # the prefix is not a path


@pytest.mark.django_db
def test_fragments_render_under_the_asking_requests_script_name(client: DjangoClient) -> None:
    person = Person.objects.create(name="Fragment under /app", age=6)
    url = f"/pgevents/fragments/?u=/app/people/row/{person.pk}/&u=/app/people/count/"
    row, count = client.get(url, SCRIPT_NAME="/app").json()["fragments"]
    assert row["status"] == 200 and "Fragment under /app" in row["html"]
    assert count == {"url": "/app/people/count/", "status": 200, "html": str(Person.objects.count())}


def test_shared_regions_are_pushed_under_daphnes_root_path(stack: Stack, db_url: str, pg: psycopg.Connection) -> None:
    """A second daphne with ``--root-path /app`` behind the session's listener: the page's
    shared regions, subscribed on ``/app/ws/pgevents/``, get an INSERT's HTML pushed."""
    shared = {"PGEVENTS_REDIS_PREFIX": stack.env["PGEVENTS_REDIS_PREFIX"]}
    with Stack(db_url, listener=False, server="daphne-root-path", env=shared) as app:
        with urllib.request.urlopen(f"{app.http}/app/", timeout=20) as response:
            page = response.read().decode()
        assert 'data-pgevents-url="/app/ws/pgevents/"' in page
        tokens = [html.unescape(t) for t in re.findall(r'data-pgevents-shared="([^"]+)"', page)]
        count_id, rows_id = re.findall(r'data-pgevents-region="([^"]+)"', page)

        async def scenario() -> int:
            async with Client.connect(f"{app.ws}/app/ws/pgevents/", origin=app.http) as client:
                await client.subscribe("people", regions=tokens)
                row = pg.execute(
                    "INSERT INTO people (name, age) VALUES ('Pushed under /app', 7) RETURNING pk"
                ).fetchone()
                assert row is not None
                (event,) = await client.events(1)
                assert event["html"][rows_id]["op"] == "row" and event["html"][rows_id]["key"] == str(row[0])
                assert "Pushed under /app" in event["html"][rows_id]["html"]
                assert event["html"][count_id]["op"] == "region"
                return int(row[0])

        pk = run(scenario())
        fragments = f"{app.http}/app/pgevents/fragments/?u=/app/people/row/{pk}/"
        with urllib.request.urlopen(fragments, timeout=20) as response:
            (row,) = json.loads(response.read())["fragments"]
        assert row["status"] == 200 and "Pushed under /app" in row["html"]
