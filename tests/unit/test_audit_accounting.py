"""The audit's proof (connector/audit/accounting.py): gaps, replays, mismatches and dead letters
on random trails, against a count by brute force; what of a partition it can prove (scope.py),
and how the report says it (render.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from connector.audit.accounting import DeadLetter, PartitionReport, Verification, account, runs, verification_from_json
from connector.audit.render import as_json, print_report, verdict
from connector.audit.scope import Mode, PartitionState, Scope, caught_up, plan

STATUSES = ("verified", "partial", "mismatch", "skipped")


def verification(order: int, ranges: list[tuple[int, int]], status: str = "verified", applied: int = 1,
                 dead: frozenset[tuple[int, int]] = frozenset(), topic: str = "t") -> Verification:
    return Verification(batch_id=f"b{order}", topic=topic, ranges=tuple((0, a, b) for a, b in ranges), status=status,
                        applied_event_count=applied, dead_letters=dead, dead_letter_count=len(dead), order=(order,))


def flat(runs_: list[tuple[int, int]]) -> set[int]:
    return {o for a, b in runs_ for o in range(a, b + 1)}


@st.composite
def trails(draw: st.DrawFn) -> tuple[int, list[Verification]]:
    size = draw(st.integers(0, 60))
    spans = draw(st.lists(st.tuples(st.integers(0, 70), st.integers(0, 8), st.sampled_from(STATUSES)), max_size=25))
    return size, [verification(i, [(a, a + n)], status) for i, (a, n, status) in enumerate(spans)]


@given(trails())
def test_gaps_and_replays_are_what_a_count_finds(trail: tuple[int, list[Verification]]) -> None:
    size, verifications = trail
    report = account("t", 0, 0, size, verifications, [])
    covers = {o: [v for v in verifications if any(a <= o <= b for _, a, b in v.ranges)] for o in range(size)}
    assert flat(report.gaps) == {o for o, c in covers.items() if not c}
    assert report.replayed == sum(1 for c in covers.values() if len(c) > 1)
    assert flat(report.mismatches) == {o for o, c in covers.items() if c and c[-1].status == "mismatch"}
    assert report.complete() == (not report.gaps and not report.mismatches)
    assert report.applied + report.unchanged + len(flat(report.unverified)) + len(flat(report.gaps)) == size


def test_the_latest_word_counts_and_dead_letters_must_be_on_their_topic() -> None:
    first = verification(1, [(0, 9)], "mismatch")
    replay = verification(2, [(0, 9)], "verified", dead=frozenset({(0, 3), (0, 4)}))
    report = account("t", 0, 0, 12, [replay, first], [DeadLetter("t", 0, 3, "invalid_json")])
    assert report.replayed == 10
    assert report.mismatches == []  # the replay's read-back matched
    assert report.dead_lettered == {"invalid_json": 1}
    assert report.missing_dead_letters == [(4, 4)]
    assert report.gaps == [(10, 11)]
    assert report.applied == 8
    assert not report.complete()


def test_other_topics_and_partitions_are_not_counted() -> None:
    other = verification(1, [(0, 5)], topic="other")
    report = account("t", 0, 0, 6, [other], [DeadLetter("t", 1, 0, "invalid_json")])
    assert report.gaps == [(0, 5)]


def test_verification_off_is_reported_and_fails_only_when_strict() -> None:
    report = account("t", 0, 0, 3, [verification(1, [(0, 2)], "skipped", applied=3)], [])
    assert report.unverified == [(0, 2)]
    assert report.complete()
    assert not report.complete(strict=True)
    nothing_applied = account("t", 0, 0, 3, [verification(1, [(0, 2)], "skipped", applied=0)], [])
    assert nothing_applied.unchanged == 3
    assert nothing_applied.complete(strict=True)


def test_runs_and_records_of_other_kinds() -> None:
    assert runs([7, 1, 2, 3]) == [(1, 3), (7, 7)]
    assert verification_from_json({"kind": "fence"}, ()) is None


# What the audit can prove of a partition (connector/audit/scope.py) and how it says so (render.py).

def state(start: int, log_end: int, committed: int | None) -> PartitionState:
    return PartitionState("t", 0, start, log_end, committed)


@given(st.integers(0, 50), st.integers(0, 50), st.none() | st.integers(0, 60), st.sampled_from(["committed", "end",
                                                                                                "wait"]))
def test_what_is_not_proven_is_behind_and_nothing_proven_of_records_asked_for_is_never_complete(
        start: int, log_end: int, committed: int | None, mode: Mode) -> None:
    scope = plan(state(start, log_end, committed), mode, "g", waited=1.0)
    assert start <= scope.end <= max(start, log_end)
    assert scope.end + scope.behind == max(start, log_end)
    if scope.end == start and log_end > start:  # records asked for, none of them proven
        assert scope.reason is not None
    if mode == "wait" and scope.behind:
        assert scope.reason is not None  # --wait promises the log end: short of it is incomplete


def test_a_group_that_committed_nothing_proves_nothing_and_says_so() -> None:
    scope = plan(state(0, 15, None), "committed", "qcc-typo", None)
    assert (scope.start, scope.end, scope.behind) == (0, 0, 15)
    assert scope.reason == "no commits by group qcc-typo"
    report = account("t", 0, scope.start, scope.end, [], [], behind=scope.behind, unproven=scope.reason)
    assert not report.complete()
    nothing_produced = plan(state(0, 0, None), "committed", "qcc-typo", None)
    assert nothing_produced.reason is None  # an empty partition has nothing to prove
    assert nothing_produced.behind == 0


def test_commits_before_the_start_asked_for_prove_nothing_of_it() -> None:
    # --since after the group's last commit: 300 records in range, none of them committed
    scope = plan(state(120, 420, 100), "committed", "g", None)
    assert (scope.end, scope.behind) == (120, 300)
    assert scope.reason == "group g committed nothing from offset 120 on (its commits end at offset 100)"
    assert plan(state(120, 420, 120), "committed", "g", None).reason is not None


def test_commits_short_of_the_log_end_prove_up_to_them_and_count_the_rest_behind() -> None:
    scope = plan(state(0, 420, 400), "committed", "g", None)
    assert (scope.end, scope.behind, scope.reason) == (400, 20, None)
    assert plan(state(0, 420, 400), "end", "g", None) == Scope(0, 420, 0, None)


def test_wait_proves_up_to_the_log_end_or_says_how_far_the_commits_got() -> None:
    assert caught_up(state(0, 420, 420))
    assert plan(state(0, 420, 430), "wait", "g", 3.0) == Scope(0, 420, 0, None)  # the end as it was at the start
    short = plan(state(0, 420, 400), "wait", "g", 3.0)
    assert (short.end, short.behind) == (400, 20)
    assert short.reason == "group g committed up to offset 400, not the log end 420 after waiting 3.0 s"
    assert plan(state(0, 420, None), "wait", "g", 3.0).reason == "no commits by group g after waiting 3.0 s"


def rendered(reports: list[PartitionReport]) -> list[str]:
    console = Console(record=True, width=200, force_terminal=False)
    print_report(console, reports, strict=False, unreadable=0, group="g")
    return console.export_text().splitlines()


def test_a_gap_of_offset_0_is_shown_as_offset_0_and_no_gap_as_none() -> None:
    gap_at_0 = account("t", 0, 0, 2, [verification(1, [(1, 1)])], [])
    clean = account("t", 0, 0, 2, [verification(1, [(0, 1)])], [])
    lines = rendered([gap_at_0, clean])
    rows = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    columns = [cell.strip() for cell in next(line for line in lines if "gaps" in line).split("┃")[1:-1]]
    gaps, complete = columns.index("gaps"), columns.index("complete")
    assert [row[gaps].strip() for row in rows] == ["0", "-"]
    assert [row[complete].strip() for row in rows] == ["NO", "yes"]


def test_the_first_and_last_lines_say_the_verdict() -> None:
    unproven = account("t", 0, 0, 0, [], [], behind=15, unproven="no commits by group g")
    lines = [line for line in rendered([unproven]) if line.strip()]
    assert "INCOMPLETE" in lines[0]
    assert "every" not in lines[0]
    assert "t[0]: no commits by group g" in lines
    assert lines[-1] == "trail INCOMPLETE: 1 of 1 partitions not proven"
    behind = account("t", 0, 0, 2, [verification(1, [(0, 1)])], [], behind=3)
    assert verdict([behind], strict=False, group="g").startswith("trail complete up to the commits of group g")
    caught_up_report = account("t", 0, 0, 2, [verification(1, [(0, 1)])], [])
    assert verdict([caught_up_report], strict=False, group="g").startswith(
        "trail complete: every offset up to the log end")


def test_the_verdict_never_says_verified_of_offsets_applied_without_verification() -> None:
    # offsets 0-1 verified, 2-4 applied with QCC_VERIFY_AFTER_APPLY off: complete without --strict, not verified
    trail = [verification(1, [(0, 1)]), verification(2, [(2, 4)], "skipped", applied=3)]
    caught_up = account("t", 0, 0, 5, trail, [])
    off = "(3 without verification: QCC_VERIFY_AFTER_APPLY was off)"
    assert verdict([caught_up], strict=False, group="g") == (
        f"trail complete: every offset up to the log end applied {off} or dead-lettered")
    assert verdict([account("t", 0, 0, 5, trail, [], behind=2)], strict=False, group="g") == (
        f"trail complete up to the commits of group g: every offset before them applied {off} or dead-lettered; "
        "2 records after them not proven (--wait proves them)")
    assert verdict([account("t", 0, 0, 2, trail, [])], strict=False, group="g") == (
        "trail complete: every offset up to the log end applied in a verified batch or dead-lettered")
    report = as_json([caught_up], strict=False, unreadable=0, group="g")
    assert (report["complete"], report["unverified"]) == (True, 3)
    assert off in report["verdict"]
    lines = [line for line in rendered([caught_up]) if line.strip()]
    assert off in lines[0]
    assert off in lines[-1]
    assert verdict([caught_up], strict=True, group="g") == "trail INCOMPLETE: 1 of 1 partitions not proven"


def test_the_json_carries_the_verdict_the_reasons_and_behind() -> None:
    unproven = account("u", 0, 0, 0, [], [], behind=15, unproven="no commits by group g")
    gap = account("t", 0, 0, 3, [verification(1, [(0, 1)])], [], behind=2)
    report = as_json([unproven, gap], strict=False, unreadable=0, group="g")
    assert report["complete"] is False
    assert report["verdict"] == "trail INCOMPLETE: 2 of 2 partitions not proven"
    assert report["behind"] == 17
    assert [p["reasons"] for p in report["partitions"]] == [["no commits by group g"],
                                                            ["no verification event covers offsets 2"]]
    assert [p["behind"] for p in report["partitions"]] == [15, 2]


def test_batches_that_say_a_point_is_not_as_its_source_has_it_are_noted_not_failed() -> None:
    record = {"kind": "verification", "batch_id": "b7", "topic": "t", "status": "verified",
              "ranges": [{"partition": 0, "first_offset": 0, "last_offset": 2}], "applied_event_count": 3,
              "verification": {"status": "verified", "unavailable_count": 4}, "texts_cut_count": 1}
    noted = verification_from_json(record, (1,))
    assert noted is not None
    replaced = verification(2, [(2, 2)])  # a later word on offset 2 alone: b7 still has the final word on 0-1
    report = account("t", 0, 0, 3, [noted, replaced], [])
    assert report.complete()
    assert report.noted == {"unavailable": {"b7": 4}, "texts_cut": {"b7": 1}}
    lines = rendered([report])
    lacking = "4 points lacking columns their source did not send (Debezium's unavailable-value placeholder)"
    assert f"t[0]: note: {lacking}, in batches b7" in lines
    assert "t[0]: note: 1 texts embedded from their first characters only, in batches b7" in lines
    assert as_json([report], strict=False, unreadable=0, group="g")["partitions"][0]["notes"] == {
        "texts_cut": {"count": 1, "batches": ["b7"]}, "unavailable": {"count": 4, "batches": ["b7"]}}
    superseded = account("t", 0, 0, 3, [noted, verification(3, [(0, 2)])], [])  # a replay's word replaces b7's
    assert superseded.noted == {}
