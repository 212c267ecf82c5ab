"""``manage.py pgevents_sync``: make the database's triggers match the configured watches."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction

from pgevents import conf
from pgevents.core.sql import render
from pgevents.setup import sync


class Command(BaseCommand):
    help = (
        "Install or update the triggers of every configured watch (pgevents.operations.Watch in applied "
        "migrations, and Watch rows from the admin; the admin's row wins when both name the same table "
        "and channel), and remove those of disabled watches, in one transaction. Running it again "
        "changes nothing. Triggers nobody configures are listed as unmanaged and kept unless --prune. "
        "Exits with status 1 when a watch cannot be installed (in every mode), after applying the others."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database", default=conf.get().database, help="Django database alias (default: %(default)s)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the SQL that would run; change nothing.")
        parser.add_argument(
            "--list", action="store_true", help="List every watch and its trigger status; change nothing."
        )
        parser.add_argument("--prune", action="store_true", help="Also remove unmanaged pgevents triggers.")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            steps = sync.plan(cursor, sync.configured(alias), prune=options["prune"])
            errors = [s for s in steps if s.action == "error"]
            if options["list"]:
                self._list(steps)
                self._fail(errors)
                return
            changes = [s for s in steps if s.action in ("install", "remove")]
            for step in steps:
                if step.action == "error":
                    self.stderr.write(
                        f"error  {step.schema}.{step.table} → {step.channel} ({step.source}): {step.detail}"
                    )
            if options["dry_run"]:
                for step in changes:
                    self.stdout.write(f"-- {step.action} {step.schema}.{step.table} → {step.channel} ({step.source})")
                    self.stdout.write(render(step.statements))
                if not changes:
                    self.stdout.write("-- nothing to do")
                self._fail(errors)
                return
            sync.apply(cursor, changes)
        for step in changes:
            done = "installed" if step.action == "install" else "removed"
            self.stdout.write(f"{done} {step.schema}.{step.table} → {step.channel} ({step.source})")
        unchanged = sum(1 for s in steps if s.action == "ok")
        in_error = f", {len(errors)} in error" if errors else ""
        self.stdout.write(f"{len(changes)} changed, {unchanged} unchanged{in_error}.")
        self._fail(errors)

    def _fail(self, errors: list[sync.Step]) -> None:
        """Scripts (deploys) must notice: a watch in error is a failed sync."""
        if errors:
            raise CommandError(
                f"{len(errors)} watch(es) could not be installed (listed above): fix or delete them, "
                "or restore their tables."
            )

    def _list(self, steps: list[sync.Step]) -> None:
        if not steps:
            self.stdout.write("No watch is configured or installed.")
        for step in steps:
            state = "error" if step.action == "error" else step.detail
            note = f"  (would {step.action})" if step.action in ("install", "remove") else ""
            if step.action == "error":
                note = f"  ({step.detail})"
            self.stdout.write(f"{state:<10} {step.schema}.{step.table} → {step.channel}  [{step.source}]{note}")
