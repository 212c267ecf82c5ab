from django.db import migrations, models

import pgevents.operations


class Migration(migrations.Migration):
    initial = True
    dependencies = [("pgevents", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE TABLE people (pk serial primary key, ts timestamptz default now(),"
            " name text, age integer, height real);",
            "DROP TABLE people;",
        ),
        migrations.CreateModel(
            name="Person",
            fields=[
                ("person_id", models.AutoField(primary_key=True, db_column="pk", serialize=False)),
            ],
            options={"managed": False, "db_table": "people", "ordering": ["person_id"]},
        ),
        pgevents.operations.Watch(table="people", channel="people"),
    ]
