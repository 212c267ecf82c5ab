"""``manage.py pgevents_status``: listeners and their lag, clients, the log, the triggers."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pgevents import conf
from pgevents.setup import report as status_report


class Command(BaseCommand):
    help = (
        "Show the listeners (active / standby) and their lag, subscriptions per channel reported by the "
        "server processes, PostgreSQL's NOTIFY queue usage, the event log's size and oldest event, and "
        "every watch's trigger status."
    )
    requires_system_checks = []  # a status tool must work on a misconfigured project too

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database", default=conf.get().database, help="Django database alias (default: %(default)s)."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = status_report.collect(options["database"])
        if options["json"]:
            self.stdout.write(json.dumps(report, default=str, indent=2))
            return
        self._text(report)

    def _text(self, report: dict[str, Any]) -> None:
        out = self.stdout.write
        listeners = report["listeners"]
        active = sum(1 for item in listeners if item["role"] == "active")
        out(f"Listeners: {len(listeners)} ({active} active, {len(listeners) - active} standby)")
        for item in listeners:
            where = f"{item['host']} pid {item['pid']}" if item["pid"] is not None else "host and pid unknown"
            out(
                f"  {item['role']:<8} {where}  ({item['name']}, PostgreSQL backend {item['backend_pid']}"
                f" from {item['client']}, since {item['since']})"
            )
        if not listeners:
            out("  none: events are logged but nobody delivers them (run manage.py runlisten)")
        log = report["log"]
        age = log["oldest_pending_seconds"]
        out(
            f"Lag: {log['pending']} event(s) waiting"
            + (f", oldest {age:.1f}s" if age is not None else "")
            + f"; {log['unpublished']} positioned but not confirmed sent"
        )
        out(f"Event log: {log['events']} event(s), {log['bytes']} bytes, oldest {log['oldest'] or '-'}")
        out(f"NOTIFY queue usage: {log['notify_queue_usage']:.4%}")
        clients = report["clients"]
        out(f"Server processes: {len(clients['processes'])} reporting")
        for proc in clients["processes"]:
            total = sum(int(n) for n in proc["channels"].values())
            out(f"  {proc['host']} pid {proc['pid']}: {total} subscription(s), last report {proc['seen']}")
        out("Clients per channel:")
        for channel, n in clients["channels"].items():
            out(f"  {channel}: {n}")
        if not clients["channels"]:
            out("  none")
        out("Triggers:")
        for item in report["triggers"]:
            out(f"  {item['status']:<10} {item['schema']}.{item['table']} → {item['channel']}  [{item['source']}]")
        if not report["triggers"]:
            out("  none")
