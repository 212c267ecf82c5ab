"""``python -m bench.peruser``: Chromium tabs on a page of per-user regions, one INSERT per round.

The demo's ``/people/per-user/`` page has three regions on channel ``people`` that are not
shared (the count, the newest name, the rows): every tab asks Django for what a change needs.
The client gathers what its regions ask for during a window of 20 ms plus a random part of
the page's ``jitter`` (``{% pgevents_script jitter=… %}``, here ``?jitter=``) and sends one
``pgevents/fragments/`` request for all of it. Per round this prints:

- the HTTP requests that reached Django for the change (server-side, the test settings'
  request log, ``tests.hooks.RequestLog``) and the fragments they carried: one request per
  tab, three URLs each, is the goal; one per region would be three per tab;
- when each tab sent its request, measured in the page (``fetch`` wrapped by an init script)
  against the moment that tab received the event, on the browser's clock: the first and last
  offset, percentiles and a histogram in tenths of the configured window;
- when the last tab showed the row, from the commit.

Real tabs, not clients imitating them: the fetch path under test is the shipped
``pgevents.js`` (its fetcher's window, its regions' debounce), and the spread includes what
a busy browser adds to its timers. 100 tabs of this small page run on the 2-core machine
the benchmarks use; the offsets are read on the page's own clock, so a loaded machine shows
up as a wider spread (requests later than the window), not as a wrong count. Runs daphne + runlisten on a database of its own
(``pgevents_bench_peruser``, dropped at the end). No assertion: it prints figures.

    .venv/bin/python -m bench.peruser --tabs 100 --rounds 5 --jitter 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import psycopg
from playwright.sync_api import Page, sync_playwright

from . import demo

#: Recorded in every tab before its scripts run: when each ``people`` event arrived and
#: every request the page made (static files aside), on the page's clock.
RECORD = """
window.__events = {};
window.__asked = [];
const realFetch = window.fetch.bind(window);
window.fetch = (url, options) => {
  const text = String(url);
  if (!text.includes('/static/')) window.__asked.push({ t: Date.now(), url: text });
  return realFetch(url, options);
};
document.addEventListener('pgevents:people', (e) => {
  const row = e.detail.row || e.detail.old || {};
  if (row.pk !== undefined) window.__events[String(row.pk)] = Date.now();
});
"""

#: Per-tab, for one change: when the event arrived, the requests since then, when the row showed.
COLLECT = """(key) => ({
  event: window.__events[key],
  asked: window.__asked.filter((a) => a.t >= window.__events[key]),
  shown: window.__shown[key],
})"""


@dataclass
class Round:
    requests: int  # HTTP requests that reached Django
    fragments: int  # URLs rendered for them
    offsets: list[float]  # per request: ms from the tab's event to its request
    from_commit: list[float]  # per request: ms from the commit to the request
    last_shown: float  # ms from the commit to the last tab showing the row


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def histogram(offsets: list[float], jitter: int, minimum: float) -> str:
    """Counts per tenth of the window [minimum, minimum + jitter], and beyond it."""
    width = max(jitter, 1) / 10
    bins = [0] * 11
    below = 0
    for value in offsets:
        if value < minimum:
            below += 1
        else:
            bins[min(10, int((value - minimum) // width))] += 1
    edges = " ".join(f"{n}" for n in bins[:10])
    return f"[{minimum:.0f}-{minimum + jitter:.0f} ms in tenths: {edges}] later: {bins[10]} earlier: {below}"


def one_round(pages: list[Page], pg: psycopg.Connection, served: demo.Demo, number: int) -> Round:
    served.forget()
    row = pg.execute(
        "INSERT INTO people (name, age, height) VALUES (%s, 1, 1.7) RETURNING pk", (f"per-user {number}",)
    ).fetchone()
    committed = time.time() * 1000
    assert row is not None
    key = str(row[0])
    for page in pages:
        page.wait_for_function("(k) => k in window.__shown", arg=key, timeout=120_000)
    time.sleep(1.0)  # late requests, if any, reach the log
    found = [page.evaluate(COLLECT, key) for page in pages]
    lines = served.requests()
    offsets = [a["t"] - f["event"] for f in found for a in f["asked"]]
    return Round(
        requests=sum(1 for line in lines if line.startswith("http ")),
        fragments=sum(1 for line in lines if line.startswith("fragment ")),
        offsets=offsets,
        from_commit=[a["t"] - committed for f in found for a in f["asked"]],
        last_shown=max(f["shown"] for f in found) - committed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tabs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--jitter", type=int, default=100, help="the page's jitter (ms), as {% pgevents_script %} takes it"
    )
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: any free one)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/pgevents_bench_peruser")
    args = parser.parse_args()
    with demo.serve(args.database_url, "peruser", args.port) as served:
        run(f"http://127.0.0.1:{served.port}/people/per-user/?jitter={args.jitter}", served, args)


def run(page_url: str, served: demo.Demo, args: argparse.Namespace) -> None:
    chromium = os.environ.get("PGEVENTS_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as pw, psycopg.connect(served.database_url, autocommit=True) as pg:
        browser = pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        context = browser.new_context()
        context.add_init_script(RECORD)
        pages = []
        for _ in range(args.tabs):
            page = context.new_page()
            page.goto(page_url)
            page.wait_for_selector('[data-pgevents-status][data-state="live"]', timeout=120_000)
            page.evaluate(demo.OBSERVE_ROWS)
            pages.append(page)
        print(f"{args.tabs} tabs live on {page_url} (3 per-user regions on channel people)")
        rounds: list[Round] = []
        for number in range(1, args.rounds + 1):
            r = one_round(pages, pg, served, number)
            rounds.append(r)
            print(
                f"round {number}: {r.requests} request(s) to Django for {r.fragments} fragment(s)"
                f" ({r.requests / args.tabs:.2f} per tab); sent {min(r.offsets):.0f}-{max(r.offsets):.0f} ms after"
                f" the tab's event (p50 {percentile(r.offsets, 50):.0f}, p90 {percentile(r.offsets, 90):.0f});"
                f" first/last {min(r.from_commit):.0f}/{max(r.from_commit):.0f} ms after commit;"
                f" last tab showed the row {r.last_shown:.0f} ms after commit"
            )
            print("  " + histogram(r.offsets, args.jitter, 20 + 50))  # the regions' debounce, then the window
        requests = [r.requests for r in rounds]
        spans = [max(r.offsets) - min(r.offsets) for r in rounds]
        print(
            f"requests per change: {min(requests)}-{max(requests)} for {args.tabs} tabs and 3 regions"
            f" over {args.rounds} rounds; spread (last - first request, per round):"
            f" {min(spans):.0f}-{max(spans):.0f} ms for a jitter of {args.jitter} ms; last tab"
            f" {min(r.last_shown for r in rounds):.0f}-{max(r.last_shown for r in rounds):.0f} ms after commit"
        )
        print(f"median offset over all rounds: {statistics.median(o for r in rounds for o in r.offsets):.0f} ms")
        browser.close()


if __name__ == "__main__":
    main()
