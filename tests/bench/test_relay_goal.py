"""bench/relay_goal.py: which relay bench results meet the goal, and which fail the bench."""

import pytest

from bench.relay_goal import goal_verdict, integrity_problems


@pytest.mark.parametrize(
    ("p50", "p99", "spread", "fails", "verdict"),
    [
        (1.2, 4.1, 1.0, False, "met"),
        (5.0, 25.0, 1.0, False, "met"),
        (5.1, 4.0, 1.0, True, "missed"),
        (1.2, 25.5, 1.0, True, "missed"),
        (56.5, 80.0, 0.0, False, "missed"),
        (1.0, 2.0, 0.0, False, "met"),
    ],
)
def test_the_goal_at_200_streams_fails_the_bench_only_for_spread_sends(
    p50, p99, spread, fails, verdict
):
    counts, line = goal_verdict(p50, p99, 200, spread)
    assert counts is fails
    assert line.endswith(verdict) or f": {verdict} (" in line
    assert ("one instant" in line) is (spread == 0)


def test_levels_under_the_goal_get_no_verdict():
    assert goal_verdict(90.0, 300.0, 50, 1.0) == (False, "")


def test_lost_duplicated_or_garbled_frames_and_failures_are_named():
    clean = {"failed": 0, "lost_frames": 0, "duplicated_frames": 0, "text_mismatches": 0}
    assert integrity_problems([clean, clean]) == []
    bad = {**clean, "lost_frames": 2, "text_mismatches": 1}
    assert integrity_problems([clean, bad, {**clean, "failed": 1}]) == [
        "1 failed streams",
        "2 lost frames",
        "1 streamed texts unlike the stored ones",
    ]
