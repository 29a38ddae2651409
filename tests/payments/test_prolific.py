"""Prolific's API against a loopback server that behaves like it: import, review, pay once."""

import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from studyapp.participants.models import AllocationSlot, Outcome, Status
from studyapp.payments.models import BonusBatch, PayState, ProlificStudy, ProlificSubmission
from studyapp.payments.prolific import ProlificClient, ProlificNotConfigured, prolific_client
from studyapp.payments.prolific_sync import (
    prolific_bonuses_pay,
    prolific_submissions_import,
    prolific_submissions_review,
)
from studyapp.payments.services import bonus_grant
from studyapp.studies.services import study_load
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import participation_make
from tests.payments.prolific_fake import TOKEN, FakeProlific

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake():
    with FakeProlific().running() as server:
        yield server


@pytest.fixture
def version():
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="prol", offline=True).version
    ProlificStudy.objects.create(study=version.study, prolific_study_id="6571abc")
    return version


def _client(fake, timeout=5.0):
    return ProlificClient(token=TOKEN, base_url=fake.url, timeout=timeout)


def _participant(version, fake, prolific_status, **kwargs):
    participation, (pid, *_) = participation_make(version=version, **kwargs)
    fake.add_submission(pid, prolific_status)
    return participation, pid


def test_import_moves_returned_and_timed_out_and_review_follows_the_outcome(version, fake):
    done, _ = _participant(version, fake, "AWAITING REVIEW")
    failed, _ = _participant(version, fake, "AWAITING REVIEW", attention_passed=False)
    returned, _ = _participant(version, fake, "RETURNED", status=Status.WRITING)
    late, _ = _participant(version, fake, "TIMED-OUT", status=Status.CONSENTED)
    kept, _ = _participant(version, fake, "RETURNED")  # completed in the app: keeps its data
    fake.add_submission("NEVERCAMETOTHEAPP", "ACTIVE")
    slot = AllocationSlot.objects.create(version=version, block=0, position=0,
                                         condition=returned.condition, participation=returned)

    with _client(fake) as client:
        report = prolific_submissions_import(study=version.study, client=client)
        assert (report.matched, report.unmatched) == (5, 1)  # across three pages
        assert report.moved == {"returned": 1, "timed_out": 1}
        returned.refresh_from_db()
        late.refresh_from_db()
        kept.refresh_from_db()
        assert (returned.status, returned.outcome) == (Status.RETURNED, Outcome.RETURNED)
        assert returned.returned_at is not None
        assert (late.status, late.outcome) == (Status.TIMED_OUT, Outcome.TIMED_OUT)
        assert kept.status == Status.COMPLETED
        slot.refresh_from_db()
        assert slot.participation is None  # its place goes to the next arrival

        assert prolific_submissions_review(study=version.study, client=client) == {
            "APPROVE": 1, "REJECT": 1}
        # A second review sends nothing: each submission is reviewed once.
        assert prolific_submissions_review(study=version.study, client=client) == {}
        prolific_submissions_import(study=version.study, client=client)

    sent = {sid: action for sid, action, _ in fake.transitions}
    assert sent == {done.prolific_submission.submission_id: "APPROVE",
                    failed.prolific_submission.submission_id: "REJECT"}
    assert ProlificSubmission.objects.get(participation=done).status == "APPROVED"
    assert ProlificSubmission.objects.get(participation=failed).status == "REJECTED"


def _owed(version, fake):
    alice, alice_pid = _participant(version, fake, "APPROVED")
    bob, bob_pid = _participant(version, fake, "APPROVED")
    bonus_grant(participation=alice, amount="1.50", reason="completion")
    bonus_grant(participation=alice, amount="0.25", reason="quality")
    bonus_grant(participation=bob, amount="2", reason="completion")
    return alice_pid, bob, bob_pid


def test_a_pay_call_that_times_out_after_being_accepted_is_never_sent_again(version, fake):
    alice_pid, bob, bob_pid = _owed(version, fake)
    fake.hang_next_pay = True
    with _client(fake, timeout=0.3) as client:
        report = prolific_bonuses_pay(study=version.study, client=client)
        # The pay call got no answer; Prolific's submissions show the bonuses: it went through.
        batch = BonusBatch.objects.get()
        assert report.paid == [batch.pk]
        assert batch.pay_state == PayState.PAID
        assert "no answer" in batch.pay_error
        again = prolific_bonuses_pay(study=version.study, client=client)
        assert again.paid == again.unconfirmed == []

        bonus_grant(participation=bob, amount="0.40", reason="late fix")
        prolific_bonuses_pay(study=version.study, client=client)

    assert sorted(fake.pay_calls.values()) == [1, 1]
    assert fake.paid_cents(alice_pid) == 175
    assert fake.paid_cents(bob_pid) == 240


def test_an_unconfirmed_pay_waits_for_prolific_and_is_not_repeated(version, fake):
    alice_pid, _, bob_pid = _owed(version, fake)
    fake.hang_next_pay = True
    fake.pay_visible_later = True  # Prolific pays "in the following minutes"
    with _client(fake, timeout=0.3) as client:
        first = prolific_bonuses_pay(study=version.study, client=client)
        batch = BonusBatch.objects.get()
        assert first.unconfirmed == [batch.pk]
        assert BonusBatch.objects.get().pay_state == PayState.PAY_SENT
        # Re-running while Prolific has not shown the bonuses yet must not pay again.
        assert prolific_bonuses_pay(study=version.study, client=client).unconfirmed == [batch.pk]
        fake.publish_payments()
        assert prolific_bonuses_pay(study=version.study, client=client).paid == [batch.pk]
    assert BonusBatch.objects.get().pay_state == PayState.PAID
    assert fake.pay_calls[batch.prolific_payment_id] == 1
    assert (fake.paid_cents(alice_pid), fake.paid_cents(bob_pid)) == (175, 200)


def test_entries_paid_through_the_api_never_reach_a_csv(version, fake, tmp_path):
    alice_pid, *_ = _owed(version, fake)
    with _client(fake) as client:
        prolific_bonuses_pay(study=version.study, client=client)
    call_command("bonus_csv", "prol", "--out", str(tmp_path / "b.csv"))
    assert not (tmp_path / "b.csv").exists()
    assert fake.paid_cents(alice_pid) == 175
    assert BonusBatch.objects.get().entries.count() == 3
    assert sum(e.amount for e in BonusBatch.objects.get().entries.all()) == Decimal("3.75")


def test_without_a_token_the_lab_pays_by_csv(settings):
    settings.PROLIFIC_API_TOKEN = ""
    with pytest.raises(ProlificNotConfigured, match="bonus_csv"):
        prolific_client()


def test_two_workers_paying_at_once_pay_each_bonus_once(version, fake):
    pids = []
    for _ in range(6):
        participation, pid = _participant(version, fake, "APPROVED")
        bonus_grant(participation=participation, amount="1.20", reason="quality")
        pids.append(pid)
    barrier = threading.Barrier(2)
    errors = []

    def pay():
        try:
            with _client(fake) as client:
                barrier.wait()
                prolific_bonuses_pay(study=version.study, client=client)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert set(fake.pay_calls.values()) == {1}
    assert [fake.paid_cents(pid) for pid in pids] == [120] * 6
    assert set(BonusBatch.objects.values_list("pay_state", flat=True)) == {PayState.PAID}
