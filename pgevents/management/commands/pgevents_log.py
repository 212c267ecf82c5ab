"""``manage.py pgevents_log status|prune``: the event log's state, and pruning on demand.

The active listener prunes by itself every minute; this command is for cron jobs, for
inspection, and for pruning with a different age than ``PGEVENTS["RETENTION"]``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pgevents import conf
from pgevents.store import db, log


class Command(BaseCommand):
    help = "Show the pgevents event log's state (status) or delete forwarded events older than the retention (prune)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="Size, pending events, oldest and newest event, cursors.")
        status.add_argument("--json", action="store_true", help="Machine-readable output.")
        prune = sub.add_parser("prune", help="Delete forwarded events older than --older-than seconds.")
        prune.add_argument(
            "--older-than",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Age in seconds (default: PGEVENTS['RETENTION'] = %(default)s → the setting).",
        )
        for p in (status, prune):
            p.add_argument("--database", default=None, help="Django database alias (default: PGEVENTS['DATABASE']).")

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._run(options))

    async def _run(self, options: dict[str, Any]) -> None:
        async with await db.connect(options["database"], "pgevents-log") as conn:
            if options["action"] == "prune":
                age = conf.get().retention if options["older_than"] is None else options["older_than"]
                removed = await log.prune(conn, age)
                self.stdout.write(f"pruned {removed} event(s) older than {age:g}s")
                return
            stats = await log.stats(conn)
        if options["json"]:
            self.stdout.write(json.dumps(stats, default=str))
            return
        cursors = stats["cursors"]
        self.stdout.write(
            f"events: {stats['events']} ({stats['bytes']} bytes), not yet positioned: {stats['pending']}\n"
            f"oldest: {stats['oldest']}\nnewest: {stats['newest']}\n"
            f"last id assigned: {cursors.get('assigned')}, published: {cursors.get('published')}, "
            f"pruned up to: {cursors.get('pruned')}\n"
            f"notification queue usage: {stats['notify_queue_usage']:.6f}"
        )
