"""``Watch``: a table made live from the Django admin (or the shell), no SQL written.

A watch's triggers live in the same database as its row, and change in the same
transaction: saving installs or replaces them, deleting (also ``queryset.delete()``)
removes them, and a disabled watch keeps its configuration without triggers.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from pgevents import conf
from pgevents.core.options import WatchOptions
from pgevents.core.sql import ALL_EVENTS, TriggerSpec
from pgevents.setup import installation
from pgevents.setup.installation import TriggerState


def default_events() -> list[str]:
    return list(ALL_EVENTS)


def default_durable() -> bool:
    return conf.get().durable


class Watch(models.Model):
    """One table's changes published on one channel."""

    schema = models.CharField(max_length=63, default="public")
    table = models.CharField(max_length=63)
    channel = models.CharField(max_length=63, help_text="Channel clients subscribe to (at most 63 bytes).")
    events = models.JSONField(default=default_events)
    include = models.JSONField(default=list, blank=True, help_text="Send only these columns (empty: all).")
    exclude = models.JSONField(default=list, blank=True, help_text="Never send these columns.")
    update_columns = models.JSONField(
        default=list,
        blank=True,
        verbose_name="only when these change",
        help_text="UPDATEs fire only when one of these columns changes (empty: when the row changes).",
    )
    durable = models.BooleanField(
        default=default_durable, help_text="Log each change so clients can resume (exactly-once)."
    )
    notify = models.BooleanField(default=True, help_text="Wake the listener at commit (off: its next poll).")
    enabled = models.BooleanField(default=True, help_text="Off: keep the configuration, remove the triggers.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["schema", "table", "channel"], name="pgevents_watch_unique")]
        ordering = ["schema", "table", "channel"]
        verbose_name_plural = "watches"

    def __str__(self) -> str:
        return f"{self.schema}.{self.table} → {self.channel}"

    @property
    def key(self) -> tuple[str, str, str]:
        """What names the triggers: changing any of these means other triggers."""
        return (self.schema, self.table, self.channel)

    def options(self) -> WatchOptions:
        """This watch's options, read from the fields of the same names."""
        return WatchOptions.pick(vars(self))

    def spec(self, cursor: Any) -> TriggerSpec:
        """The triggers this watch needs, checked against the real table (raises ``WatchError``)."""
        return installation.spec(cursor, self.table, self.options())

    def stub(self) -> TriggerSpec:
        """Enough of the spec to name (and drop) the triggers, even if the table is gone."""
        return TriggerSpec(table=self.table, channel=self.channel, schema=self.schema)

    def trigger_state(self, cursor: Any) -> TriggerState:
        try:
            spec = self.spec(cursor)
        except installation.WatchError:  # table or column gone: whatever is installed is stale
            return "missing" if installation.trigger_state(cursor, self.stub()) == "missing" else "outdated"
        return installation.trigger_state(cursor, spec)

    def save(self, *args: Any, **kwargs: Any) -> None:
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            previous = None
            if self.pk is not None:
                previous = type(self)._default_manager.using(using).filter(pk=self.pk).first()
            super().save(*args, **kwargs)
            with connections[using].cursor() as cursor:
                if previous is not None and previous.key != self.key:
                    installation.remove(cursor, previous.stub())
                if self.enabled:
                    installation.install(cursor, self.spec(cursor))
                else:
                    installation.remove(cursor, self.stub())


@receiver(post_delete, sender=Watch)
def _remove_triggers(sender: type[Watch], instance: Watch, using: str, **kwargs: Any) -> None:
    """Deleting a watch (one, or a whole queryset) removes its triggers in the same transaction."""
    with connections[using].cursor() as cursor:
        installation.remove(cursor, instance.stub())
