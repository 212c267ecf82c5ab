"""Signed channel tokens: a page may subscribe only to what the server rendered for it.

``sign_channel()`` (or ``{% pgevents_signed %}``) issues a token with Django's signing
(``SECRET_KEY``, a salt of its own, a timestamp) naming the channel, optionally a row filter
the subscription must use, and the user it was rendered for. Channels matching
``PGEVENTS["SIGNED_CHANNELS"]`` refuse subscriptions without a valid token; on the others a
token is checked when given. A token for one user is refused to another; a token rendered
for an anonymous visitor is as public as the page that carried it.

``sign_region()`` signs what a *shared* region renders (its row and source URLs), so a page
cannot make the server render URLs of its own choosing in the name of other viewers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core import signing

from pgevents import conf
from pgevents.delivery.render import RegionSpec

SALT = "pgevents.channel"


class BadToken(ValueError):
    """A token that is malformed, forged, expired, or for another channel or user."""


@dataclass(frozen=True)
class Grant:
    """What a valid token allows."""

    channel: str
    filter: dict[str, Any] | None


def _user_key(user: Any) -> str | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


def sign_channel(channel: str, *, filter: dict[str, Any] | None = None, user: Any = None) -> str:
    """A token for ``channel`` (and ``filter``), bound to ``user`` when they are logged in."""
    payload: dict[str, Any] = {"c": channel}
    if filter is not None:
        payload["f"] = filter
    key = _user_key(user)
    if key is not None:
        payload["u"] = key
    return str(signing.dumps(payload, salt=SALT, compress=True))


def _load(token: object, salt: str, channel: str, what: str) -> dict[str, Any]:
    """The signed payload of ``token`` (a ``what``: "token", "region token") for ``channel``."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise BadToken(f"{what} must be a non-empty string")
    try:
        payload = signing.loads(token, salt=salt, max_age=timedelta(seconds=conf.get().signature_max_age))
    except signing.SignatureExpired:
        raise BadToken(f"{what} has expired; reload the page") from None
    except (signing.BadSignature, ValueError):
        raise BadToken(f"{what} is not valid") from None
    if not isinstance(payload, dict) or payload.get("c") != channel:
        raise BadToken(f"{what} is for another channel")
    return payload


def verify(token: object, channel: str, user: Any) -> Grant:
    """The grant in ``token`` for ``channel`` and ``user``; ``BadToken`` when it is not valid."""
    payload = _load(token, SALT, channel, "token")
    if "u" in payload and payload["u"] != _user_key(user):
        raise BadToken("token is for another user")
    flt = payload.get("f")
    return Grant(channel, flt if isinstance(flt, dict) else None)


# -- shared regions ------------------------------------------------------------------------
REGION_SALT = "pgevents.region"


def sign_region(spec: RegionSpec) -> str:
    """A token naming what to render for a shared region; not bound to a user: the HTML is
    the same for everyone the channel's policy admits."""
    payload = {"c": spec.channel, "r": spec.row, "k": spec.key, "s": spec.src}
    if spec.name is not None:
        payload["n"] = spec.name
    if spec.prefix != "/":
        payload["p"] = spec.prefix
    return str(signing.dumps(payload, salt=REGION_SALT, compress=True))


def verify_region(token: object, channel: str) -> RegionSpec:
    """The region in ``token`` for ``channel``; ``BadToken`` when it is not valid."""
    payload = _load(token, REGION_SALT, channel, "region token")
    row, key, src, name = payload.get("r"), payload.get("k"), payload.get("s"), payload.get("n")
    prefix = payload.get("p", "/")
    if (
        not isinstance(prefix, str)
        or not (row is None or isinstance(row, str))
        or not isinstance(key, str)
        or not (src is None or isinstance(src, str))
        or not (name is None or isinstance(name, str))
    ):
        raise BadToken("region token is not valid")
    return RegionSpec(channel, row, key, src, name, prefix)
