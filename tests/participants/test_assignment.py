from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from studyapp.participants.assignment import assignment_assign, assignment_release
from studyapp.participants.models import AllocationSlot, Participation, Platform, Status
from studyapp.participants.services import participation_consent
from studyapp.studies.models import StudyVersion
from tests.participants.journey import load_reference


def _newcomer(version: StudyVersion, n: int, *, is_test: bool = False) -> Participation:
    return Participation.objects.create(
        study=version.study,
        version=version,
        platform=Platform.PILOT if is_test else Platform.PROLIFIC,
        external_id=f"P{n:04d}",
        is_test=is_test,
    )


def _consent(participation: Participation) -> Participation:
    boxes = participation.version.spec["consent"]["checkboxes"]
    return participation_consent(participation=participation, agreed=range(len(boxes)))


def test_each_permuted_block_holds_every_arm_once(version):
    arms = [_consent(_newcomer(version, i)).condition.name for i in range(9)]
    names = {c.name for c in version.conditions.all()}
    for start in range(0, 9, 3):
        assert set(arms[start:start + 3]) == names
    assert AllocationSlot.objects.filter(version=version).count() == 9
    assert not AllocationSlot.objects.filter(participation__isnull=True).exists()


def test_blocks_follow_the_stored_sequence(version):
    first = _consent(_newcomer(version, 0))
    stored = list(
        AllocationSlot.objects.filter(version=version, block=0)
        .order_by("position")
        .values_list("condition__name", flat=True)
    )
    later = [_consent(_newcomer(version, i)).condition.name for i in (1, 2)]
    assert [first.condition.name, *later] == stored


def test_weights_repeat_an_arm_within_its_block(db):
    version = load_reference(
        slug="weighted",
        conditions=[
            {**c, "weight": w}
            for c, w in zip(load_reference(slug="tmp").spec["conditions"], (2, 1, 1), strict=True)
        ],
    )
    arms = Counter(_consent(_newcomer(version, i)).condition.name for i in range(8))
    assert arms == {"base": 4, "proactive_base": 2, "collabllm": 2}
    assert AllocationSlot.objects.filter(version=version).values("block").distinct().count() == 2


def test_pilot_runs_never_consume_block_slots(version):
    pilot = _consent(_newcomer(version, 0, is_test=True))
    assert pilot.condition.version == version
    assert not AllocationSlot.objects.exists()
    real = [_consent(_newcomer(version, i)).condition.name for i in range(1, 4)]
    assert len(set(real)) == 3


def test_a_released_slot_goes_to_the_next_arrival(version):
    first = _consent(_newcomer(version, 0))
    Participation.objects.filter(pk=first.pk).update(status=Status.TIMED_OUT)
    assert assignment_release(participation=first)
    nxt = _consent(_newcomer(version, 1))
    assert nxt.condition == first.condition
    assert AllocationSlot.objects.count() == 3


def test_release_respects_the_study_file(db):
    version = load_reference(slug="keep", limits={"free_slot_on_timeout": False})
    first = _consent(_newcomer(version, 0))
    assert not assignment_release(participation=first)
    assert AllocationSlot.objects.get(participation=first)


def test_assignment_is_sticky(version):
    participation = _consent(_newcomer(version, 0))
    before = participation.condition
    assert assignment_assign(participation=participation).condition == before
    assert AllocationSlot.objects.count() == 3
    assert AllocationSlot.objects.filter(participation__isnull=False).count() == 1


def _least_filled_version():
    return load_reference(slug="lf", assignment={"method": "least_filled"})


def _with_arm(version, n, name, **fields):
    participation = _newcomer(version, n)
    Participation.objects.filter(pk=participation.pk).update(
        condition=version.conditions.get(name=name), **fields
    )
    return participation


def test_least_filled_picks_the_arm_with_fewest_completers_and_active_starters(db):
    version = _least_filled_version()
    _with_arm(version, 0, "base", status=Status.COMPLETED)
    _with_arm(version, 1, "base", status=Status.WRITING, last_seen_at=timezone.now())
    _with_arm(version, 2, "proactive_base", status=Status.COMPLETED)
    _with_arm(version, 3, "collabllm", status=Status.COMPLETED)
    _with_arm(version, 4, "collabllm", status=Status.COMPLETED)
    # Neither a long-quiet starter, a timed-out one nor a pilot counts.
    stale = timezone.now() - timedelta(hours=5)
    for n in range(5, 8):
        _with_arm(version, n, "proactive_base", status=Status.WRITING,
                  entered_at=stale, last_seen_at=stale)
    _with_arm(version, 8, "proactive_base", status=Status.TIMED_OUT)
    pilot = _with_arm(version, 9, "proactive_base", status=Status.WRITING)
    Participation.objects.filter(pk=pilot.pk).update(is_test=True)
    assert _consent(_newcomer(version, 10)).condition.name == "proactive_base"
    assert not AllocationSlot.objects.exists()


def test_least_filled_weighs_arms(db):
    base = load_reference(slug="tmp").spec["conditions"]
    version = load_reference(
        slug="lfw",
        assignment={"method": "least_filled"},
        conditions=[{**c, "weight": w} for c, w in zip(base, (2, 1, 1), strict=True)],
    )
    _with_arm(version, 0, "base", status=Status.COMPLETED)
    _with_arm(version, 1, "proactive_base", status=Status.COMPLETED)
    _with_arm(version, 2, "collabllm", status=Status.COMPLETED)
    # base holds 1 of 2 shares, the others 1 of 1: base is the least filled.
    assert _consent(_newcomer(version, 3)).condition.name == "base"


def test_document_types_are_balanced_within_an_arm(version):
    kinds = Counter()
    for i in range(9):
        participation = _consent(_newcomer(version, i))
        kinds[(participation.condition.name, participation.document_type)] += 1
    assert set(kinds.values()) == {1}


def _arrive_concurrently(version: StudyVersion, count: int) -> list[Participation]:
    ids = [_newcomer(version, i).pk for i in range(count)]

    def consent(pk: int) -> int:
        try:
            return _consent(Participation.objects.get(pk=pk)).condition_id
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(consent, ids))
    return list(Participation.objects.filter(pk__in=ids).select_related("condition"))


@pytest.mark.django_db(transaction=True)
def test_sixty_concurrent_arrivals_fill_permuted_blocks_exactly():
    version = load_reference()
    participations = _arrive_concurrently(version, 60)
    arms = Counter(p.condition.name for p in participations)
    assert arms == {"base": 20, "proactive_base": 20, "collabllm": 20}
    slots = AllocationSlot.objects.filter(version=version)
    assert slots.count() == 60
    assert slots.filter(participation__isnull=False).count() == 60
    assert {s.participation_id for s in slots} == {p.pk for p in participations}
    for slot in slots.select_related("participation"):
        assert slot.participation.condition_id == slot.condition_id


@pytest.mark.django_db(transaction=True)
def test_sixty_concurrent_arrivals_stay_balanced_with_least_filled():
    version = _least_filled_version()
    participations = _arrive_concurrently(version, 60)
    assert all(p.status == Status.CONSENTED for p in participations)
    arms = Counter(p.condition.name for p in participations)
    assert sum(arms.values()) == 60
    assert max(arms.values()) - min(arms.values()) <= 1
