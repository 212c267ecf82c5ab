"""``pgevents.testing`` as a project's own tests use it: in pytest-django tests and in Django
``TestCase`` classes, against the real database, with no listener or Redis involved."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.template import Context, Template
from django.test import Client as DjangoClient
from django.test import TestCase

from demo_project.library.models import Author, Book
from demo_project.people.models import Person
from pgevents.setup import installation
from pgevents.testing import RegionUpdate, assert_region_updates, capture


@pytest.mark.django_db
def test_capture_and_region_updates_in_a_pytest_test(client: DjangoClient) -> None:
    page = client.get("/")
    with capture("people") as events:
        person = Person.objects.create(name="Ada", age=36)
        Author.objects.create(name="not on this channel")
    assert [(e["op"], e["table"], e["row"]["name"]) for e in events] == [("INSERT", "people", "Ada")]
    assert events[0]["id"] is None and events[0]["type"] == "event" and events[0]["at"].endswith("Z")

    # The people page's regions are shared: their HTML comes with the event (``pushed``).
    count, row = assert_region_updates(page, events[0], client)
    assert (count.region, count.action, count.url, count.pushed) == ("people-count", "reload", "/people/count/", True)
    assert count.html == str(Person.objects.count())  # the region re-rendered from its source
    assert (row.region, row.action, row.key, row.url, row.pushed) == (
        "people-rows",
        "insert",
        str(person.pk),
        f"/people/row/{person.pk}/",
        True,
    )
    assert '<td class="name">Ada</td>' in row.html

    page = client.get("/")
    with capture("people") as events:
        Person.objects.filter(pk=person.pk).update(age=37)
    (updated,) = events
    _, replaced = assert_region_updates(page, updated, client)
    assert replaced.action == "replace" and '<td class="age">37</td>' in replaced.html
    with capture("people") as events:
        Person.objects.filter(pk=person.pk).delete()
    (deleted,) = events
    assert assert_region_updates(page, deleted, client)[1] == RegionUpdate(
        "people-rows", "remove", str(person.pk), None, "", pushed=True
    )


@pytest.mark.django_db
def test_per_user_regions_are_fetched_by_the_tab(client: DjangoClient) -> None:
    """The same rows on the per-user page: nothing is pushed, each region's URL is fetched."""
    page = client.get("/people/per-user/")
    with capture("people") as events:
        person = Person.objects.create(name="Per user", age=9)
    updates = assert_region_updates(page, events[0], client)
    assert [(u.region, u.action, u.url, u.pushed) for u in updates] == [
        ("people-count", "reload", "/people/count/", False),
        ("people-newest", "reload", "/people/newest/", False),
        ("people-rows", "insert", f"/people/row/{person.pk}/", False),
    ]
    assert updates[1].html.strip() == "Per user"
    page = client.get("/people/per-user/")
    with capture("people") as events:
        Person.objects.filter(pk=person.pk).delete()
    assert assert_region_updates(page, events[0], client)[2] == RegionUpdate(
        "people-rows", "remove", str(person.pk), None, ""
    )


@pytest.mark.django_db
def test_a_shared_region_the_server_cannot_render_is_fetched_by_the_tab(admin_client: DjangoClient) -> None:
    """The admin index needs a login: rendered anonymously it redirects, so the server pushes
    nothing and the tab fetches it as its own (here: logged-in) user."""
    markup = Template(
        '{% load pgevents %}{% pgevents_region "people" id="adm" src="/admin/" shared=True %}{% endpgevents_region %}'
        '{% pgevents_region "people" id="rows" row="person-row" key="pk" shared=True %}{% endpgevents_region %}'
    ).render(Context({}))
    with capture("people") as events:
        gone = Person.objects.create(name="Withdrawn", age=1)
        Person.objects.filter(pk=gone.pk).delete()
        kept = Person.objects.create(name="Pushed", age=2)
    admin, row = assert_region_updates(markup, events[2], admin_client)
    assert (admin.action, admin.pushed) == ("reload", False) and "Site administration" in admin.html
    assert (row.action, row.key, row.pushed) == ("insert", str(kept.pk), True) and "Pushed" in row.html
    # The first row is gone by now: its render answers 404 and the page never showed it.
    (admin_only,) = assert_region_updates(markup, events[0], admin_client)
    assert admin_only.region == "adm"

    tampered = markup.replace('data-pgevents-shared="', 'data-pgevents-shared="x')
    with pytest.raises(AssertionError, match="signed data-pgevents-shared does not verify"):
        assert_region_updates(tampered, events[1], admin_client)


@pytest.mark.django_db
def test_a_renamed_author_re_renders_only_that_authors_books(client: DjangoClient) -> None:
    author = Author.objects.create(name="Mary Shelley")
    books = [Book.objects.create(title=t, author=author) for t in ("Frankenstein", "The Last Man")]
    Book.objects.create(title="Kindred 2", author=Author.objects.create(name="Someone Else"))
    page = client.get("/books/")
    with capture("books") as events:
        Author.objects.filter(pk=author.pk).update(name="Mary Wollstonecraft Shelley")
    (event,) = events  # ids only: {"author_id": …}, from the authors table's watch
    assert event["row"] == {"author_id": author.pk} and event["table"] == "books"
    updates = assert_region_updates(page, event, client)
    assert sorted(u.key for u in updates) == sorted(str(b.pk) for b in books)
    assert all(u.action == "replace" and "Mary Wollstonecraft Shelley" in u.html for u in updates)


@pytest.mark.django_db
def test_what_the_helpers_refuse_to_pass_silently(client: DjangoClient) -> None:
    with (
        pytest.raises(LookupError, match=r"capture\('orders'\): no watch publishes on channel 'orders'"),
        capture("orders"),
    ):
        pass
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE quiet (id serial PRIMARY KEY, name text)")
        installation.install(cursor, installation.build_spec(cursor, table="quiet", channel="t.quiet", durable=False))
    with pytest.raises(ValueError, match="are not durable"), capture("t.quiet"):
        pass

    page = client.get("/books/")
    with capture("people") as events:
        Person.objects.create(name="Nobody shows people here")
    with pytest.raises(
        AssertionError, match=r"no region following channel 'people' \(regions follow: authors, books\)"
    ):
        assert_region_updates(page, events[0], client)

    with capture("people") as events:
        Person.objects.create(name="someone")
    with pytest.raises(AssertionError, match=r"reloads from the page itself: pass the page's url="):
        lone = '<strong id="n" data-pgevents-channel="people"></strong>'  # reloads from its page
        assert_region_updates(lone, events[0], client)  # HTML alone: whose page?

    region = (
        '<tbody id="x" data-pgevents-channel="people" data-pgevents-row-src="/console/?k={key}" data-pgevents-key="pk">'
    )
    with pytest.raises(AssertionError, match=r"renders a root element with data-pgevents-row=None, not '\d+': put"):
        assert_region_updates(region + "</tbody>", events[0], client)  # a row view without {% pgevents_row %}

    page = client.get("/books/")
    with capture("books") as events:
        book = Book.objects.create(title="Written and withdrawn", author=Author.objects.create(name="A. Nonymous"))
        book.delete()
    (_inserted, deleted) = events
    with pytest.raises(AssertionError, match="no region following 'books' would change for this DELETE"):
        assert_region_updates(page, deleted, client)  # a row the page never showed: nothing to remove


class CaptureInATestCase(TestCase):
    def test_events_of_a_block_inside_the_test_transaction(self) -> None:
        page = self.client.get("/")
        with capture("people", "authors") as events:
            Person.objects.create(name="Grace", age=85)
            Author.objects.create(name="Grace Hopper")
        self.assertEqual([(e["channel"], e["op"]) for e in events], [("people", "INSERT"), ("authors", "INSERT")])
        updates: list[Any] = assert_region_updates(page, events[0], self.client)
        self.assertEqual([u.action for u in updates], ["reload", "insert"])
        self.assertIn("Grace", updates[1].html)

    def test_nothing_is_captured_outside_the_block(self) -> None:
        Person.objects.create(name="before")
        with capture("people") as events:
            pass
        Person.objects.create(name="after")
        self.assertEqual(events, [])
