"""``{% load pgevents %}``: the markup the tags write, against the real test database."""

from __future__ import annotations

import html
import json
import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.template import Context, Template, TemplateSyntaxError
from django.test import override_settings
from django.urls import NoReverseMatch

pytestmark = pytest.mark.django_db


def render(text: str, **context: object) -> str:
    return Template("{% load pgevents %}" + text).render(Context(context))


def since(out: str) -> int:
    return int(out.split('data-pgevents-since="')[1].split('"')[0])


def test_region_tag_wraps_rows_with_everything_the_client_needs() -> None:
    out = render(
        '{% pgevents_region "people" tag="tbody" row="person-row" key="pk" debounce=80 %}'
        "{% for p in people %}<tr {% pgevents_row p sort=p %}></tr>{% endfor %}{% endpgevents_region %}"
        '{% pgevents_region "people" %}{% endpgevents_region %}',
        people=[1, 2],
    )
    assert out.startswith('<tbody id="pgevents-people" data-pgevents-channel="people"')
    assert 'data-pgevents-row-src="/people/row/{key}/" data-pgevents-key="pk"' in out
    assert 'data-pgevents-debounce="80"' in out
    assert since(out) >= 0
    assert '<tr data-pgevents-row="1" data-pgevents-sort="1"></tr>' in out and out.count("</tbody>") == 1
    assert '<div id="pgevents-people-2" data-pgevents-channel="people"' in out  # ids stay unique


def test_a_region_starts_where_a_resume_is_never_reset() -> None:
    """A region renders the id its page was read at. On a quiet channel whose events were all
    pruned that is the prune point, not 0 (which the log answers with ``reset``: the region
    would reload on every page view); on a channel with events, its newest."""
    with connection.cursor() as cursor:  # everything below is rolled back with the test's transaction
        cursor.execute("SELECT value + 1000 FROM pgevents_cursor WHERE name = 'assigned'")
        (assigned,) = cursor.fetchone()
        # 1000 more events were positioned since, and everything up to them was pruned.
        cursor.execute("UPDATE pgevents_cursor SET value = %s WHERE name IN ('assigned', 'pruned')", [assigned])
        cursor.execute("INSERT INTO pgevents_event (channel, id, op) VALUES ('t.busy', %s, 'INSERT')", [10**15])
    assert since(render('{% pgevents_attrs "t.quiet" %}')) == assigned
    assert since(render('{% pgevents_attrs "t.busy" %}')) == 10**15


def test_attributes_and_rows_escape_what_they_are_given() -> None:
    hostile = '"><script>alert(1)</script>'
    out = render("<ul {% pgevents_attrs channel resume=False src='/x/' %}>", channel=hostile)
    assert "<script>" not in out and html.escape(hostile, quote=True) in out
    assert 'data-pgevents-src="/x/"' in out and "since" not in out
    row = render("{% pgevents_row key author_id=a %}", key=hostile, a=hostile)
    assert "<script>" not in row
    fields = html.unescape(row.split('data-pgevents-fields="')[1].split('"')[0])
    assert json.loads(fields) == {"author_id": hostile}


def test_row_urls_by_name_for_int_and_str_converters() -> None:
    out = render('{% pgevents_attrs "books" row="book-row" resume=False %}')
    assert 'data-pgevents-row-src="/books/row/{key}/"' in out
    out = render('{% pgevents_attrs "books" row="pgevents:sse" resume=False %}')
    assert 'data-pgevents-row-src="/pgevents/sse/{key}/"' in out


@pytest.mark.parametrize(
    "text",
    [
        '{% pgevents_region "people" colour="red" %}{% endpgevents_region %}',
        '{% pgevents_region "people" tag="td onclick=x" %}{% endpgevents_region %}',
        '{% pgevents_attrs "people" colour="red" %}',
        '{% pgevents_attrs "people" row="/no/placeholder/" %}',
        '{% pgevents_attrs "people" insert="middle" %}',
    ],
)
def test_bad_options_are_refused(text: str) -> None:
    with pytest.raises((TemplateSyntaxError, ValueError)):
        render(text)


def test_script_and_status_tags() -> None:
    out = render('{% pgevents_script channels="demo" transport="sse" %}{% pgevents_status %}')
    assert '<script type="module" src="/static/pgevents/pgevents.js"' in out
    assert 'data-pgevents-url="/ws/pgevents/" data-pgevents-sse-url="/pgevents/sse/"' in out
    assert 'data-pgevents-transport="sse" data-pgevents-channels="demo"' in out
    assert 'data-pgevents-status data-state="connecting"' in out


def test_row_urls_given_as_paths_and_prepending_regions() -> None:
    out = render('{% pgevents_attrs "people" row="/p/{key}/" insert="prepend" resume=False %}')
    assert 'data-pgevents-row-src="/p/{key}/"' in out and 'data-pgevents-insert="prepend"' in out
    with pytest.raises(NoReverseMatch, match="does not take exactly one argument"):
        render('{% pgevents_attrs "people" row="admin:index" resume=False %}')


@pytest.mark.parametrize(
    "text",
    [
        '{% pgevents_region "nosuchchannel" %}{% endpgevents_region %}',
        '{% pgevents_attrs "nosuchchannel" resume=False %}',
        '{% pgevents_script channels="people,nosuchchannel" %}',
    ],
)
def test_a_channel_no_client_may_subscribe_to_is_an_error_with_debug(text: str) -> None:
    with override_settings(DEBUG=True), pytest.raises(ImproperlyConfigured) as error:
        render(text)
    assert "channel 'nosuchchannel' is not in PGEVENTS['CHANNELS']" in str(error.value)
    assert "this part of the page would never update" in str(error.value)


def test_without_debug_it_is_logged_once_and_rendered(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pgevents.templatetags.pgevents"):
        for _ in range(3):
            out = render('{% pgevents_attrs "t" resume=False %}')  # the test settings admit "t.*"
    assert 'data-pgevents-channel="t"' in out
    (record,) = [r for r in caplog.records if "'t'" in r.getMessage()]
    assert "'t.*' admits 't.something', not 't' itself." in record.getMessage()


def test_row_url_errors_say_what_is_wrong() -> None:
    with pytest.raises(NoReverseMatch, match=r"row='order-row' names no URL pattern"):
        render('{% pgevents_attrs "people" row="order-row" resume=False %}')
    with pytest.raises(NoReverseMatch, match=r"row='pgevents:order-row' names no URL pattern .* namespace 'pgevents'"):
        render('{% pgevents_attrs "people" row="pgevents:order-row" resume=False %}')
    with pytest.raises(NoReverseMatch, match=r"the URL named 'people' does not take exactly one argument"):
        render('{% pgevents_attrs "people" row="people" resume=False %}')


def test_the_script_tag_says_when_the_client_cannot_load() -> None:
    out = render("{% pgevents_script %}")
    handler = html.unescape(out.split('onerror="')[1].split('"')[0])
    assert "pgevents.js did not load" in handler and "dataset.state = 'failed'" in handler
