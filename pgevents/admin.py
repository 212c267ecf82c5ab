"""The Watch admin: make a table live without SQL, see drift, fire a test event, see status.

Every change goes through ``Watch.save()`` (install or remove in the row's transaction);
Django's model permissions decide who may do what: ``change`` to install, remove and send a
test event, ``view`` to see the status page. The change list also shows, read-only, the
watches of applied migrations with the state of their triggers: one page says what is live.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from pgevents import conf
from pgevents.core import sql
from pgevents.core.names import matches
from pgevents.models import Watch
from pgevents.setup import installation, report, sync
from pgevents.setup.forms import WatchForm


@admin.register(Watch)
class WatchAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = WatchForm
    list_display = ["__str__", "event_list", "durable", "enabled", "trigger_state", "updated_at"]
    list_filter = ["enabled", "durable", "schema"]
    search_fields = ["table", "channel"]
    actions = ["install_triggers", "remove_triggers", "send_test_event"]
    change_list_template = "admin/pgevents/watch/change_list.html"
    fieldsets = [
        (None, {"fields": ["relation", "channel", "events"]}),
        ("Columns", {"fields": ["include", "exclude", "update_columns"]}),
        ("Delivery", {"fields": ["durable", "notify", "enabled"]}),
    ]

    @admin.display(description="events")
    def event_list(self, obj: Watch) -> str:
        return " ".join(obj.events)

    @admin.display(description="trigger")
    def trigger_state(self, obj: Watch) -> str:
        """What the database really has: installed, outdated (differs) or missing."""
        with connections[obj._state.db or "default"].cursor() as cursor:
            return obj.trigger_state(cursor)

    def save_model(self, request: HttpRequest, obj: Watch, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not matches(obj.channel, conf.get().channels):
            self.message_user(
                request,
                f"Channel {obj.channel!r} is not in PGEVENTS['CHANNELS']: clients cannot subscribe to it yet.",
                messages.WARNING,
            )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {"migration_watches": migration_watches(), **(extra_context or {})}
        return super().changelist_view(request, context)

    def _each(self, request: HttpRequest, queryset: QuerySet[Watch], what: str, fn: Any) -> None:
        done = []
        for watch in queryset:
            try:
                with transaction.atomic(using=watch._state.db):
                    fn(watch)
                done.append(str(watch))
            except (installation.WatchError, ValueError) as exc:
                self.message_user(request, f"{watch}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{what}: {', '.join(done)}", messages.SUCCESS)

    @admin.action(description="Install (or update) the triggers of the selected watches", permissions=["change"])
    def install_triggers(self, request: HttpRequest, queryset: QuerySet[Watch]) -> None:
        def install(watch: Watch) -> None:
            watch.enabled = True
            watch.save()

        self._each(request, queryset, "Installed", install)

    @admin.action(
        description="Remove the triggers of the selected watches (keep them, disabled)", permissions=["change"]
    )
    def remove_triggers(self, request: HttpRequest, queryset: QuerySet[Watch]) -> None:
        def remove(watch: Watch) -> None:
            watch.enabled = False
            watch.save()

        self._each(request, queryset, "Removed", remove)

    @admin.action(description="Send a test event on the selected watches' channels", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Watch]) -> None:
        def send(watch: Watch) -> None:
            with connections[watch._state.db or "default"].cursor() as cursor:
                for statement in sql.probe_event(watch.spec(cursor)):
                    cursor.execute(statement.as_string(None))

        self._each(request, queryset, "Test event sent", send)

    def get_urls(self) -> list[URLPattern]:
        status_url = path("status/", self.admin_site.admin_view(self.status_view), name="pgevents_watch_status")
        return [status_url, *super().get_urls()]

    def status_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "pgevents status",
            "opts": self.model._meta,
            "report": report.collect(),
        }
        return TemplateResponse(request, "admin/pgevents/status.html", context)


def migration_watches() -> list[dict[str, Any]]:
    """Watches of applied migrations (not overridden by an admin row), with their triggers' state."""
    alias = conf.get().database
    watches = [w for w in sync.configured(alias) if w.source.startswith("migration")]
    allowed = conf.get().channels
    with connections[alias].cursor() as cursor:
        steps = sync.plan(cursor, watches)[: len(watches)]  # then come unmanaged triggers: not these
    return [
        {
            "source": watch.source.removeprefix("migration "),
            "relation": f"{step.schema}.{step.table}",
            "channel": step.channel,
            "events": " ".join(watch.options.events),
            "trigger_state": "error: " + step.detail if step.action == "error" else step.detail,
            "admitted": matches(step.channel, allowed),
        }
        for watch, step in zip(watches, steps, strict=True)
    ]
