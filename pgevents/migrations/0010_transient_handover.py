from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """Writers of non-durable watches skip their wake-up ``NOTIFY`` too while the listener polls.

    0007's hand-over let durable rows skip the wake-up (and its cluster-wide lock at commit)
    while the listener polls the log; a non-durable row still sent ``'t'`` on every commit, so
    every commit of a non-durable watch serialised with every other. Now:

    - ``pgevents_wake_transient`` is the flag non-durable rows read, like ``pgevents_wake``
      for durable ones: 0, or the pid of a polling listener whose every look takes the
      transient table as well as the log. A listener sets it with the new
      ``pgevents_wake(busy, transient)`` (``EXECUTE`` for the roles that may run the
      one-argument form); an older listener, which polls the log alone, never sets it, so
      non-durable rows keep waking it. Going idle clears both flags.
    - The trigger function takes the same steps for both kinds of row, each with its own flag
      and wake-up payload (its interface is unchanged: still ``pgevents v4``).
    - ``pgevents_take_transient`` is PL/pgSQL: its plan is made once per session (the SQL
      function planned its ``DELETE`` on every call), so a polling listener can take the
      transient table in every look, in the same statement as the sequencer.

    The argument is in docs/delivery.md ("Wake-ups"). The SQL is frozen in
    ``sql/0010_transient_handover.sql``; going back restores 0008's trigger function,
    0007's ``pgevents_wake`` and 0004's ``pgevents_take_transient``, and drops the flag and
    the two-argument function.
    """

    dependencies = [("pgevents", "0009_sequencer_one_plan")]

    operations = [
        migrations.RunSQL(read("0010_transient_handover"), read("0010_transient_handover.reverse")),
    ]
