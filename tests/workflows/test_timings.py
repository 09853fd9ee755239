"""The split of a campaign's time (workflows/timings.py) on hand-made timelines."""

from __future__ import annotations

import pytest

from faceloop.workflows.timings import (
    ActivitySpan,
    RunTimeline,
    overlap,
    stage_timings,
    time_split,
    union_length,
)


def test_union_and_overlap() -> None:
    assert union_length([(0, 2), (1, 3), (5, 6)]) == 4
    assert union_length([]) == 0
    assert overlap((1, 4), [(0, 2), (3, 10)]) == 2


def campaign(cid: str, gen: tuple[float, float, float], attempt: int = 1) -> RunTimeline:
    """0-1 propose, generate scheduled/started/closed as given, a 2 s timer, learn."""
    g_sched, g_start, g_end = gen
    return RunTimeline(
        campaign_id=cid,
        start=0.0,
        end=g_end + 4.0,
        activities=[
            ActivitySpan(cid, "propose", "main", 0.1, 0.2, 1.0, 1, "completed"),
            ActivitySpan(cid, "generate", "gpu", g_sched, g_start, g_end, attempt, "completed"),
            ActivitySpan(
                cid, "learn", "main", g_end + 2.2, g_end + 2.3, g_end + 3.9, 1, "completed"
            ),
        ],
        timers=[(g_end + 0.1, g_end + 2.1)],
        workflow_tasks=[(0.0, 0.1), (1.0, 1.1), (g_end, g_end + 0.1), (g_end + 2.1, g_end + 2.2)],
    )


def test_split_separates_work_waits_slot_and_orchestration() -> None:
    a = campaign("a", (1.1, 1.2, 5.0))
    # b waits while a generates (the GPU queue runs one at a time): 1.2-5.0 is slot wait
    b = campaign("b", (1.1, 5.1, 9.0))
    split = time_split([a, b], {"a": 4, "b": 4}, single_slot_queues={"gpu"})
    assert split.wall_s == pytest.approx(9.0 + 13.0)
    assert split.timers_s == pytest.approx(4.0)
    assert split.slot_wait_s == pytest.approx(3.8)
    assert split.recovery_s == 0
    assert split.activities_s == pytest.approx((0.8 + 3.8 + 1.6) + (0.8 + 3.9 + 1.6))
    rest = split.wall_s - split.activities_s - split.timers_s - split.slot_wait_s
    assert split.orchestration_s == pytest.approx(rest)
    assert split.orchestration_share == pytest.approx(rest / (rest + split.activities_s), abs=1e-4)
    assert split.per_variant_wall_s == pytest.approx(22.0 / 8)


def test_a_retried_activity_counts_as_recovery() -> None:
    crashed = campaign("c", (1.1, 61.1, 65.0), attempt=2)
    split = time_split([crashed], {"c": 4}, single_slot_queues={"gpu"})
    assert split.recovery_s == pytest.approx(60.0)
    assert split.orchestration_s < 1.0
    stages = {s.stage: s for s in stage_timings([crashed])}
    assert stages["generate"].retried == 1
    assert [s.stage for s in stage_timings([crashed])] == ["propose", "generate", "learn"]


def test_overlapping_steps_of_one_campaign_count_once() -> None:
    """A round's analysis still running beside the next round (round-tail-beside-next-round)
    can overlap a review timer or a GPU slot wait of that round: those seconds are neither
    orchestration nor subtracted twice."""
    a = campaign("a", (1.1, 1.2, 5.0))
    b = campaign("b", (1.1, 5.1, 9.0))
    # b's analysis of the previous round runs 2.0-6.0: over its slot wait (1.2-5.1) and into
    # its generation; a's runs 6.0-8.0, inside a's timer (5.1-7.1) and learn's gap after it
    b.activities.append(ActivitySpan("b", "analyze", "main", 2.0, 2.0, 6.0, 1, "completed"))
    a.activities.append(ActivitySpan("a", "analyze", "main", 6.0, 6.0, 8.0, 1, "completed"))
    split = time_split([a, b], {"a": 4, "b": 4}, single_slot_queues={"gpu"})
    # a: wall 0-9; covered: propose 0.2-1.0, generate 1.2-5.0, then timer 5.1-7.1, analyze
    # 6.0-8.0 and learn 7.3-8.9 as one 5.1-8.9 -> 0.8 + 3.8 + 3.8 = 8.4; b: wall 0-13;
    # covered: propose 0.2-1.0, slot wait 1.2-5.0, analyze 2.0-6.0 and generate 5.1-9.0 as
    # one 1.2-9.0, timer 9.1-11.1, learn 11.3-12.9 -> 0.8 + 7.8 + 2.0 + 1.6 = 12.2 (the
    # old sum subtracted b's analyze/slot overlap and a's analyze/timer overlap twice)
    assert split.orchestration_s == pytest.approx((9.0 - 8.4) + (13.0 - 12.2))
    assert split.slot_wait_s == pytest.approx(3.8)
