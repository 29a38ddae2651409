"""Re-checking a bonus batch whose pay call went unanswered: paid, not paid (pay again, once),
or still unknown (never sent again), against the loopback Prolific."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from studyapp.payments.models import BonusBatch, PayState, ProlificRun, RunState
from studyapp.payments.prolific import ProlificClient, ProlificTimeout
from studyapp.payments.prolific_sync import prolific_batches_recheck, prolific_bonuses_pay
from tests.payments.prolific_fake import TOKEN
from tests.payments.test_prolific import _client, _owed, fake, version  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


class LostPayClient(ProlificClient):
    """The pay call never reaches Prolific, and the app cannot tell: it times out."""

    def bonus_pay(self, payment_id: str) -> None:
        raise ProlificTimeout(f"POST /api/v1/bulk-bonus-payments/{payment_id}/pay/: no answer")


def _lost_pay(version, fake):  # noqa: F811
    with LostPayClient(token=TOKEN, base_url=fake.url) as client:
        report = prolific_bonuses_pay(study=version.study, client=client)
    batch = BonusBatch.objects.get()
    assert report.unconfirmed == [batch.pk]
    assert batch.pay_state == PayState.PAY_SENT
    return batch


def _sent_hours_ago(batch, hours):
    BonusBatch.objects.filter(pk=batch.pk).update(
        pay_sent_at=timezone.now() - timedelta(hours=hours))


def test_a_batch_prolific_shows_paid_is_marked_paid(version, fake):  # noqa: F811
    alice_pid, _, bob_pid = _owed(version, fake)
    fake.hang_next_pay = True
    fake.pay_visible_later = True
    with _client(fake, timeout=0.3) as client:
        prolific_bonuses_pay(study=version.study, client=client)
        batch = BonusBatch.objects.get()
        _sent_hours_ago(batch, 24)
        fake.publish_payments()
        report = prolific_batches_recheck(study=version.study, client=client)
        assert report.paid == [batch.pk]
        assert prolific_bonuses_pay(study=version.study, client=client).paid == []
    assert BonusBatch.objects.get().pay_state == PayState.PAID
    assert sum(fake.pay_calls.values()) == 1
    assert (fake.paid_cents(alice_pid), fake.paid_cents(bob_pid)) == (175, 200)


def test_a_batch_paid_late_is_never_released_while_prolific_may_still_pay(
    version, fake  # noqa: F811
):
    alice_pid, _, bob_pid = _owed(version, fake)
    fake.hang_next_pay = True
    fake.pay_visible_later = True  # accepted by Prolific, shown only later
    with _client(fake, timeout=0.3) as client:
        prolific_bonuses_pay(study=version.study, client=client)
        batch = BonusBatch.objects.get()
        # Within the settling time, showing nothing proves nothing: it stays sent.
        report = prolific_batches_recheck(study=version.study, client=client)
        assert report.unconfirmed == [batch.pk]
        assert BonusBatch.objects.get().pay_state == PayState.PAY_SENT
        fake.publish_payments()
        assert prolific_batches_recheck(study=version.study, client=client).paid == [batch.pk]
        prolific_bonuses_pay(study=version.study, client=client)
    assert sum(fake.pay_calls.values()) == 1
    assert (fake.paid_cents(alice_pid), fake.paid_cents(bob_pid)) == (175, 200)


def test_a_batch_prolific_never_paid_is_released_and_paid_once(version, fake):  # noqa: F811
    alice_pid, _, bob_pid = _owed(version, fake)
    batch = _lost_pay(version, fake)
    old_id = batch.prolific_payment_id
    with _client(fake) as client:
        # Too early to tell: nothing is released, and paying does not send it again.
        assert prolific_batches_recheck(study=version.study, client=client).unconfirmed == [
            batch.pk]
        prolific_bonuses_pay(study=version.study, client=client)
        assert not fake.pay_calls
        _sent_hours_ago(batch, 24)
        report = prolific_batches_recheck(study=version.study, client=client)
        assert report.released == [batch.pk]
        released = BonusBatch.objects.get()
        assert released.pay_state == PayState.NEW
        assert released.prolific_payment_id == ""
        assert old_id in released.pay_error
        paid = prolific_bonuses_pay(study=version.study, client=client)
        assert paid.paid == [batch.pk]
        # Re-checking and paying again change nothing.
        again = prolific_batches_recheck(study=version.study, client=client)
        assert again.paid == again.released == again.unconfirmed == []
        prolific_bonuses_pay(study=version.study, client=client)
    assert fake.pay_calls[old_id] == 0
    assert sum(fake.pay_calls.values()) == 1
    assert (fake.paid_cents(alice_pid), fake.paid_cents(bob_pid)) == (175, 200)


def test_a_batch_shown_in_part_stays_sent(version, fake):  # noqa: F811
    alice_pid, _, _ = _owed(version, fake)
    batch = _lost_pay(version, fake)
    _sent_hours_ago(batch, 24)
    # Alice shows her bonus, Bob not: the outcome is unknown, so it is never paid again.
    next(s for s in fake.submissions.values()
         if s["participant_id"] == alice_pid)["bonus_payments"].append(175)
    with _client(fake) as client:
        report = prolific_batches_recheck(study=version.study, client=client)
        assert report.unconfirmed == [batch.pk]
        prolific_bonuses_pay(study=version.study, client=client)
    assert BonusBatch.objects.get().pay_state == PayState.PAY_SENT
    assert not fake.pay_calls


def test_the_dashboard_button_re_checks(client, version, fake, settings):  # noqa: F811
    settings.PROLIFIC_API_TOKEN = TOKEN
    settings.PROLIFIC_API_URL = fake.url
    _owed(version, fake)
    batch = _lost_pay(version, fake)
    _sent_hours_ago(batch, 24)
    user = get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    client.force_login(user)
    page = client.post(f"/dashboard/{version.study.slug}/prolific/recheck/", follow=True)
    run = ProlificRun.objects.get()
    assert run.state == RunState.DONE
    assert run.message.startswith("Re-checked unconfirmed bonus batches: 0 paid, 1 not paid")
    assert 'data-prolific-action="recheck"' in page.content.decode()
    client.post(f"/dashboard/{version.study.slug}/prolific/pay/")
    assert sum(fake.pay_calls.values()) == 1
    assert BonusBatch.objects.get().pay_state == PayState.PAID
