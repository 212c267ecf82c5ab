"""An ASGI application whose WebSocket routes skip the origin check (for pgevents.W003)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter

from pgevents.routing import websocket_urlpatterns

application = ProtocolTypeRouter({"websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns))})
