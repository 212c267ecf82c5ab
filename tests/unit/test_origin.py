"""The default WebSocket origin check: the handshake's own origin, or a CSRF-trusted one."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from pgevents.delivery.origin import allowed


def handshake(origin: str | None, host: str = "127.0.0.1:8101", scheme: str = "ws", **headers: str) -> dict[str, Any]:
    pairs = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    pairs += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "websocket", "scheme": scheme, "server": ("127.0.0.1", 8101), "headers": pairs}


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://127.0.0.1:8101", True),  # the page's own origin
        ("https://127.0.0.1:8101", False),  # another scheme
        ("http://127.0.0.1:6666", False),  # another app on the same host
        ("http://127.0.0.1", False),  # port 80 is another origin
        ("http://localhost:8101", False),  # another host name (even if ALLOWED_HOSTS lists it)
        ("http://evil.example", False),
        ("null", False),  # sandboxed frames, file:// pages
        (None, False),  # no Origin at all
        ("http://127.0.0.1:8101, http://evil.example", False),
    ],
)
def test_only_the_handshakes_own_origin_is_accepted(origin: str | None, expected: bool) -> None:
    with override_settings(ALLOWED_HOSTS=["127.0.0.1", "localhost"]):
        assert allowed(handshake(origin)) is expected


def test_secure_handshakes_and_tls_proxies() -> None:
    with override_settings(ALLOWED_HOSTS=["example.com"]):
        assert allowed(handshake("https://example.com", "example.com", "wss"))
        assert not allowed(handshake("http://example.com", "example.com", "wss"))
        # Behind a TLS proxy daphne sees ws://; Django's SECURE_PROXY_SSL_HEADER says what it was.
        assert not allowed(handshake("https://example.com", "example.com", x_forwarded_proto="https"))
        with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
            assert allowed(handshake("https://example.com", "example.com", x_forwarded_proto="https"))


def test_a_host_django_would_refuse_is_refused() -> None:
    with override_settings(ALLOWED_HOSTS=["example.com"], DEBUG=False):
        assert not allowed(handshake("http://evil.example", "evil.example"))


def test_csrf_trusted_origins_are_accepted() -> None:
    trusted = ["https://app.example.com", "https://*.example.org"]
    with override_settings(ALLOWED_HOSTS=["api.example.com"], CSRF_TRUSTED_ORIGINS=trusted):
        assert allowed(handshake("https://app.example.com", "api.example.com", "wss"))
        assert allowed(handshake("https://a.example.org", "api.example.com", "wss"))
        assert not allowed(handshake("http://a.example.org", "api.example.com", "wss"))
        assert not allowed(handshake("https://app.example.com:444", "api.example.com", "wss"))


header_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.none() | header_text, header_text, st.sampled_from(["ws", "wss", "http", ""]))
def test_any_handshake_gets_a_yes_or_no(origin: str | None, host: str, scheme: str) -> None:
    scope = {
        "type": "websocket",
        "scheme": scheme,
        "headers": [(b"host", host.encode("latin-1"))]
        + ([(b"origin", origin.encode("latin-1"))] if origin is not None else []),
    }
    assert allowed(scope) in (True, False)
