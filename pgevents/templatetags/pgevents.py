"""``{% load pgevents %}`` — ``{% pgevents_script %}`` emits the client and its configuration."""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def pgevents_script(channels: str = "", url: str = "/ws/pgevents/") -> str:
    """The client script; it connects and binds every ``data-pgevents-channel`` region.

    ``channels`` (comma-separated) subscribes to channels without a region, for pages that
    listen for ``pgevents:<channel>`` DOM events themselves.
    """
    return format_html(
        '<script src="{}" data-pgevents-url="{}" data-pgevents-channels="{}" defer></script>',
        static("pgevents/pgevents.js"),
        url,
        channels,
    )
