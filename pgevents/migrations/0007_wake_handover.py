from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """Writers skip the wake-up ``NOTIFY`` while the listener is polling the log.

    A transaction that issued ``NOTIFY`` takes a cluster-wide lock at commit and holds it
    through the WAL flush, so every watched commit used to serialise with every other. Now:

    - ``pgevents_wake`` (a sequence: read without MVCC, so a writer always sees its latest
      value) is 0 while the listener sleeps on ``LISTEN``, and the polling listener's backend
      pid while it polls the log without waiting for wake-ups.
    - ``pgevents_wake(busy)`` sets it (``SECURITY DEFINER``, ``EXECUTE`` for the listener role
      only: no other role can make writers skip their wake-ups). Going busy, it also takes
      an advisory key of the listener's own (its pid) for the rest of its session, so a flag
      left behind by a listener that died reads as "wake it".
    - The trigger function sends the wake-up unless the flag names a live polling listener,
      read after taking the hand-over key (``pg_try_advisory_xact_lock_shared``, never
      waiting: when it is not free the writer just sends the wake-up). A listener that stops
      polling sets the flag to 0, waits for the hand-over key exclusively (so for every
      writer that may have skipped its wake-up), and then looks at the log once more.

    The argument is in docs/delivery.md ("Wake-ups"). The trigger function's interface is
    unchanged (still ``pgevents v3``: installed triggers stay current). The SQL is frozen in
    ``sql/0007_wake_handover.sql``; going back restores 0004's trigger function and drops the
    flag and its function.
    """

    dependencies = [("pgevents", "0006_sequencer_custom_plans")]

    operations = [
        migrations.RunSQL(read("0007_wake_handover"), read("0007_wake_handover.reverse")),
    ]
