"""``{% load pgevents_signing %}`` — ``{% pgevents_signed "people" %}`` renders a channel token.

Kept apart from ``pgevents`` tags so pages that never sign channels load nothing extra.
"""

from __future__ import annotations

import json
from typing import Any

from django import template

from pgevents.signing import sign_channel

register = template.Library()


@register.simple_tag(takes_context=True)
def pgevents_signed(context: dict[str, Any], channel: str, filter: str | dict[str, Any] | None = None) -> str:
    """A token for ``channel`` bound to the request's user; ``filter`` (a dict or JSON text)
    is fixed into it, so the page cannot widen its subscription."""
    request = context.get("request")
    user = getattr(request, "user", None)
    spec = json.loads(filter) if isinstance(filter, str) else filter
    return sign_channel(channel, filter=spec, user=user)
