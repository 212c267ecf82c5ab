"""The polling listener's pause between looks (``pgevents.capture.pacing``), without a database."""

from __future__ import annotations

import pytest

from pgevents.capture.pacing import Pacing


def test_a_look_that_found_one_event_or_none_is_followed_at_once() -> None:
    pacing = Pacing(0.5, 0.001)
    assert pacing.pause(0, 0.0008) == 0.0
    assert pacing.pause(1, 0.0008) == 0.0  # an isolated commit, or a stream the looks keep up with


def test_the_pause_grows_with_the_batch_and_with_what_the_look_took() -> None:
    pacing = Pacing(0.5, 0.001)
    assert pacing.pause(2, 0.0008) == pytest.approx(0.0002)
    assert pacing.pause(4, 0.0008) == pytest.approx(0.0003)
    assert pacing.pause(4, 0.0016) == pytest.approx(0.0006)  # a slower database: fewer looks


def test_the_pause_never_exceeds_the_cap() -> None:
    assert Pacing(0.5, 0.001).pause(1000, 0.05) == 0.001
    assert Pacing(2.0, 0.003).pause(1000, 0.05) == 0.003


def test_factor_zero_looks_again_at_once() -> None:
    assert Pacing(0.0, 0.001).pause(1000, 0.05) == 0.0


def test_a_clock_that_went_backwards_gives_no_pause() -> None:
    assert Pacing(0.5, 0.001).pause(10, -0.002) == 0.0


@pytest.mark.parametrize(("factor", "cap"), [(-0.1, 0.001), (0.5, -0.001)])
def test_negative_settings_are_refused(factor: float, cap: float) -> None:
    with pytest.raises(ValueError, match="at least 0"):
        Pacing(factor, cap)
