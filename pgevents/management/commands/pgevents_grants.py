"""``manage.py pgevents_grants``: print the GRANT / REVOKE SQL of the role table for given roles."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from pgevents import conf
from pgevents.core import grants


class Command(BaseCommand):
    help = (
        "Print the SQL that gives each role exactly what it needs (docs/security.md, 'Database roles'): "
        "--listener for runlisten, --web for the ASGI servers, --writer for roles that write watched "
        "tables (they get nothing on pgevents' objects). Run the output as the owner of pgevents' "
        "tables (the role that ran migrate). Changes nothing itself."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database", default=conf.get().database, help="Django database alias (default: %(default)s)."
        )
        for option, who in (
            ("listener", "runlisten connects as"),
            ("web", "the ASGI servers connect as"),
            ("writer", "writes watched tables"),
        ):
            parser.add_argument(
                f"--{option}", action="append", default=[], metavar="ROLE", help=f"Role {who}; repeat for several."
            )

    def handle(self, *args: Any, **options: Any) -> None:
        with connections[options["database"]].cursor() as cursor:
            cursor.execute(
                "SELECT current_database(), n.nspname, pg_get_userbyid(c.relowner), current_setting('server_version_num')"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.oid = to_regclass('pgevents_event')"
            )
            row = cursor.fetchone()
        if row is None:
            raise CommandError("pgevents' tables are not in this database: run manage.py migrate first.")
        database, schema, owner, version = row
        out = self.stdout.write
        out(f"-- pgevents' roles for database {database!r}, schema {schema!r}; run as {owner!r} (the owner).")
        for line in grants.server_advice(int(version)):
            out(f"-- {line}")
        for comment, statements in grants.script(
            database, schema, listeners=options["listener"], webs=options["web"], writers=options["writer"]
        ):
            out(f"\n-- {comment}")
            for statement in statements:
                out(statement.as_string(None) + ";")
