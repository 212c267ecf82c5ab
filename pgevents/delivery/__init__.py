"""What runs in each ASGI server process: the hub, subscriptions, WebSocket and SSE faces, live regions."""
