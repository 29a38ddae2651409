"""Welch's one-way ANOVA (unequal variances), against statsmodels as an independent reference,
and as the declared omnibus test of a pre-registration."""

import math

import numpy as np
import pytest
from statsmodels.stats.oneway import anova_oneway

from studyapp.dashboards import stats
from studyapp.participants.models import Status
from studyapp.studies.spec import (
    PREREG_OMNIBUS,
    StudySpecError,
    parse_study_file,
    preregistration_hash,
)
from tests.dashboards.test_preregistration import (
    PREREG_YAML,
    block,
    page,
    preregistered_known,
    reference_with,
    values,
)

UNEQUAL = {
    "a": [1.0, 2.0, 3.0, 4.0, 4.0],
    "b": [3.0, 5.0, 6.0, 6.0],
    "c": [7.0, 8.0, 8.0, 9.0, 10.0, 2.0, 15.0],
}


def reference(groups):
    return anova_oneway([np.asarray(v) for v in groups.values()], use_var="unequal")


@pytest.mark.parametrize("groups", [
    UNEQUAL,
    {"x": [10.1, 9.8, 10.4], "y": [12.0, 3.5, 20.1, 7.7, 9.9, 14.2]},
    {"p": [1, 1, 2, 9], "q": [5, 6, 5, 6, 5], "r": [2, 8, 3, 9, 4, 7], "s": [3, 3, 4]},
])
def test_welch_anova_equals_statsmodels(groups):
    f, df1, df2, p = stats.welch_anova([np.asarray(v, dtype=float) for v in groups.values()])
    expected = reference(groups)
    assert f == pytest.approx(expected.statistic, rel=1e-10)
    assert (df1, df2) == pytest.approx(tuple(expected.df), rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-10)


def test_welch_anova_differs_from_the_classic_anova_when_variances_differ():
    found = stats.omnibus(UNEQUAL)
    assert found.welch_f == pytest.approx(reference(UNEQUAL).statistic, rel=1e-10)
    assert found.welch_p == pytest.approx(reference(UNEQUAL).pvalue, rel=1e-10)
    assert not math.isclose(found.welch_p, found.anova_p, rel_tol=1e-3)


def test_welch_anova_is_undefined_for_a_constant_arm_or_a_single_arm():
    assert math.isnan(stats.welch_anova([np.array([2.0, 2.0]), np.array([1.0, 3.0])])[3])
    assert math.isnan(stats.welch_anova([np.array([1.0, 3.0])])[0])
    assert math.isnan(stats.omnibus({"a": [1, 2], "b": [3]}).welch_p)


def test_a_preregistration_may_declare_the_omnibus_test():
    spec = parse_study_file(reference_with(
        PREREG_YAML.format(test="welch", target=3) + "  omnibus: welch_anova\n"
    ))
    assert spec["preregistration"]["omnibus"] == "welch_anova"
    assert "welch_anova" in PREREG_OMNIBUS
    # A plan that declares none keeps the hash it had before the key existed.
    plain = parse_study_file(reference_with(PREREG_YAML.format(test="welch", target=3)))
    assert "omnibus" not in plain["preregistration"]
    assert preregistration_hash(plain["preregistration"]) != preregistration_hash(
        spec["preregistration"])


def test_an_unknown_omnibus_test_is_refused():
    with pytest.raises(StudySpecError, match=r"preregistration\.omnibus"):
        parse_study_file(reference_with(
            PREREG_YAML.format(test="welch", target=3) + "  omnibus: friedman\n"
        ))


def test_the_declared_welch_anova_is_the_primary_omnibus_result(staff_client):
    known = preregistered_known(omnibus="welch_anova", target_n_per_arm=3)
    response = page(staff_client, known)
    planned = response.context["report"].preregistered.omnibus
    groups = values(known, "document_quality",
                    keep=lambda b: b.spec.status == Status.COMPLETED and not b.spec.is_test
                    and b.spec.attention_passed is not False)
    arms = sorted({arm for pair in block()["comparisons"] for arm in pair})
    expected = reference({arm: groups[arm] for arm in arms})
    assert planned.test == "welch_anova"
    assert not planned.hidden
    assert planned.statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert planned.p == pytest.approx(expected.pvalue, rel=1e-10)
    assert b'data-planned-omnibus="welch_anova"' in response.content


def test_the_declared_omnibus_is_hidden_with_the_primary(staff_client):
    known = preregistered_known(omnibus="welch_anova", target_n_per_arm=50)
    planned = page(staff_client, known).context["report"].preregistered.omnibus
    assert planned.hidden
    assert math.isnan(planned.p)
    assert math.isnan(planned.statistic)
