"""Prometheus metrics, kept off the hot path.

Counters are incremented once per batch or per event, never per socket; gauges that need a
look at live state (clients per channel, listener lag, notification-queue usage) are
computed when Prometheus scrapes, by collectors. ``prometheus-client`` is optional: without
it every metric is a no-op and the metrics endpoints answer 501.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import REGISTRY, Collector
except ImportError:  # pragma: no cover - the "metrics" extra is not installed
    prometheus_client = None  # type: ignore[assignment]


class _Noop:  # pragma: no cover - only without the optional prometheus-client
    def labels(self, *args: Any, **kwargs: Any) -> _Noop:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
    if prometheus_client is None:  # pragma: no cover - only without the optional prometheus-client
        return _Noop()
    return prometheus_client.Counter(name, doc, labels)


def _gauge(name: str, doc: str) -> Any:
    if prometheus_client is None:  # pragma: no cover - only without the optional prometheus-client
        return _Noop()
    return prometheus_client.Gauge(name, doc)


# -- listener (runlisten) ----------------------------------------------------------------
NOTIFICATIONS = _counter("pgevents_notifications_received", "Notifications the listener received, by kind.", ("kind",))
FORWARDED = _counter("pgevents_events_forwarded", "Events the listener published to the channel layer.")
LAYER_MESSAGES = _counter("pgevents_layer_messages_sent", "Channel-layer messages (batches) the listener sent.")
LISTENER_ACTIVE = _gauge("pgevents_listener_active", "1 while this listener holds the lock and forwards events.")
LISTENER_RECONNECTS = _counter("pgevents_listener_sessions_failed", "Listener sessions that ended in an error.")

# -- server processes (hub and subscriptions) --------------------------------------------
DELIVERED = _counter("pgevents_events_delivered", "Live events written to client connections.")
REPLAYED = _counter("pgevents_events_replayed", "Events sent from the log (resumes and gap repairs).")
DROPPED = _counter(
    "pgevents_events_dropped",
    "Events not sent to a subscription: already delivered (duplicate) or buffer overflow (re-read from the log).",
    ("reason",),
)
SLOW_CLIENTS = _counter("pgevents_slow_clients_dropped", "Clients disconnected because they stopped reading.")
GAPS = _counter("pgevents_gaps_repaired", "Gaps detected through prev ids and repaired from the log.")
SHARED_RENDERS = _counter(
    "pgevents_shared_renders", "Shared-region renders (one per URL and event, per process, however many viewers)."
)
RESETS = _counter("pgevents_resets", "Resets sent because the requested history was gone.")
LAYER_FAILURES = _counter("pgevents_layer_receive_failures", "Channel-layer receive failures (Redis down…).")


class _Scraped(Collector if prometheus_client is not None else object):  # type: ignore[misc]
    """Gauges computed at scrape time by a callback returning ``{name: (doc, samples)}``."""

    def __init__(
        self, compute: Callable[[], Iterable[tuple[str, str, list[str], list[tuple[list[str], float]]]]]
    ) -> None:
        self.compute = compute

    def collect(self) -> Iterable[Any]:
        for name, doc, labels, samples in self.compute():
            family = GaugeMetricFamily(name, doc, labels=labels)
            for values, value in samples:
                family.add_metric(values, value)
            yield family


_registered: set[str] = set()


def register_scrape(key: str, compute: Callable[[], Any]) -> None:
    """Register a scrape-time collector once per process (idempotent by ``key``)."""
    if prometheus_client is None or key in _registered:
        return
    _registered.add(key)
    REGISTRY.register(_Scraped(compute))


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    if prometheus_client is None:  # pragma: no cover - only without the optional prometheus-client
        raise RuntimeError("prometheus-client is not installed (pip install 'pgevents[metrics]')")
    return prometheus_client.generate_latest(REGISTRY), prometheus_client.CONTENT_TYPE_LATEST
