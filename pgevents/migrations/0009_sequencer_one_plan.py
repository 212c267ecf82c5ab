from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """The sequencer plans once per session, through the log's indexes only, and writes
    nothing when nothing is pending.

    0006 made ``pgevents_assign`` plan every call afresh (a generic plan chosen on an empty
    log scanned the whole log once per event). Planning its one large statement cost about
    0.2 ms per call, most of a one-event call's work besides the commit. Now the function's
    statements are small and their plans generic, made once per session, with sequential
    scans, bitmap scans, hash joins and merge joins switched off while it runs: every plan
    left reaches the log through an index (the pending index, ``(channel, id)``), whatever
    the log's size was when it was planned, so the old stall cannot come back. JIT is off
    too (the cost of a disabled path would otherwise look large enough to compile).

    Two writes go: a call that finds nothing pending no longer locks the cursor (a read-only
    call commits without a WAL flush), and the ``published`` mark is written only when it
    moves. Its signature, rights, ordering and returned rows are unchanged.

    The SQL is frozen in ``sql/0009_sequencer_one_plan.sql``; going back restores 0008's
    function.
    """

    dependencies = [("pgevents", "0008_lean_log")]

    operations = [
        migrations.RunSQL(read("0009_sequencer_one_plan"), read("0009_sequencer_one_plan.reverse")),
    ]
