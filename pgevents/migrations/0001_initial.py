from django.db import migrations

from pgevents.core import sql


class Migration(migrations.Migration):
    """The event log, the sequencer and the generic trigger function."""

    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.RunSQL(sql.INSTALL, sql.UNINSTALL),
    ]
