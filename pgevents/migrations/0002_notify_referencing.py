from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """Trigger function v2: watches may notify the channels of referencing tables.

    The configuration argument gains ``referencing``: ``[{"channel", "schema", "table",
    "columns", "keys"}]``. An UPDATE of a watched row then also emits, on each of those
    channels, one UPDATE event for the referencing table whose ``row`` holds only the
    foreign-key columns and the watched row's key values (``{"author_id": 7}``): ids, never
    the child rows, so renaming a parent costs one small event per referencing channel.

    ``CREATE OR REPLACE`` keeps every installed trigger. Going back leaves v2 in place: it
    behaves exactly as v1 for every configuration v1 understood.
    """

    dependencies = [("pgevents", "0001_initial")]

    operations = [
        migrations.RunSQL(read("0002_notify_referencing"), migrations.RunSQL.noop),
    ]
