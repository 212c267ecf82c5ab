from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="Author",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.TextField()),
            ],
            options={"db_table": "authors", "ordering": ["name", "id"]},
        ),
        migrations.CreateModel(
            name="Book",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.TextField()),
                ("year", models.IntegerField(null=True)),
                (
                    "author",
                    models.ForeignKey(
                        db_column="author_id",
                        on_delete=models.deletion.CASCADE,
                        related_name="books",
                        to="library.author",
                    ),
                ),
            ],
            options={"db_table": "books", "ordering": ["title", "id"]},
        ),
    ]
