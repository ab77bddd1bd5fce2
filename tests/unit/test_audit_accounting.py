"""The audit's proof (connector/audit/accounting.py): gaps, replays, mismatches and dead letters
on random trails, against a count by brute force."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.audit.accounting import DeadLetter, Verification, account, runs, verification_from_json

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
