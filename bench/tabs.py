"""``python -m bench.tabs``: Chromium tabs on the demo's people page, one INSERT per round.

For each round: the time from the INSERT's commit to the moment the last tab shows the row
(each page records when the row appears, with a MutationObserver, on the same clock), and
the HTTP requests that reached Django for that change, counted server-side by the test
settings' request log (``tests.hooks.RequestLog``), together with the server's own shared
renders. Runs daphne + runlisten on a database of its own (``pgevents_bench_tabs``, dropped at
the end) with the test settings. No assertion: it prints figures.

    .venv/bin/python -m bench.tabs --tabs 20 --rounds 5   (after scripts/bench has set things up once)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg
from playwright.sync_api import sync_playwright

from . import demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tabs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: any free one)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/pgevents_bench_tabs")
    args = parser.parse_args()

    with demo.serve(args.database_url, "tabs", args.port) as served:
        run(f"http://127.0.0.1:{served.port}/", served, args.tabs, args.rounds)


def run(page_url: str, served: demo.Demo, tabs: int, rounds: int) -> None:
    chromium = os.environ.get("PGEVENTS_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as pw, psycopg.connect(served.database_url, autocommit=True) as pg:
        browser = pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        context = browser.new_context()
        pages = []
        for _ in range(tabs):
            page = context.new_page()
            page.goto(page_url)
            page.wait_for_selector('[data-pgevents-status][data-state="live"]', timeout=60_000)
            page.evaluate(demo.OBSERVE_ROWS)
            pages.append(page)
        print(f"{tabs} tabs live on {page_url}")
        lasts: list[float] = []
        for round_ in range(1, rounds + 1):
            served.forget()
            row = pg.execute(
                "INSERT INTO people (name, age, height) VALUES (%s, 1, 1.7) RETURNING pk", (f"bench {round_}",)
            ).fetchone()
            committed = time.time() * 1000
            assert row is not None
            key = str(row[0])
            seen = []
            for page in pages:
                page.wait_for_function("(k) => k in window.__shown", arg=key, timeout=60_000)
                seen.append(page.evaluate("(k) => window.__shown[k]", key))
            time.sleep(0.5)  # late requests, if any, reach the log
            lines = served.requests()
            http = sum(1 for line in lines if line.startswith("http "))
            shared = sum(1 for line in lines if line.startswith("shared "))
            last = max(seen) - committed
            lasts.append(last)
            print(
                f"round {round_}: first tab {min(seen) - committed:.0f} ms, last tab {last:.0f} ms after commit;"
                f" {http} HTTP request(s) to Django, {shared} shared render(s)"
            )
        print(
            f"last tab: {min(lasts):.0f}-{max(lasts):.0f} ms (median {statistics.median(lasts):.0f}) over {rounds} rounds"
        )
        browser.close()


if __name__ == "__main__":
    main()
