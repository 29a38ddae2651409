import pytest

from studyapp.scoring.parse import ScoreParseError, parse_score
from studyapp.scoring.rubrics import rubric_load


@pytest.mark.parametrize(
    ("reply", "score", "rationale"),
    [
        ('{"rationale": "Well argued.", "score": 8}', 8.0, "Well argued."),
        ('```json\n{"score": "7", "reason": "Good flow."}\n```', 7.0, "Good flow."),
        ('Sure! Here is my rating:\n{"reasoning": "Thin ending", "score": 6.5} Hope it helps',
         6.5, "Thin ending"),
        ("The piece is fine.\nScore: 5", 5.0, "The piece is fine.\nScore: 5"),
        ("**Score** - 9", 9.0, "**Score** - 9"),
        ("Overall I'd say 4 out of 10.", 4.0, "Overall I'd say 4 out of 10."),
        (" 10 ", 10.0, "10"),
    ],
)
def test_scores_are_found_in_the_shapes_judges_answer_in(reply, score, rationale):
    parsed = parse_score(reply)
    assert parsed.score == score
    assert parsed.rationale == rationale


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("I loved it!", "no score found"),
        ('{"score": 11}', "outside 1..10"),
        ("score: 0", "outside 1..10"),
        ('{"score": true}', "no score found"),
    ],
)
def test_missing_or_out_of_range_scores_are_errors(reply, message):
    with pytest.raises(ScoreParseError, match=message):
        parse_score(reply)


def test_rubric_renders_documents_with_braces_untouched():
    rubric = rubric_load("document_quality_v1")
    text = rubric.render(document_type="blog post", topic="Budget {travel}",
                         document="Use {braces} and $dollars freely.")
    assert "Use {braces} and $dollars freely." in text
    assert 'a blog post on the topic: "Budget {travel}"' in text
    with pytest.raises(ValueError, match="unknown rubric"):
        rubric_load("document_quality_v99")
