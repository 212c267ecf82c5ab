"""Token bucket, signed channel tokens and the column lookup's parsing (no network)."""

from __future__ import annotations

import json
import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import signing as django_signing
from django.test import override_settings

from pgevents import signing
from pgevents.core.limits import TokenBucket
from pgevents.store import columns


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_bursts_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token back
    assert bucket.take() and not bucket.take()
    clock.now += 100  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


class User:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


def test_signed_token_round_trip_and_binding() -> None:
    token = signing.sign_channel("sec.signed.a", filter={"owner_id": 1}, user=User(1))
    grant = signing.verify(token, "sec.signed.a", User(1))
    assert grant.filter == {"owner_id": 1}
    with pytest.raises(signing.BadToken, match="another channel"):
        signing.verify(token, "sec.signed.b", User(1))
    with pytest.raises(signing.BadToken, match="another user"):
        signing.verify(token, "sec.signed.a", User(2))
    with pytest.raises(signing.BadToken, match="another user"):
        signing.verify(token, "sec.signed.a", AnonymousUser())
    anonymous = signing.sign_channel("sec.signed.a", user=AnonymousUser())
    assert signing.verify(anonymous, "sec.signed.a", User(3)).filter is None


@pytest.mark.parametrize("bad", ["", "garbage", "a:b:c", 5, None, "x" * 5000])
def test_malformed_tokens_are_refused(bad: object) -> None:
    with pytest.raises(signing.BadToken):
        signing.verify(bad, "sec.signed.a", AnonymousUser())


def test_forged_and_foreign_tokens_are_refused() -> None:
    token = signing.sign_channel("sec.signed.a")
    value, _, sig = token.rpartition(":")
    with pytest.raises(signing.BadToken):
        signing.verify(f"{value}:{sig[:-2]}xx", "sec.signed.a", AnonymousUser())
    other_salt = django_signing.dumps({"c": "sec.signed.a"}, salt="something.else")
    with pytest.raises(signing.BadToken):
        signing.verify(other_salt, "sec.signed.a", AnonymousUser())
    with override_settings(SECRET_KEY="another-key"), pytest.raises(signing.BadToken):
        signing.verify(token, "sec.signed.a", AnonymousUser())


def test_expired_tokens_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    token = signing.sign_channel("sec.signed.a")
    with override_settings(PGEVENTS={"SIGNATURE_MAX_AGE": 10}):
        signing.verify(token, "sec.signed.a", AnonymousUser())
        later = time.time() + 60
        monkeypatch.setattr(time, "time", lambda: later)
        with pytest.raises(signing.BadToken, match="expired"):
            signing.verify(token, "sec.signed.a", AnonymousUser())


def test_trigger_configuration_decides_the_visible_columns() -> None:
    cols = ["id", "name", "password", "email"]
    assert columns.visible({"exclude": ["password"]}, cols) == {"id", "name", "email"}
    assert columns.visible({"include": ["id", "email"]}, cols) == {"id", "email"}
    config = json.dumps({"channel": "c", "exclude": ["password"]}).encode() + b"\x00"
    assert columns.parse_config(config) == {"channel": "c", "exclude": ["password"]}
    assert columns.parse_config(b"not json\x00") is None
