"""Rendering regions in the server process, on the real test database: the project's views
through its middleware (anonymously for shared regions; with the asker's cookies for the
coalesced ``fragments/`` endpoint), and the template tags' shared-region descriptor."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signals
from django.db import close_old_connections
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client

from demo_project.people.models import Person
from pgevents.delivery import fragments
from pgevents.delivery.render import render_path
from pgevents.signing import verify_region

pytestmark = pytest.mark.django_db


@pytest.fixture
def keep_the_test_connection() -> Iterator[None]:
    """A render ends like a request (``request_finished`` closes the thread's connections); in
    the server that is its own thread's, here it is the test's transaction: keep it open, as
    Django's test client does."""
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_finished.connect(close_old_connections)


@pytest.mark.usefixtures("keep_the_test_connection")
def test_a_shared_render_goes_through_the_project_anonymously() -> None:
    person = Person.objects.create(name="Rendered", age=3)
    row = render_path(f"/people/row/{person.pk}/")
    assert row.status == 200 and "Rendered" in row.html
    assert render_path("/people/row/987654321/").status == 404
    assert render_path("/people/count/").html.strip() == str(Person.objects.count())
    admin = render_path("/admin/")
    assert admin.status == 302  # a view that needs a login is not rendered for everyone
    assert render_path("/pgevents/sse/people/").html == ""  # a stream is not a fragment


@pytest.mark.usefixtures("keep_the_test_connection")
def test_fragments_answer_several_urls_in_one_request_as_the_asking_user(admin_client: Client) -> None:
    person = Person.objects.create(name="Fragment", age=4)
    url = f"/pgevents/fragments/?u=/people/row/{person.pk}/&u=/people/row/987654321/&u=/admin/&u=/admin/"
    body = admin_client.get(url, HTTP_X_REQUESTED_WITH="pgevents").json()
    row, gone, admin = body["fragments"]  # asked twice, answered once
    assert row["status"] == 200 and "Fragment" in row["html"]
    assert gone == {"url": "/people/row/987654321/", "status": 404, "html": ""}
    assert admin["status"] == 200 and "Site administration" in admin["html"]  # with the asker's session
    anonymous = Client().get("/pgevents/fragments/?u=/admin/").json()["fragments"][0]
    assert anonymous["status"] == 302


def test_fragments_are_part_of_the_asking_request_and_keep_its_connection(client: Client) -> None:
    """Fragments end with the request that asked for them: they neither close its database
    connection one by one nor cut its transaction (here the test's own; with ATOMIC_REQUESTS,
    the request's). The test's connection is usable after three of them."""
    person = Person.objects.create(name="Kept", age=8)
    url = f"/pgevents/fragments/?u=/people/row/{person.pk}/&u=/people/count/&u=/people/newest/"
    found = client.get(url).json()["fragments"]
    assert [f["status"] for f in found] == [200, 200, 200] and "Kept" in found[2]["html"]
    assert Person.objects.filter(pk=person.pk).exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "give 1 to"),
        ("u=//evil.example/", "not a path of this site"),
        ("u=https://evil.example/", "not a path of this site"),
        ("u=/pgevents/fragments/", "cannot be asked for themselves"),
        ("&".join(f"u=/p/{i}/" for i in range(fragments.MAX_URLS + 1)), "give 1 to"),
    ],
)
def test_fragments_refuse_what_is_not_a_path_of_this_site(client: Client, query: str, message: str) -> None:
    response = client.get(f"/pgevents/fragments/?{query}")
    assert response.status_code == 400 and message in response.json()["message"]


def test_fragments_answer_get_only(client: Client) -> None:
    assert client.post("/pgevents/fragments/?u=/people/count/").status_code in (400, 403)


def render(text: str, **context: Any) -> str:
    return Template("{% load pgevents %}" + text).render(Context(context))


def test_a_shared_region_carries_its_signed_descriptor() -> None:
    out = render(
        '{% pgevents_region "people" tag="tbody" row="person-row" key="pk" src="people-rows" shared=True %}{% endpgevents_region %}'
    )
    token = html.unescape(out.split('data-pgevents-shared="')[1].split('"')[0])
    spec = verify_region(token, "people")
    assert (spec.row, spec.key, spec.src) == ("/people/row/{key}/", "pk", "/people/rows/")
    assert f'data-pgevents-region="{spec.id}"' in out
    assert "data-pgevents-shared" not in render('{% pgevents_attrs "people" src="people-count" resume=False %}')
    attrs = render('{% pgevents_attrs "people" src="people-count" shared=True resume=False %}')
    assert (
        verify_region(html.unescape(attrs.split('data-pgevents-shared="')[1].split('"')[0]), "people").src
        == "/people/count/"
    )


def test_a_shared_region_needs_something_to_render() -> None:
    with pytest.raises(TemplateSyntaxError, match=r"a shared region needs row= .* or src="):
        render('{% pgevents_region "people" shared=True %}{% endpgevents_region %}')


def test_the_script_tag_names_the_fragments_endpoint_and_its_jitter() -> None:
    out = render("{% pgevents_script jitter=250 %}")
    assert 'data-pgevents-fragments-url="/pgevents/fragments/" data-pgevents-jitter="250"' in out
    assert 'data-pgevents-jitter="100"' in render("{% pgevents_script %}")


def test_the_htmx_tag_writes_the_sse_extensions_attributes() -> None:
    out = html.unescape(render('<tbody {% pgevents_htmx "people" src="people-rows" name="rows" %}>'))
    assert 'hx-ext="sse"' in out and 'sse-swap="rows"' in out
    connect = out.split('sse-connect="')[1].split('"')[0]
    assert connect.startswith("/pgevents/html/people/?regions=") and "&last_event_id=" in connect
    from urllib.parse import parse_qs, urlsplit

    spec = verify_region(parse_qs(urlsplit(connect).query)["regions"][0], "people")
    assert (spec.src, spec.name, spec.row) == ("/people/rows/", "rows", None)
    assert 'sse-swap="people"' in render('{% pgevents_htmx "people" src="/people/rows/" resume=False %}')


@pytest.mark.parametrize(
    ("query", "message"),
    [("", "needs regions="), ("regions=forged", "shared region: region token is not valid")],
)
def test_the_html_stream_needs_a_valid_region(client: Client, query: str, message: str) -> None:
    response = client.get(f"/pgevents/html/people/?{query}")
    assert response.status_code == 400 and message in response.json()["message"]
