import json

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from studyapp.exports.pseudonyms import REDACTED, participant_pseudonym
from studyapp.exports.tables import TABLES
from tests.exports.privacy import leaks

FORMATS = ("csv", "jsonl", "parquet")


def _read(path):
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


def _pseudonym(built):
    p = built.participation
    return participant_pseudonym(
        secret=p.study.pseudonym_secret, platform=p.platform, external_id=p.external_id
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_table_and_the_codebook_are_written_for_the_default_population(
    study_data, tmp_path, fmt
):
    out = tmp_path / fmt
    call_command("export_study", "demo", "--out", str(out), "--format", fmt)

    book = json.loads((out / "codebook.json").read_text())
    assert (out / "codebook.md").read_text().startswith("# Codebook")
    assert [t["name"] for t in book["tables"]] == [t.name for t in TABLES]
    participations = _read(out / f"participations.{fmt}")
    expected = {_pseudonym(b) for b in study_data["counted"]}
    assert set(participations["participant"]) == expected
    assert book["participants"] == len(expected)
    for table in book["tables"]:
        frame = _read(out / f"{table['name']}.{fmt}")
        assert list(frame.columns) == [c["name"] for c in table["columns"]], table["name"]
        assert len(frame) == table["rows"]
        assert set(frame["participant"]) <= expected

    messages = _read(out / f"messages.{fmt}")
    # 9 + 9 + 8 + 8 turns, two messages each, plus one regenerated and one side-by-side loser.
    assert len(messages) == 2 * (9 + 9 + 8 + 8) + 2
    assert messages["is_active"].astype(str).str.lower().value_counts()["false"] == 2
    ratings = _read(out / f"ratings.{fmt}")
    interaction = ratings[ratings["scale"] == "interaction"]
    assert sorted(interaction["value"].tolist()) == sorted([8, 4, 9, 6, 7, 10, 9, 9, 5, 6])
    row = participations[participations["participant"] == _pseudonym(study_data["counted"][0])]
    assert int(row["n_user_turns"].iloc[0]) == 9
    assert int(row["n_alternatives"].iloc[0]) == 1
    assert row["condition"].iloc[0] == "base"


def test_itt_view_with_tests_and_failed_attention_covers_everyone(study_data, tmp_path):
    out = tmp_path / "itt"
    call_command(
        "export_study", "demo", "--out", str(out), "--format", "csv", "--view", "itt",
        "--include-test", "--include-failed-attention",
    )
    participations = _read(out / "participations.csv")
    assert set(participations["participant"]) == {_pseudonym(b) for b in study_data["all"]}
    assert sorted(participations["status"].unique()) == ["completed", "writing"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_platform_id_leaves_in_any_format(study_data, tmp_path, fmt):
    out = tmp_path / fmt
    call_command(
        "export_study", "demo", "--out", str(out), "--format", fmt, "--view", "itt",
        "--include-test", "--include-failed-attention",
    )
    ids = [i for b in study_data["all"] for i in b.ids]
    # The ids are really there to leak: pasted into chat, documents, answers and events.
    first = study_data["all"][0]
    assert first.ids[0] in first.messages[0].text
    assert leaks(out, ids) == []
    messages = _read(out / f"messages.{fmt}")
    assert messages["text"].str.contains(REDACTED, regex=False).sum() == len(study_data["all"])


def test_unknown_study_fails_with_a_clear_message(db, tmp_path):
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("export_study", "nope", "--out", str(tmp_path / "x"))


def test_progress_is_printed(study_data, tmp_path, capsys):
    call_command("export_study", "demo", "--out", str(tmp_path / "p"), "--format", "jsonl")
    output = capsys.readouterr().out
    assert "[100.0%] done: 4 participants" in output
    assert "messages.jsonl: 70 rows" in output
