"""Spreadsheet formula injection: participant and model text is neutralised in CSV only."""

import csv
import json

import pandas as pd
import pytest
from django.core.management import call_command

from studyapp.writing.models import Message, Role
from tests.exports.builders import conversation_make

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("http://x","y")'
OTHERS = ["+1+2", "-3+4", "@SUM(A1)", "\tcmd", "\rcmd"]


@pytest.fixture
def formula_messages(demo_version):
    built = conversation_make(version=demo_version, turns=1, ratings={})
    for n, text in enumerate([FORMULA, *OTHERS], start=2):
        Message.objects.create(participation=built.participation, turn=n, role=Role.USER, text=text)
    return built


def _texts(rows: list[dict[str, str]]) -> set[str]:
    return {row["text"] for row in rows}


def test_a_formula_in_a_message_is_neutralised_in_the_csv_export(formula_messages, tmp_path):
    call_command("export_study", "demo", "--out", str(tmp_path), "--format", "csv")
    with (tmp_path / "messages.csv").open(newline="", encoding="utf-8") as f:
        texts = _texts(list(csv.DictReader(f)))
    assert "'" + FORMULA in texts
    assert {"'" + t for t in OTHERS} <= texts
    assert FORMULA not in texts
    assert "Assistant reply 1" in texts  # ordinary text is left alone


def test_jsonl_and_parquet_keep_the_text_as_written(formula_messages, tmp_path):
    call_command("export_study", "demo", "--out", str(tmp_path / "j"), "--format", "jsonl")
    call_command("export_study", "demo", "--out", str(tmp_path / "p"), "--format", "parquet")
    lines = (tmp_path / "j" / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    jsonl = {json.loads(line)["text"] for line in lines}
    parquet = set(pd.read_parquet(tmp_path / "p" / "messages.parquet")["text"])
    for texts in (jsonl, parquet):
        assert {FORMULA, *OTHERS} <= texts
        assert "'" + FORMULA not in texts
