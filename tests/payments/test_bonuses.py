import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from studyapp.participants.models import Platform, Status
from studyapp.payments.models import BonusLedgerEntry
from studyapp.payments.selectors import bonus_batch_rows
from studyapp.payments.services import BonusError, bonus_batch_create, bonus_grant
from studyapp.payments.tasks import bonus_completion_grant_task
from studyapp.studies.services import study_load
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import participation_make


def _lines(path):
    return path.read_text().splitlines()


def test_grant_is_idempotent_per_reason(demo_version):
    participation, _ = participation_make(version=demo_version)
    first = bonus_grant(participation=participation, amount="1.5", reason="quality")
    again = bonus_grant(participation=participation, amount=Decimal("1.50"), reason="quality")
    assert again.pk == first.pk
    assert first.amount == Decimal("1.50")
    with pytest.raises(BonusError, match=r"already granted as 1\.50, not 2\.00"):
        bonus_grant(participation=participation, amount="2", reason="quality")
    with pytest.raises(BonusError, match="positive"):
        bonus_grant(participation=participation, amount="0", reason="other")
    bonus_grant(participation=participation, amount="0.25", reason="speed")
    assert BonusLedgerEntry.objects.filter(participation=participation).count() == 2


def test_csv_holds_each_unpaid_prolific_bonus_once(demo_version, tmp_path, capsys):
    alice, (alice_pid, *_) = participation_make(version=demo_version)
    bob, (bob_pid, *_) = participation_make(version=demo_version)
    worker, _ = participation_make(version=demo_version, platform=Platform.MTURK)
    pilot, _ = participation_make(version=demo_version, is_test=True)
    bonus_grant(participation=alice, amount="1.00", reason="quality")
    bonus_grant(participation=alice, amount="0.50", reason="speed")
    bonus_grant(participation=bob, amount="2", reason="quality")
    bonus_grant(participation=worker, amount="1", reason="quality")
    bonus_grant(participation=pilot, amount="1", reason="quality")

    first = tmp_path / "first.csv"
    call_command("bonus_csv", "demo", "--out", str(first))
    assert sorted(_lines(first)) == sorted([f"{alice_pid},1.50", f"{bob_pid},2.00"])
    assert "1 unpaid mturk bonus(es) are not in this file" in capsys.readouterr().out

    second = tmp_path / "second.csv"
    call_command("bonus_csv", "demo", "--out", str(second))
    assert not second.exists()
    assert "nothing to pay" in capsys.readouterr().out

    bonus_grant(participation=bob, amount="0.75", reason="late fix")
    bonus_grant(participation=bob, amount="2", reason="quality")  # retried grant: no new debt
    third = tmp_path / "third.csv"
    call_command("bonus_csv", "demo", "--out", str(third), "--header")
    assert _lines(third) == ["participant_id,amount", f"{bob_pid},0.75"]


def test_an_earlier_batch_can_be_printed_again(demo_version, tmp_path):
    alice, (pid, *_) = participation_make(version=demo_version)
    bonus_grant(participation=alice, amount="3", reason="quality")
    call_command("bonus_csv", "demo", "--out", str(tmp_path / "a.csv"))
    batch = BonusLedgerEntry.objects.get(participation=alice).paid_batch
    call_command("bonus_csv", "demo", "--out", str(tmp_path / "again.csv"),
                 "--batch", str(batch.pk))
    assert _lines(tmp_path / "again.csv") == [f"{pid},3.00"]


def test_a_failed_write_leaves_the_bonuses_unpaid(demo_version, tmp_path):
    alice, (pid, *_) = participation_make(version=demo_version)
    bonus_grant(participation=alice, amount="1", reason="quality")
    (tmp_path / "x.csv.partial").mkdir()  # the file cannot be written
    with pytest.raises(CommandError, match="could not write"):
        call_command("bonus_csv", "demo", "--out", str(tmp_path / "x.csv"))
    assert BonusLedgerEntry.objects.get(participation=alice).paid_batch is None
    call_command("bonus_csv", "demo", "--out", str(tmp_path / "y.csv"))
    assert _lines(tmp_path / "y.csv") == [f"{pid},1.00"]


def test_per_completion_bonus_from_the_study_file(db, tmp_path):
    text = REFERENCE_STUDY.read_text().replace("per_completion: 0.0", "per_completion: 1.25")
    version = study_load(text=text, slug="paid", offline=True).version
    done, (pid, *_) = participation_make(version=version, status=Status.COMPLETED)
    failed, _ = participation_make(version=version, status=Status.COMPLETED,
                                   attention_passed=False)
    participation_make(version=version, status=Status.WRITING)
    assert bonus_completion_grant_task.delay(done.pk).get() == "1.25"
    assert bonus_completion_grant_task.delay(failed.pk).get() is None
    out = tmp_path / "paid.csv"
    call_command("bonus_csv", "paid", "--out", str(out))
    assert _lines(out) == [f"{pid},1.25"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_never_share_an_entry():
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="race", offline=True).version
    for _ in range(20):
        participation, _ = participation_make(version=version)
        bonus_grant(participation=participation, amount="1", reason="quality")
    study = version.study
    barrier = threading.Barrier(2)
    exported = []

    def run():
        barrier.wait()
        batch = bonus_batch_create(study=study)
        if batch is not None:
            exported.extend(pid for pid, _ in bonus_batch_rows(batch=batch))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(exported) == 20
    assert len(set(exported)) == 20
    assert not BonusLedgerEntry.objects.filter(paid_batch__isnull=True).exists()
