from typing import ClassVar

from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """The event log, the sequencer and the generic trigger function (v1).

    ``pgevents_event.seq`` is the insertion order (taken when the writer inserts); ``id`` is
    the position in commit order, assigned by the single active sequencer
    (``pgevents_assign``, run by the listener) once the writer's transaction is visible. Its
    row lock on the ``assigned`` cursor serialises sequencers, so ids never go backwards even
    if two listeners ever ran at once. ``pgevents_frame`` encodes the contract's envelope in
    PostgreSQL: one definition shared by live events and replays. The SQL is frozen in
    ``sql/0001_initial.sql`` (see ``_frozen``).
    """

    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations = [
        migrations.RunSQL(read("0001_initial"), read("0001_initial.reverse")),
    ]
