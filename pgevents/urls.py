"""HTTP routes: ``path("pgevents/", include("pgevents.urls"))``."""

from django.urls import re_path

from . import views

app_name = "pgevents"

urlpatterns = [
    re_path(r"^sse/(?P<channel>[^/]+)/$", views.sse, name="sse"),
]
