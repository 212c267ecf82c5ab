"""The web side's probes: ``health/`` (JSON, for load balancers) and ``metrics`` (Prometheus).

``health/`` says whether this process' hubs receive from the channel layer (503 while
Redis is unreachable) and how many subscriptions they serve; it names no channel. The
metrics carry channel names, so ``metrics`` answers only the addresses in
``PGEVENTS["METRICS_IPS"]`` (loopback by default): scrape it from the same host or an
internal network.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from pgevents import conf, metrics
from pgevents.delivery.runtime import hubs


async def health(request: HttpRequest) -> HttpResponse:
    running = hubs()
    ok = all(h.layer_ok for h in running)
    body = {
        "status": "ok" if ok else "layer_unavailable",
        "subscriptions": sum(sum(h.count().values()) for h in running),
        "delivered": sum(h.delivered for h in running),
        # Informative only (a web server without a listener still serves pages): ok, stalled, no_listener.
        "pipeline": next((h.pipeline.state for h in running if h.pipeline.state != "ok"), "ok"),
    }
    return JsonResponse(body, status=200 if ok else 503)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.META.get("REMOTE_ADDR") not in conf.get().metrics_ips:
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    try:
        body, content_type = metrics.exposition()
    except RuntimeError as exc:  # pragma: no cover - only without the optional prometheus-client
        return HttpResponse(f"{exc}\n", status=501, content_type="text/plain")
    return HttpResponse(body, content_type=content_type)
