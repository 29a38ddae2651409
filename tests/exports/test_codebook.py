import json

from studyapp.exports.codebook import codebook_generic, codebook_json, codebook_markdown
from studyapp.exports.tables import TABLES, TYPES
from tests.conftest import REPO


def test_every_column_has_a_known_type_and_a_meaning():
    for table in TABLES:
        names = [c.name for c in table.columns]
        assert len(names) == len(set(names)), table.name
        assert names[0] == "participant"
        for column in table.columns:
            assert column.type in TYPES, (table.name, column.name)
            assert column.meaning, (table.name, column.name)


def test_docs_codebook_is_the_generated_one():
    """Regenerate with `python manage.py export_codebook` after changing a table."""
    book = codebook_generic()
    assert (REPO / "docs" / "codebook.md").read_text() == codebook_markdown(book)
    assert json.loads((REPO / "docs" / "codebook.json").read_text()) == json.loads(
        codebook_json(book)
    )


def test_study_codebook_lists_the_study_values(demo_version):
    from studyapp.exports.codebook import codebook_dict

    book = codebook_dict(study=demo_version.study)
    columns = {c["name"]: c for t in book["tables"] if t["name"] == "participations"
               for c in t["columns"]}
    assert columns["condition"]["values"] == ["base", "proactive_base", "collabllm"]
    assert columns["document_type"]["values"] == [
        "blog_post", "creative_writing", "personal_statement"
    ]
