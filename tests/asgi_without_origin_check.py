"""An ASGI application whose WebSocket routes skip the origin check (for pgevents.W003) and
whose HTTP side does not keep the server's send (for pgevents.W006)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

from pgevents.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {"http": get_asgi_application(), "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns))}
)
