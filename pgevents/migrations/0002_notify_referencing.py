from django.db import migrations

from pgevents.core import sql


class Migration(migrations.Migration):
    """Trigger function v2: watches may notify the channels of referencing tables.

    ``CREATE OR REPLACE`` keeps every installed trigger. Going back leaves v2 in place: it
    behaves exactly as v1 for every configuration v1 understood.
    """

    dependencies = [("pgevents", "0001_initial")]

    operations = [
        migrations.RunSQL(sql.CREATE_FUNCTION, migrations.RunSQL.noop),
    ]
