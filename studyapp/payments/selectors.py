"""Reads for bonuses: a batch as the platform's bulk-bonus lines, the Prolific panel."""

from __future__ import annotations

import csv
from decimal import Decimal
from typing import TextIO

from django.conf import settings
from django.db.models import Count, Sum

from studyapp.payments.models import (
    BonusBatch,
    BonusLedgerEntry,
    ProlificRun,
    ProlificStudy,
    ProlificSubmission,
)
from studyapp.studies.models import Study

RECENT_RUNS = 5


def bonus_batch_rows(*, batch: BonusBatch) -> list[tuple[str, Decimal]]:
    """``(PROLIFIC_PID, total amount)`` per participant in the batch, by id.

    This is the one place a platform id leaves the database: Prolific pays by its own ids.
    """
    return [
        (pid, total)
        for pid, total in batch.entries.values_list("participation__external_id")
        .annotate(total=Sum("amount"))
        .order_by("participation__external_id")
    ]


def bonus_csv_write(rows: list[tuple[str, Decimal]], out: TextIO, *, header: bool) -> None:
    """Prolific's bulk-bonus format: ``participant_id,amount`` lines, amounts with 2 decimals."""
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["participant_id", "amount"])
    for pid, amount in rows:
        writer.writerow([pid, f"{amount:.2f}"])


def bonus_unpayable(*, study: Study) -> dict[str, int]:
    """Unpaid entries this export cannot pay, by platform (MTurk bonuses go through MTurk)."""
    return dict(
        BonusLedgerEntry.objects.filter(participation__study=study, paid_batch__isnull=True)
        .exclude(participation__platform="prolific", participation__is_test=False)
        .values_list("participation__platform")
        .annotate(n=Count("pk"))
    )


def prolific_panel(*, study: Study) -> dict[str, object]:
    """What the dashboard's Prolific panel shows: the link, submission statuses, batch states."""
    link = ProlificStudy.objects.filter(study=study).first()
    panel: dict[str, object] = {"link": link, "configured": bool(settings.PROLIFIC_API_TOKEN)}
    if link is None:
        return panel
    panel["statuses"] = sorted(
        ProlificSubmission.objects.filter(participation__study=study)
        .values_list("status").annotate(n=Count("pk"))
    )
    panel["batches"] = sorted(
        BonusBatch.objects.filter(study=study).values_list("pay_state").annotate(n=Count("pk"))
    )
    panel["runs"] = list(ProlificRun.objects.filter(study=study)[:RECENT_RUNS])
    return panel
