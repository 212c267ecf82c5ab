"""``Watch`` outside the admin: its triggers follow the row in the row's transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from pgevents.models import Watch
from pgevents.setup import installation

pytestmark = pytest.mark.django_db


@pytest.fixture
def tables() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE tickets (id int, state text)")
        cursor.execute("CREATE TABLE tasks (id int)")
    yield


def names(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal ORDER BY 1", [table]
        )
        return [row[0] for row in cursor.fetchall()]


def status(watch: Watch) -> str:
    with connection.cursor() as cursor:
        return watch.trigger_state(cursor)


def test_changing_table_or_channel_moves_the_triggers(tables: None) -> None:
    watch = Watch.objects.create(table="tickets", channel="demo", events=["INSERT"])
    first = names("tickets")
    assert first == [f"{watch.stub().base_name}_r"]
    watch.channel = "chat"
    watch.save()
    assert names("tickets") == [f"{watch.stub().base_name}_r"] != first
    watch.table = "tasks"
    watch.save()
    assert names("tickets") == [] and names("tasks") == [f"{watch.stub().base_name}_r"]


def test_a_watch_that_cannot_be_installed_is_not_saved(tables: None) -> None:
    with pytest.raises(installation.WatchError, match="no column"):
        Watch(table="tickets", channel="demo", exclude=["nope"]).save()
    with pytest.raises(installation.WatchError, match="does not exist"):
        Watch(table="nope", channel="demo").save()
    assert not Watch.objects.exists() and names("tickets") == []


def test_a_new_sensitive_column_makes_the_trigger_outdated(tables: None) -> None:
    watch = Watch.objects.create(table="tickets", channel="demo")
    assert status(watch) == "installed"
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE tickets ADD COLUMN reset_token text")
    assert status(watch) == "outdated"  # the installed trigger would send reset_token
    watch.save()
    assert status(watch) == "installed"


def test_a_dropped_table_reads_as_missing_and_the_watch_can_still_be_deleted(tables: None) -> None:
    watch = Watch.objects.create(table="tasks", channel="demo")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE tasks")
    assert status(watch) == "missing"
    watch.delete()
    assert not Watch.objects.exists()


def test_a_dropped_column_makes_the_installed_trigger_outdated(tables: None) -> None:
    watch = Watch.objects.create(table="tickets", channel="demo", update_columns=["state"])
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE tickets DROP COLUMN state CASCADE")  # takes the UPDATE trigger with it
    base = watch.stub().base_name
    assert names("tickets") == [f"{base}_d", f"{base}_r", f"{base}_t"]
    assert status(watch) == "outdated"


def test_the_admin_form_defaults_durable_to_the_setting(tables: None) -> None:
    """A form that does not carry ``durable`` (a project's own, or a partial post) leaves it to
    ``PGEVENTS["DURABLE"]``, like a migration's ``Watch`` without ``durable=``."""
    from django.conf import settings
    from django.test import override_settings

    from pgevents.core.options import WatchOptions
    from pgevents.setup.forms import WatchForm

    class NoDurable(WatchForm):
        class Meta(WatchForm.Meta):
            fields = ["channel", "events"]

    with override_settings(PGEVENTS={**settings.PGEVENTS, "DURABLE": False}):
        form = NoDurable(data={"relation": '["public", "tickets"]', "channel": "demo", "events": ["INSERT"]})
        assert form.is_valid(), form.errors
        assert WatchOptions.pick(form.cleaned_data).durable is None
        with connection.cursor() as cursor:
            assert not installation.spec(cursor, "tickets", WatchOptions.pick(form.cleaned_data)).durable
            assert installation.spec(cursor, "tickets", WatchOptions(channel="demo", durable=True)).durable
