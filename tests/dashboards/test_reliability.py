"""Krippendorff's alpha (interval) across judges, staff raters and participants: the dashboard's
value against the textbook pairwise formula written out here and a published example."""

import math
import random

import pytest
from django.contrib.auth import get_user_model

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.report import PARTICIPANT_RATER, study_report
from studyapp.dashboards.stats import icc_two_way_absolute, krippendorff_alpha_interval
from studyapp.feedback.models import DocumentScore
from studyapp.scoring.raters import rater_documents, rater_score_submit
from studyapp.studies.models import Study
from tests.scoring.rater_builders import collected_make


def _alpha_by_hand(units):
    """alpha = 1 - D_o / D_e, with D_o = 1/n * sum_u 1/(m_u - 1) * sum_{i != j in u} (v_i - v_j)^2
    and D_e = 1/(n (n - 1)) * sum over every ordered pair of pairable values (v - v')^2."""
    pairable = [[v for v in u if v is not None] for u in units]
    pairable = [u for u in pairable if len(u) >= 2]
    values = [v for u in pairable for v in u]
    n = len(values)
    observed = sum(
        sum((u[i] - u[j]) ** 2 for i in range(len(u)) for j in range(len(u)) if i != j)
        / (len(u) - 1)
        for u in pairable
    ) / n
    expected = sum(
        (values[i] - values[j]) ** 2 for i in range(n) for j in range(n) if i != j
    ) / (n * (n - 1))
    return 1 - observed / expected


def _icc_by_hand(rows):
    """Shrout and Fleiss (1979), ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n),
    with the mean squares of targets (BMS), judges (JMS) and the residual (EMS)."""
    n, k = len(rows), len(rows[0])
    grand = sum(map(sum, rows)) / (n * k)
    row_means = [sum(r) / k for r in rows]
    col_means = [sum(r[j] for r in rows) / n for j in range(k)]
    bms = k * sum((m - grand) ** 2 for m in row_means) / (n - 1)
    jms = n * sum((m - grand) ** 2 for m in col_means) / (k - 1)
    ems = sum((rows[i][j] - row_means[i] - col_means[j] + grand) ** 2
              for i in range(n) for j in range(k)) / ((n - 1) * (k - 1))
    return (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)


def test_icc_matches_shrout_and_fleiss():
    # Their Table 2: six targets, four judges; ICC(2,1) = 0.29.
    rows = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert icc_two_way_absolute(rows) == pytest.approx(0.29, abs=0.005)
    assert icc_two_way_absolute(rows) == pytest.approx(_icc_by_hand(rows))
    rng = random.Random(21)
    noisy = [[t + rng.gauss(0, 1.5) for _ in range(3)] for t in range(1, 11)]
    assert icc_two_way_absolute(noisy) == pytest.approx(_icc_by_hand(noisy))
    assert math.isnan(icc_two_way_absolute([[3, 4]]))


def test_alpha_matches_the_published_example():
    # Three observers, fifteen units (Krippendorff's worked example, as on Wikipedia):
    # interval alpha 0.811.
    n = None
    coders = [[n, n, n, n, n, 3, 4, 1, 2, 1, 1, 3, 3, n, 3],
              [1, n, 2, 1, 3, 3, 4, 3, n, n, n, n, n, n, n],
              [n, n, 2, 1, 3, 4, 4, n, 2, 1, 1, 3, 3, n, 4]]
    units = [[v for v in unit if v is not None] for unit in zip(*coders, strict=True)]
    alpha, n_units, n_values = krippendorff_alpha_interval(units)
    assert alpha == pytest.approx(0.811, abs=5e-4)
    assert (n_units, n_values) == (12, 26)


def test_alpha_equals_the_pairwise_formula_with_missing_ratings():
    rng = random.Random(20)
    units = [[rng.randint(1, 10) if rng.random() > 0.3 else None for _ in range(4)]
             for _ in range(25)]
    alpha, _, _ = krippendorff_alpha_interval([[v for v in u if v is not None] for u in units])
    assert alpha == pytest.approx(_alpha_by_hand(units))


def test_alpha_is_one_for_perfect_agreement_and_undefined_without_spread():
    assert krippendorff_alpha_interval([[3, 3], [7, 7, 7], [5]])[0] == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_interval([[4, 4], [4, 4]])[0])
    assert math.isnan(krippendorff_alpha_interval([[4, 6], [5]])[0])


@pytest.mark.django_db
def test_the_study_page_agrees_judges_staff_raters_and_participants(client):
    collected = collected_make(per_arm=2)
    study = Study.objects.get(slug=collected.slug)
    documents = list(collected.documents.values())
    # The judge scored fewer documents than the staff rater, who must still not become "the"
    # judge of the dashboard.
    judge = {p.pk: float(3 + (i * 5) % 7) for i, p in enumerate(documents[:3])}
    for p in documents[:3]:
        DocumentScore.objects.create(participation=p, judge="llama",
                                     rubric_version="document_quality_v1", score=judge[p.pk])
    rater = get_user_model().objects.create_user("al", is_staff=True)
    staff = {}
    for i, (key, p) in enumerate(rater_documents(study=study, user=rater)[:4]):
        staff[p.pk] = 2 + (i * 3) % 8
        rater_score_submit(study=study, user=rater, key=key, score=staff[p.pk])
    own = {p.pk: 8.0 for p in documents}  # conversation_make's document_quality

    report = study_report(study=study, pfilter=ParticipationFilter())

    (row,) = report.reliability
    assert row.rubric == "document_quality_v1"
    assert row.raters == ["llama", "staff:al", PARTICIPANT_RATER]
    units = [[judge.get(p.pk), staff.get(p.pk), own[p.pk]] for p in documents]
    assert row.alpha == pytest.approx(_alpha_by_hand(units))
    pairable = [[v for v in u if v is not None] for u in units]
    pairable = [u for u in pairable if len(u) >= 2]
    assert (row.units, row.values) == (len(pairable), sum(map(len, pairable)))
    assert row.units >= 4
    complete = [u for u in units if None not in u]
    assert row.complete == len(complete)
    expected_icc = _icc_by_hand(complete) if len(complete) >= 2 else math.nan
    assert row.icc == pytest.approx(expected_icc, nan_ok=True)
    pairs = {(a.a, a.b): a for a in report.agreement}
    staff_rater = "staff:al (document_quality_v1)"
    assert pairs[("llama (document_quality_v1)", staff_rater)].n == len(set(judge) & set(staff))
    assert pairs[(staff_rater, PARTICIPANT_RATER)].n == 4
    # The staff rater is not the dashboard's judge, whatever they scored.
    assert report.judge == ("llama", "document_quality_v1")

    client.force_login(get_user_model().objects.create_user("lead", is_staff=True))
    page = client.get(f"/dashboard/{collected.slug}/").content.decode()
    assert "data-reliability" in page
    assert f"{row.alpha:.3f}" in page
    assert "ICC(2,1)" in page
