"""The chaos run's pure parts: its schedule is reproducible, and its verdict catches every
kind of failure it reports (a checker that cannot fail would prove nothing)."""

from __future__ import annotations

import pytest

from chaos import plan, verdict
from chaos.schema import payload


def _got(*items: tuple[int, str, int], intact: bool = True, at: float = 0.0) -> list[tuple[int, str, int, bool, float]]:
    return [(id_, k, rev, intact, at) for id_, k, rev in items]


EXPECTED = {("a", 0), ("b", 0), ("a", 1)}


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    cfg = plan.Config(duration=300, seed=7)
    assert plan.faults(cfg) == plan.faults(plan.Config(duration=300, seed=7))
    assert plan.faults(cfg) != plan.faults(plan.Config(duration=300, seed=8))
    drops = [plan.Drops.for_client(cfg, "sse-1").next() for _ in range(2)]
    assert drops[0] == drops[1]  # each client draws from its own generator, from the start
    first, again = plan.Drops.for_client(cfg, "sse-1"), plan.Drops.for_client(cfg, "sse-1")
    assert [first.next() for _ in range(5)] == [again.next() for _ in range(5)]


def test_every_fault_kind_comes_up_before_any_repeats_and_none_at_the_very_end() -> None:
    for seed in range(20):
        cfg = plan.Config(duration=25, fault_every=3.5, seed=seed)
        schedule = plan.faults(cfg)
        assert {f.kind for f in schedule[: len(plan.FAULT_KINDS)]} == set(plan.FAULT_KINDS), seed
        assert all(f.at < cfg.duration - 2 for f in schedule)
    only = plan.faults(plan.Config(duration=100, kinds=("redis-restart",)))
    assert only and {f.kind for f in only} == {"redis-restart"}
    assert plan.faults(plan.Config(kinds=())) == []


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        plan.Config(kinds=("pg-unplug",))
    with pytest.raises(ValueError, match="layer"):
        plan.Config(layer="memory")


def test_a_stream_with_every_change_once_in_order_is_clean() -> None:
    t = verdict.judge(_got((1, "a", 0), (2, "b", 0), (5, "a", 1)), EXPECTED)
    assert t == verdict.Tally(streams=1, expected=3, received=3)
    assert t.clean


def test_a_missing_change_is_lost() -> None:
    t = verdict.judge(_got((1, "a", 0), (5, "a", 1)), EXPECTED)
    assert (t.lost, t.clean) == (1, False)


def test_a_change_received_twice_is_a_duplicate_even_under_a_new_id() -> None:
    t = verdict.judge(_got((1, "a", 0), (2, "b", 0), (2, "b", 0), (5, "a", 1), (6, "a", 1)), EXPECTED)
    assert (t.duplicated, t.lost, t.out_of_order) == (2, 0, 0)


def test_a_lower_id_after_a_higher_one_or_an_older_revision_after_a_newer_is_out_of_order() -> None:
    assert verdict.judge(_got((2, "b", 0), (1, "a", 0), (5, "a", 1)), EXPECTED).out_of_order == 1
    # ids increase, but the row's revisions arrive backwards
    assert verdict.judge(_got((1, "b", 0), (2, "a", 1), (3, "a", 0)), EXPECTED).out_of_order == 1


def test_a_client_that_joined_late_is_owed_what_was_committed_after_it_subscribed() -> None:
    changes = {("chaos_a", "a", 0), ("chaos_a", "b", 0), ("chaos_a", "a", 1), ("chaos_a", "fence", 0)}
    sent_at = {("chaos_a", "a", 0): 1.0, ("chaos_a", "b", 0): 2.0, ("chaos_a", "a", 1): 3.0}
    owed = verdict.owed_to(2.5, changes, sent_at)
    assert owed == {("a", 1), ("fence", 0)}
    assert verdict.owed_to(None, changes, sent_at) == set()
    optional = {("a", 0), ("b", 0)}
    # an earlier change may arrive (it counts as expected then) or not; once, in order
    assert verdict.judge(_got((5, "a", 1), (6, "fence", 0)), owed, optional).clean
    t = verdict.judge(_got((2, "b", 0), (5, "a", 1), (6, "fence", 0)), owed, optional)
    assert (t.expected, t.received, t.clean) == (3, 3, True)
    t = verdict.judge(_got((2, "b", 0), (2, "b", 0), (5, "a", 1)), owed, optional)
    assert (t.duplicated, t.lost) == (1, 1)


def test_a_damaged_row_or_a_change_the_tables_do_not_hold_is_corrupt() -> None:
    assert verdict.judge(_got((1, "a", 0), (2, "b", 0), (5, "a", 1), intact=False), EXPECTED).corrupt == 3
    t = verdict.judge(_got((1, "a", 0), (2, "b", 0), (3, "z", 0), (5, "a", 1)), EXPECTED)
    assert (t.corrupt, t.lost) == (1, 0)


def test_payload_is_exactly_the_size_asked_and_names_key_and_revision() -> None:
    assert len(payload("w1.7", 3, 9000)) == 9000
    assert payload("k", 12, 11) == "k/12;k/12;k"
    assert payload("k", 1, 5) != payload("k", 2, 5)


def _view(kind: str, commits: list[float], arrivals: list[float], away=()) -> verdict.ClientView:  # type: ignore[no-untyped-def]
    owed = [(c, (f"k{i}", 0)) for i, c in enumerate(commits)]
    got = [(i + 1, f"k{i}", 0, True, a) for i, a in enumerate(arrivals) if a != verdict.INF]
    got.sort(key=lambda g: g[4])
    return verdict.ClientView(kind, [verdict.Timed(got, owed)], list(away))


def test_a_gap_closes_when_the_last_late_change_arrives_at_the_slowest_client() -> None:
    fault = 10.0
    fast = _view("sse", [9.9, 10.2, 11.0], [9.91, 10.21, 11.01])
    slow = _view("ws-multi", [9.9, 10.2, 11.0], [9.91, 12.5, 12.6])  # stalled from 10.2 to 12.5
    closed = verdict.closing([fast, slow], fault, verdict.INF)
    assert closed.by_kind == {"sse": 0.0, "ws-multi": pytest.approx(2.6)}
    assert closed.overall == pytest.approx(2.6)
    assert closed.worst_delay == pytest.approx(2.3)
    # a change committed shortly before the next fault belongs to that fault
    assert verdict.closing([slow], fault, 10.6).overall == pytest.approx(0.0)
    assert verdict.closing([slow], fault, 10.8).overall == pytest.approx(2.5)


def test_a_change_held_up_by_its_own_clients_absence_is_not_blamed_on_the_fault() -> None:
    away = _view("ws-single", [10.2], [13.0], away=[(10.1, 12.9)])
    assert verdict.closing([away], 10.0, verdict.INF).overall == 0.0
    lost = _view("ws-single", [10.2], [verdict.INF], away=[(10.1, 12.9)])  # a drop excuses no loss
    assert verdict.closing([lost], 10.0, verdict.INF).overall == verdict.INF


def test_a_resume_is_timed_from_the_reconnect_to_the_last_change_committed_before_it() -> None:
    view = _view("sse", [1.0, 4.0, 4.9, 6.0], [1.01, 5.2, 5.3, 6.01], away=[(3.5, 5.0)])
    assert verdict.resumes(view) == [pytest.approx(0.3)]
    assert verdict.summary([3.0, 1.0, 2.0]) == {"median": 2.0, "p95": 3.0, "p99": 3.0, "max": 3.0}
