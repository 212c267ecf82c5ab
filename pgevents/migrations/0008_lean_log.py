from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """Each logged row is written into fewer indexes.

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

    The trigger function is unchanged (still ``pgevents v3``). The SQL is frozen in
    ``sql/0008_lean_log.sql``; going back restores the constraints and 0006's functions.
    """

    dependencies = [("pgevents", "0007_wake_handover")]

    operations = [
        migrations.RunSQL(read("0008_lean_log"), read("0008_lean_log.reverse")),
    ]
