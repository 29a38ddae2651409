"""Omnibus tests across the arms and the per-document-type tables, against scipy."""

import math

import pytest
from django.urls import reverse
from scipy import stats as sps

from studyapp.dashboards import stats
from studyapp.participants.models import Status
from tests.dashboards.builders import ARMS, build_known_study, known_specs

EMAIL = (0, 1, 4, 5, 8, 9)  # known_specs indexes written as emails; the rest are blog posts


def test_omnibus_equals_scipy():
    groups = {"a": [1, 2, 3, 4, 4], "b": [3, 5, 6, 6], "c": [7, 8, 8, 9, 10, 2]}
    found = stats.omnibus(groups)
    kruskal = sps.kruskal(*groups.values())
    anova = sps.f_oneway(*groups.values())
    assert (found.k, found.n) == (3, 15)
    assert found.kruskal_h == pytest.approx(kruskal.statistic)
    assert found.kruskal_p == pytest.approx(kruskal.pvalue)
    assert found.anova_f == pytest.approx(anova.statistic)
    assert found.anova_p == pytest.approx(anova.pvalue)


def test_omnibus_leaves_out_arms_below_two_values_and_needs_two_arms():
    found = stats.omnibus({"a": [1, 2, 3], "b": [4], "c": [5, 6, 9]})
    assert found.k == 2
    assert found.kruskal_p == pytest.approx(sps.kruskal([1, 2, 3], [5, 6, 9]).pvalue)
    assert math.isnan(stats.omnibus({"a": [1, 2], "b": [3]}).kruskal_p)
    assert math.isnan(stats.omnibus({"a": [2, 2], "b": [2, 2]}).anova_p)


def test_corrections():
    pvalues = [0.01, 0.04, math.nan, 0.03]
    assert stats.bonferroni(pvalues)[:2] == pytest.approx([0.03, 0.12])
    assert math.isnan(stats.bonferroni(pvalues)[2])
    assert stats.adjust(pvalues, "holm")[3] == pytest.approx(0.06)
    assert stats.adjust(pvalues, "none")[1] == 0.04
    with pytest.raises(ValueError, match="correction"):
        stats.adjust(pvalues, "fdr")


def quality_groups(built, doc_type=None):
    groups = {arm: [] for arm in ARMS}
    for b in built:
        s = b.spec
        counted = (s.arm and s.status == Status.COMPLETED and not s.is_test
                   and s.attention_passed is not False)
        if counted and (doc_type is None or s.document_type == doc_type):
            groups[s.arm].append(float(s.document_quality))
    return groups


@pytest.fixture
def two_types(db):
    specs = known_specs()
    for i in EMAIL:
        specs[i].document_type = "email"
    return build_known_study(specs=specs)


def test_page_omnibus_per_outcome_equals_scipy(staff_client, two_types):
    response = staff_client.get(reverse("dashboards:study", args=[two_types.study.slug]))
    quality = next(o for o in response.context["report"].outcomes if o.key == "document_quality")
    groups = quality_groups(two_types.built)
    assert quality.omnibus.kruskal_p == pytest.approx(sps.kruskal(*groups.values()).pvalue)
    assert quality.omnibus.anova_p == pytest.approx(sps.f_oneway(*groups.values()).pvalue)
    assert b'data-omnibus="document_quality"' in response.content


def test_outcome_tables_by_document_type_equal_scipy(staff_client, two_types):
    response = staff_client.get(reverse("dashboards:study", args=[two_types.study.slug]))
    breakdown = {d.document_type: d for d in response.context["report"].by_document_type}
    assert sorted(breakdown) == ["blog_post", "email"]
    for doc_type, table in breakdown.items():
        groups = quality_groups(two_types.built, doc_type)
        assert table.n_by_arm == {arm: len(v) for arm, v in groups.items()}
        quality = next(o for o in table.outcomes if o.key == "document_quality")
        for arm, values in groups.items():
            assert quality.summaries[arm].n == len(values)
            assert quality.summaries[arm].mean == pytest.approx(sum(values) / len(values))
        kruskal = sps.kruskal(*[v for v in groups.values() if len(v) >= 2])
        assert quality.omnibus.kruskal_p == pytest.approx(kruskal.pvalue)
    assert b'data-doc-type="email"' in response.content
