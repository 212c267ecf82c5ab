"""Health endpoints and Prometheus metrics of the web side and of ``runlisten``."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request

import psycopg

from tests.support import ROOT, Client, Process, Stack, base_env, free_port, run, wait_until


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(text: str, name: str, labels: str = "") -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?") + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_web_health_and_metrics_move_with_deliveries(stack: Stack, pg: psycopg.Connection) -> None:
    status, body = get(f"{stack.http}/pgevents/health/")
    assert status == 200 and json.loads(body)["status"] == "ok"
    _, before = get(f"{stack.http}/pgevents/metrics")

    async def scenario() -> str:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            pg.execute("INSERT INTO people (name) VALUES ('counted')")
            await client.events(1)
            status, during = get(f"{stack.http}/pgevents/metrics")
            assert status == 200
            health = json.loads(get(f"{stack.http}/pgevents/health/")[1])
            assert health["subscriptions"] >= 1
            return during

    during = run(scenario())
    assert sample(during, "pgevents_events_delivered_total") > sample(before, "pgevents_events_delivered_total")
    assert sample(during, "pgevents_connected_clients", 'channel="people"') >= 1
    assert sample(during, "pgevents_layer_ok") == 1


def test_metrics_refuse_addresses_outside_metrics_ips(stack: Stack) -> None:
    # daphne sees 127.0.0.1; with an allow-list that excludes it the endpoint refuses.
    with Stack(stack.db_url, listener=False, env={"PGEVENTS_METRICS_IPS": "10.9.9.9"}) as other:
        status, _ = get(f"{other.http}/pgevents/metrics")
    assert status == 403


def test_runlisten_health_and_metrics(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    env = base_env(isolated_db, PGEVENTS_REDIS_PREFIX=f"pgevents-test-health-{free_port()}")
    ports = free_port(), free_port()
    logs = ROOT / ".pgevents" / "test-logs"

    def start(port: int, **extra: str) -> Process:
        args = [sys.executable, "manage.py", "runlisten", "--health-port", str(port)]
        return Process(f"runlisten-health-{port}", args, {**env, **extra}, logs)

    procs = [start(ports[0])]
    try:
        active = procs[0]
        wait_until(lambda: "listener active" in active.output(), 30, what="active listener")
        procs.append(start(ports[1], PGEVENTS_METRICS_IPS="10.9.9.9"))  # an allow-list without us
        standby = procs[1]
        wait_until(lambda: "standing by" in standby.output(), 30, what="standby listener")
        wait_until(lambda: "/health" in standby.output(), 30, what="health server")
        status, body = get(f"http://127.0.0.1:{ports[0]}/health")
        assert status == 200 and json.loads(body)["status"] == "active"
        status, body = get(f"http://127.0.0.1:{ports[1]}/health")
        assert status == 200 and json.loads(body)["status"] == "standby"
        assert get(f"http://127.0.0.1:{ports[0]}/nope")[0] == 404

        _, before = get(f"http://127.0.0.1:{ports[0]}/metrics")
        assert sample(before, "pgevents_listener_active") == 1
        assert "pgevents_notification_queue_usage" in before
        assert "pgevents_listener_lag_seconds" in before
        iso_pg.execute("INSERT INTO people (name) VALUES ('m1'), ('m2')")
        wait_until(
            lambda: (
                sample(get(f"http://127.0.0.1:{ports[0]}/metrics")[1], "pgevents_events_forwarded_total")
                >= sample(before, "pgevents_events_forwarded_total") + 2
            ),
            30,
            what="the forwarded counter to move",
        )
        after = get(f"http://127.0.0.1:{ports[0]}/metrics")[1]
        assert sample(after, "pgevents_notifications_received_total", 'kind="wakeup"') >= 1
        # /metrics names channels: only METRICS_IPS may read it; /health stays open to probes.
        assert get(f"http://127.0.0.1:{ports[1]}/metrics")[0] == 403
        assert get(f"http://127.0.0.1:{ports[1]}/health")[0] == 200
    finally:
        for proc in procs:
            proc.stop()
