from django.db import migrations


class Migration(migrations.Migration):
    """The admin says "Watches" (model options only: no database change)."""

    dependencies = [("pgevents", "0004_least_privilege")]

    operations = [
        migrations.AlterModelOptions(
            name="watch",
            options={"ordering": ["schema", "table", "channel"], "verbose_name_plural": "watches"},
        ),
    ]
