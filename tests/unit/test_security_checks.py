"""System checks for the security settings (registered ones, run through Django)."""

from __future__ import annotations

from django.core.checks import run_checks
from django.test import override_settings


def _ids() -> set[str]:
    return {m.id for m in run_checks() if m.id and m.id.startswith("pgevents.")}


def test_the_test_settings_pass() -> None:
    assert not {i for i in _ids() if i in {"pgevents.E005", "pgevents.E006", "pgevents.W002"}}


def test_hooks_that_cannot_be_imported_are_errors() -> None:
    with override_settings(PGEVENTS={"CHANNELS": ["x"], "AUTHORIZE": "nowhere.hook"}):
        assert "pgevents.E006" in _ids()
    with override_settings(PGEVENTS={"CHANNELS": ["x"], "AUTHORIZE": {"x": "pgevents.policy.nope"}}):
        assert "pgevents.E006" in _ids()
    with override_settings(PGEVENTS={"CHANNELS": ["x"], "ROW_POLICY": "tests.hooks.missing"}):
        assert "pgevents.E006" in _ids()
    with override_settings(PGEVENTS={"CHANNELS": ["x"], "ROW_POLICY": "tests.hooks.own_rows"}):
        assert "pgevents.E006" not in _ids()


def test_an_origin_check_open_to_every_site_is_a_warning() -> None:
    # ALLOWED_HOSTS = ["*"] no longer opens it: without ALLOWED_ORIGINS only the site's own
    # origin (and CSRF_TRUSTED_ORIGINS) is accepted, whatever Host the handshake names.
    with override_settings(ALLOWED_HOSTS=["*"], PGEVENTS={"CHANNELS": ["x"]}):
        assert "pgevents.W002" not in _ids()
    with override_settings(ALLOWED_HOSTS=["*"], PGEVENTS={"CHANNELS": ["x"], "ALLOWED_ORIGINS": ["https://a.example"]}):
        assert "pgevents.W002" not in _ids()
    with override_settings(PGEVENTS={"CHANNELS": ["x"], "ALLOWED_ORIGINS": ["*"]}):
        assert "pgevents.W002" in _ids()
