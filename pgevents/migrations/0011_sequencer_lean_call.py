from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """The sequencer looks at the pending index once per call, and frames without a call.

    A call of 0009's ``pgevents_assign`` that positioned one event ran five statements and
    walked the pending index from its start twice (an ``EXISTS``, then the read of what is
    pending). That walk steps over every entry left by a positioned row until vacuum removes
    it, so its cost grows with the events positioned since the last vacuum. Now: one
    statement finds the oldest pending event and locks the cursor only if there is one; the
    next reads from that event on (an index range, not a walk), positions and frames; the
    last moves both marks. A call that finds nothing still writes nothing.

    It also fixes a stall: a plan made while the statistics said nothing was pending (what
    ``ANALYZE`` sees once the listener has drained the log) could find each row to position
    by walking every pending row, re-running the numbering per row: about a second per batch
    of 500 behind a backlog of 5,000. Positioned rows are now found by their ``ctid``.

    ``pgevents_frame`` carries no ``SET`` any more and qualifies every name, so PostgreSQL
    inlines it into the query that calls it (before, it was planned again at every execution
    of that query: 0.05 ms of a one-event call) and no caller's ``search_path`` can redirect
    it. Signatures, rights, ordering, frames and returned rows are unchanged.

    The SQL is frozen in ``sql/0011_sequencer_lean_call.sql``; going back restores 0004's
    frame and 0009's sequencer.
    """

    dependencies = [("pgevents", "0010_transient_handover")]

    operations = [
        migrations.RunSQL(read("0011_sequencer_lean_call"), read("0011_sequencer_lean_call.reverse")),
    ]
