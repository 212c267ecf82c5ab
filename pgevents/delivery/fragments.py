"""``GET fragments/?u=/a/&u=/b/``: the HTML of several of the page's URLs in one request.

Per-user regions (their HTML depends on who looks) cannot be rendered once for everybody,
but a page need not ask once per region and row either: the client gathers every URL its
regions need within a short, jittered window and asks for all of them here. Each URL is
rendered by the project's own view through its middleware, with the asking request's
cookies, as the browser's own ``fetch`` would have been; the answer is JSON,
``{"fragments": [{"url": …, "status": 200, "html": "…"}, …]}``, in the order asked.

Only same-site paths are accepted (``/…``, not ``//host``), at most ``MAX_URLS`` of them, and
never this endpoint itself.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from pgevents.delivery.render import render_path

#: Most URLs one request may ask for (a page's regions and the rows of one burst fit).
MAX_URLS = 32


def _error(message: str) -> JsonResponse:
    return JsonResponse({"type": "error", "code": "bad_request", "message": message}, status=400)


def fragments(request: HttpRequest) -> HttpResponse:
    """Sync on purpose: each fragment is a sync request through the middleware, rendered in
    the thread Django gives sync views, one after the other."""
    if request.method != "GET":
        return _error("use GET")
    urls = request.GET.getlist("u")
    if not urls or len(urls) > MAX_URLS:
        return _error(f"give 1 to {MAX_URLS} u= paths")
    for url in urls:
        if not url.startswith("/") or url.startswith("//") or "\\" in url:
            return _error(f"not a path of this site: {url!r}")
        if url.split("?", 1)[0] == request.path:
            return _error("fragments cannot be asked for themselves")
    base: dict[str, Any] = {**request.META, "wsgi.url_scheme": request.scheme}
    # The script prefix of this request (a project mounted under /app/): the URLs include it.
    prefix = request.path[: len(request.path) - len(request.path_info)] + "/"
    found = []
    for url in dict.fromkeys(urls):
        rendered = render_path(url, base, kind="fragment", prefix=prefix)
        found.append({"url": url, "status": rendered.status, "html": rendered.html if rendered.status == 200 else ""})
    response = JsonResponse({"fragments": found})
    response["Cache-Control"] = "no-store"
    return response
