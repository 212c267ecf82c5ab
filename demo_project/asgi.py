"""ASGI entry point: Django for HTTP (static files included, it is a demo), pgevents for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from pgevents.routing import http_application, websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application(ASGIStaticFilesHandler(django_asgi)),
        "websocket": websocket_application(),
    }
)
