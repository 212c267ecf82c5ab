from django.db import migrations

import pgevents.operations

SEED = """
INSERT INTO authors (name) VALUES ('Ursula K. Le Guin'), ('Italo Calvino'), ('Octavia E. Butler');
INSERT INTO books (title, year, author_id)
SELECT b.title, b.year, a.id FROM (VALUES
    ('The Dispossessed', 1974, 'Ursula K. Le Guin'),
    ('The Left Hand of Darkness', 1969, 'Ursula K. Le Guin'),
    ('Invisible Cities', 1972, 'Italo Calvino'),
    ('If on a winter''s night a traveler', 1979, 'Italo Calvino'),
    ('Kindred', 1979, 'Octavia E. Butler')
) AS b(title, year, author) JOIN authors a ON a.name = b.author;
"""


class Migration(migrations.Migration):
    """A few rows, then the watches: after 0001, whose foreign key exists only once it is applied."""

    dependencies = [("library", "0001_initial"), ("pgevents", "0002_notify_referencing")]

    operations = [
        migrations.RunSQL(SEED, migrations.RunSQL.noop),
        pgevents.operations.Watch(table="books", channel="books"),
        # Renaming an author changes what the books listing shows: tell the books channel
        # (one ids-only event per rename, however many books the author has).
        pgevents.operations.Watch(table="authors", channel="authors", notify_referencing=["books"]),
    ]
