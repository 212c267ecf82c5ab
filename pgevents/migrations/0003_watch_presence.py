from django.db import migrations, models

import pgevents.models
from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """Watches configured in the admin, and the table server processes report their clients in.

    ``pgevents_presence``: each server process writes its subscriptions per channel there (on
    change, and as a heartbeat) so ``pgevents_status`` can show them from any host. A table
    rather than Redis: it works with every channel layer, including the in-memory one.
    """

    dependencies = [("pgevents", "0002_notify_referencing")]

    operations = [
        migrations.CreateModel(
            name="Watch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("schema", models.CharField(default="public", max_length=63)),
                ("table", models.CharField(max_length=63)),
                (
                    "channel",
                    models.CharField(help_text="Channel clients subscribe to (at most 63 bytes).", max_length=63),
                ),
                ("events", models.JSONField(default=pgevents.models.default_events)),
                (
                    "include",
                    models.JSONField(blank=True, default=list, help_text="Send only these columns (empty: all)."),
                ),
                ("exclude", models.JSONField(blank=True, default=list, help_text="Never send these columns.")),
                (
                    "update_columns",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="UPDATEs fire only when one of these columns changes (empty: when the row changes).",
                        verbose_name="only when these change",
                    ),
                ),
                (
                    "durable",
                    models.BooleanField(
                        default=pgevents.models.default_durable,
                        help_text="Log each change so clients can resume (exactly-once).",
                    ),
                ),
                (
                    "notify",
                    models.BooleanField(default=True, help_text="Wake the listener at commit (off: its next poll)."),
                ),
                (
                    "enabled",
                    models.BooleanField(default=True, help_text="Off: keep the configuration, remove the triggers."),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["schema", "table", "channel"],
                "constraints": [
                    models.UniqueConstraint(fields=("schema", "table", "channel"), name="pgevents_watch_unique")
                ],
            },
        ),
        migrations.RunSQL(read("0003_watch_presence"), read("0003_watch_presence.reverse")),
    ]
