"""Agreement between judges, and between a judge and the participant, on the study page:
Spearman's rho recomputed here by hand from the builder's specs."""

import math

import pytest

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.report import PARTICIPANT_RATER, study_report
from studyapp.feedback.models import DocumentScore
from studyapp.participants.models import Status


def _ranks(values):
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _spearman(x, y):
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


@pytest.fixture
def two_judges(known):
    """A second judge on every document, with ties, and one errored score it must ignore."""
    second = {}
    for n, b in enumerate(known.built):
        if b.spec.status != Status.COMPLETED:
            continue
        if n == 2:
            DocumentScore.objects.create(participation=b.participation, judge="judge-b",
                                         rubric_version="v1", error="no score found")
            continue
        second[b.participation.pk] = float((n * 7) % 5 + 3)
        DocumentScore.objects.create(participation=b.participation, judge="judge-b",
                                     rubric_version="v1", score=second[b.participation.pk])
    return known, second


def _analysed(known):
    return [b for b in known.built if b.spec.status == Status.COMPLETED
            and not b.spec.is_test and b.spec.attention_passed is not False]


def test_agreement_equals_a_computation_by_hand(two_judges):
    known, second = two_judges
    analysed = _analysed(known)
    first = {b.participation.pk: b.spec.judge for b in analysed if b.spec.judge is not None}
    own = {b.participation.pk: float(b.spec.document_quality) for b in analysed}
    second = {pk: s for pk, s in second.items() if pk in own}

    rows = {(r.a, r.b): r for r in study_report(
        study=known.study, pfilter=ParticipationFilter()).agreement}

    a, b = "judge-a (v1)", "judge-b (v1)"
    pairs = [((a, first), (b, second)), ((a, first), (PARTICIPANT_RATER, own)),
             ((b, second), (PARTICIPANT_RATER, own))]
    for (x_name, x), (y_name, y) in pairs:
        shared = sorted(set(x) & set(y))
        row = rows[(x_name, y_name)]
        assert row.n == len(shared)
        assert row.rho == pytest.approx(_spearman([x[k] for k in shared], [y[k] for k in shared]))
        assert 0 <= row.p <= 1
    # judge-a is 5 + quality / 2 in the builder: a perfect rank agreement with the participant.
    assert rows[(a, PARTICIPANT_RATER)].rho == pytest.approx(1.0)
    # 12 analysed completers, less the three judge-a skipped (i == 1) and judge-b's error.
    assert rows[(a, b)].n == 8
    assert set(rows) == {(a, b), (a, PARTICIPANT_RATER), (b, PARTICIPANT_RATER)}


def test_the_study_page_shows_the_agreement_table(staff_client, two_judges):
    known, _ = two_judges
    rows = {(r.a, r.b): r for r in study_report(
        study=known.study, pfilter=ParticipationFilter()).agreement}
    page = staff_client.get(f"/dashboard/{known.study.slug}/").content.decode()
    assert "Agreement between raters" in page
    assert f"{rows[('judge-a (v1)', 'judge-b (v1)')].rho:.3f}" in page
    assert "Participant&#x27;s own rating" in page


def test_too_few_shared_documents_give_no_rho(known):
    DocumentScore.objects.create(participation=known.built[0].participation, judge="judge-b",
                                 rubric_version="v1", score=4)
    rows = {(r.a, r.b): r for r in study_report(
        study=known.study, pfilter=ParticipationFilter()).agreement}
    row = rows[("judge-a (v1)", "judge-b (v1)")]
    assert row.n == 1
    assert math.isnan(row.rho)
