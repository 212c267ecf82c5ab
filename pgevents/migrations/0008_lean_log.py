from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """Each logged row is written into fewer indexes, and a statement's rows in one go.

    Before, the trigger's insert put an entry into three indexes of ``pgevents_event`` (the
    ``seq`` primary key, the ``id`` unique constraint, which indexes the NULL of every pending
    row, and the pending index) and the sequencer's update into three more; every one of
    them grows at its right edge, where concurrent writers queue for the same page. Now the
    insert writes only the pending index, and positioning only ``id`` (a unique index of
    positioned rows) and ``(channel, id)``:

    - the ``seq`` primary key is dropped: nothing looks a row up by ``seq`` but the sequencer,
      which now does it through the pending index (``AND e.id IS NULL``); ``seq`` stays
      unique, taken from its sequence;
    - ``UNIQUE (id)`` becomes ``pgevents_event_id``, unique over positioned rows only;
    - ``pgevents_prune`` deletes by ``id``.

    And a statement writes its rows in one go: the trigger function (``pgevents v4``) also
    runs as a statement trigger on INSERT and DELETE, reading the statement's rows from its
    transition table (``pgevents_new`` / ``pgevents_old``): one call, one ``INSERT … SELECT``
    into the log and one wake-up per statement instead of per row. Row triggers (UPDATE, and
    every trigger built for an older version) work as before; installed watches are rebuilt
    by the sync that ``migrate`` runs (their digest includes the version).

    The SQL is frozen in ``sql/0008_lean_log.sql``; going back restores the constraints,
    0006's functions and 0007's trigger function, and turns statement triggers back into row
    triggers (marked outdated).
    """

    dependencies = [("pgevents", "0007_wake_handover")]

    operations = [
        migrations.RunSQL(read("0008_lean_log"), read("0008_lean_log.reverse")),
    ]
