"""HTTP routes: ``path("pgevents/", include("pgevents.urls"))``."""

from django.urls import re_path

from pgevents.delivery import fragments, health, sse

app_name = "pgevents"

urlpatterns = [
    re_path(r"^sse/(?P<channel>[^/]+)/$", sse.sse, name="sse"),
    re_path(r"^html/(?P<channel>[^/]+)/$", sse.html, name="html"),
    re_path(r"^fragments/$", fragments.fragments, name="fragments"),
    re_path(r"^health/$", health.health, name="health"),
    re_path(r"^metrics$", health.metrics_view, name="metrics"),
]
