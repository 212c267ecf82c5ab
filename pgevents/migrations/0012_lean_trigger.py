from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """The trigger function runs one query per statement where it ran four.

    0010's ``pgevents_notify`` ran, for every watched statement, a query for a sample row
    (whether the statement wrote any, and which columns were added since the install), a
    query listing those columns, the log insert, and a query reading the wake-up flag; each
    query is a round through SPI and the executor, and the writer pays them in every
    commit. Now:

    - the statement path is the log insert alone: each row's JSON keeps the sent columns by
      two ``jsonb - text[]`` operations, and only a row with a column in neither of the
      trigger's lists (added since the install) calls the new ``pgevents_only_keys``; the
      insert's row count says whether the statement wrote a row (none: no event, no
      wake-up);
    - the flags (``pgevents_wake``, ``pgevents_wake_transient``) are read with
      ``pg_sequence_last_value``, an expression, not a query: the same non-transactional
      value, NULL (read as 0) only while the sequence was never set;
    - the transition table is read in a subquery that names none of the function's
      variables, so a watched table's columns may have any name (a column ``r``, ``cfg`` or
      ``cols`` made 0010's statement trigger fail).

    Signature, comment (``pgevents v4``), rights, events and wake-up steps are unchanged.
    The figures are in docs/benchmarks.md. The SQL is frozen in
    ``sql/0012_lean_trigger.sql``; going back restores 0010's function and drops
    ``pgevents_only_keys``.
    """

    dependencies = [("pgevents", "0011_sequencer_lean_call")]

    operations = [
        migrations.RunSQL(read("0012_lean_trigger"), read("0012_lean_trigger.reverse")),
    ]
