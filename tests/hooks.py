"""Hooks the test settings point at."""

from __future__ import annotations

from typing import Any


def own_rows(user: Any, channel: str) -> dict[str, Any] | bool | None:
    """ROW_POLICY: on ``sec.owned`` a user sees only rows they own; other channels are open."""
    if channel != "sec.owned":
        return None
    if not user.is_authenticated:
        return False
    return {"owner_id": user.pk}
