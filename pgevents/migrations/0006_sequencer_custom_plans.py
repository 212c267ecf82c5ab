from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """The sequencer plans its statements for the log as it is at each call.

    PL/pgSQL caches the plans of a function's statements per session, and after five calls
    PostgreSQL may switch to a generic plan kept for the rest of the session. The listener
    calls ``pgevents_assign`` on one connection for as long as it runs, and its first calls
    usually see an empty log: the generic plan then chosen joins the pending events to the
    log by scanning the whole table once per event, and the next backlog took seconds per
    batch (growing with the log) instead of milliseconds. ``plan_cache_mode =
    force_custom_plan`` on the function (it applies only while the function runs) plans each
    call for the log's current size and the batch it is given; planning costs well under a
    millisecond per call, which a call that positions a batch amortises.

    The function's body, owner, rights and pinned ``search_path`` are unchanged (0004). The
    SQL is frozen in ``sql/0006_sequencer_custom_plans.sql``; going back resets the setting.
    """

    dependencies = [("pgevents", "0005_watch_verbose_name_plural")]

    operations = [
        migrations.RunSQL(read("0006_sequencer_custom_plans"), read("0006_sequencer_custom_plans.reverse")),
    ]
