"""Writes for bonuses: grant (idempotently) and gather unpaid ones into a batch."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from studyapp.participants.models import Outcome, Participation, Platform, Status
from studyapp.payments.models import BonusBatch, BonusLedgerEntry, PayState
from studyapp.studies.models import Study

COMPLETION_REASON = "completion"
CENTS = Decimal("0.01")


class BonusError(ValueError):
    """A bonus that cannot be granted as asked (the message says why)."""


def _amount(value: Decimal | str | float) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(CENTS)
    except InvalidOperation as exc:
        raise BonusError(f"not an amount: {value!r}") from exc
    if amount <= 0:
        raise BonusError("a bonus must be positive")
    return amount


def bonus_grant(
    *, participation: Participation, amount: Decimal | str, reason: str
) -> BonusLedgerEntry:
    """Owe ``participation`` a bonus of ``amount`` for ``reason``; once per (participation, reason).

    Granting again with the same amount returns the existing entry; a different amount for
    the same reason is refused (it would hide a mistake in whoever asked twice).
    """
    amount = _amount(amount)
    reason = reason.strip()
    if not reason:
        raise BonusError("a bonus needs a reason")
    entry, created = BonusLedgerEntry.objects.get_or_create(
        participation=participation, reason=reason, defaults={"amount": amount}
    )
    if not created and entry.amount != amount:
        raise BonusError(
            f"{reason!r} was already granted as {entry.amount}, not {amount}"
        )
    return entry


def bonus_completions_grant(*, study: Study) -> int:
    """Grant the study file's ``bonus.per_completion`` to every completer still without it."""
    granted = 0
    completers = (
        Participation.objects.filter(
            study=study, status=Status.COMPLETED, outcome=Outcome.COMPLETED, is_test=False
        )
        .exclude(bonus_entries__reason=COMPLETION_REASON)
        .select_related("version")
    )
    for participation in completers:
        per_completion = (participation.version.spec.get("bonus") or {}).get("per_completion")
        if per_completion and Decimal(str(per_completion)) > 0:
            bonus_grant(participation=participation, amount=str(per_completion),
                        reason=COMPLETION_REASON)
            granted += 1
    return granted


def bonus_batch_create(
    *, study: Study, created_by: AbstractBaseUser | None = None,
    pay_state: PayState = PayState.CSV,
) -> BonusBatch | None:
    """Put every unpaid Prolific bonus of ``study`` into a new batch (None: nothing unpaid).

    The entries are locked, so two exports at once never take the same entry; an entry in a
    batch is never exported again (except by re-printing that batch on purpose).
    """
    with transaction.atomic():
        unpaid = list(
            BonusLedgerEntry.objects.select_for_update()
            .filter(participation__study=study, participation__platform=Platform.PROLIFIC,
                    participation__is_test=False, paid_batch__isnull=True)
            .values_list("pk", flat=True)
        )
        if not unpaid:
            return None
        batch = BonusBatch.objects.create(
            study=study, pay_state=pay_state,
            created_by=created_by if created_by and created_by.is_authenticated else None,
        )
        BonusLedgerEntry.objects.filter(pk__in=unpaid).update(paid_batch=batch)
    return batch
