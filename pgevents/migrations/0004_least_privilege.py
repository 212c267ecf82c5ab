from django.db import migrations

from pgevents.migrations._frozen import read


class Migration(migrations.Migration):
    """Schema v3: other roles of the database can no longer forge, hide or read events.

    - Every function runs with a pinned ``search_path`` (``pg_catalog, pg_temp``) and names
      pgevents' tables with their schema, so neither a temporary table nor a schema earlier
      on a writer's ``search_path`` can redirect it.
    - The trigger function and the listener's functions (``pgevents_assign``, and the new
      ``pgevents_prune`` and ``pgevents_take_transient``) are ``SECURITY DEFINER``: writers
      of watched tables need no right on pgevents' tables, and only the functions write them
      (ids and cursors: only the sequencer). ``EXECUTE`` is revoked from ``PUBLIC``, so a
      role that owns a table cannot attach the trigger function to it (checked at
      ``CREATE TRIGGER``), as are all rights on pgevents' tables. Write rights on the log and
      the cursors granted to other roles before (older versions needed writers to INSERT
      into the log) are revoked.
    - Non-durable watches write to an unlogged table (``pgevents_transient``) the listener
      drains, instead of putting the event in a NOTIFY payload any role could imitate (or
      LISTEN to). The internal channel carries only wake-ups: ``''`` for the log, ``'t'``
      for that table.
    - Triggers pass the columns they send (``TG_ARGV[1]``) and the table's other columns
      (``TG_ARGV[2]``): a column added later is sent by no trigger until a sync decides
      about it. Triggers of earlier versions keep working, unchanged, until
      ``pgevents_sync`` (run after every ``migrate``) replaces them.

    The objects are created in the schema of the existing ``pgevents_event`` table (each
    statement runs through ``format()`` with that schema as ``%1$I``). The SQL is frozen in
    ``sql/0004_least_privilege.sql``. Going back drops what v3 added and restores the v2
    functions exactly as 0001 and 0002 created them (0002's own frozen text for
    ``pgevents_notify``); the rights revoked stay revoked.
    """

    dependencies = [("pgevents", "0003_watch_presence")]

    operations = [
        migrations.RunSQL(
            read("0004_least_privilege"),
            read("0004_least_privilege.reverse") + read("0002_notify_referencing"),
        ),
    ]
