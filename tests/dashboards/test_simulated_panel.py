"""The simulated-vs-real panel on the study page: its numbers against an independent
computation from the stored ratings, messages and documents."""

from __future__ import annotations

import math
from statistics import mean

import pytest
from django.urls import reverse
from scipy import stats as sps

from studyapp.feedback.models import FINAL_TURN, Rating, Scale
from studyapp.participants.models import Participation, Status
from studyapp.writing.models import DocumentVersion, Message, Role
from tests.dashboards.builders import ARMS, PSpec, build_known_study, completer, known_specs


def _simulated_specs() -> list[PSpec]:
    # The simulator ranks base and proactive_base the other way round on document quality.
    specs = [
        completer("base", 10, 8, 7, {3: 8, 6: 8}, 11.0),
        completer("base", 11, 7, 6, {3: 7, 6: 9}, 12.5),
        completer("base", 12, 9, 7, {3: 9, 6: 8}, 10.0),
        completer("proactive_base", 10, 5, 5, {3: 5, 6: 4}, 14.0),
        completer("proactive_base", 11, 6, 6, {3: 6, 6: 6}, 13.0),
        completer("collabllm", 10, 9, 9, {3: 9, 6: 9}, 9.0),
        completer("collabllm", 11, 10, 9, {3: 9, 6: 10}, 9.5),
    ]
    dropout = PSpec(arm="base", status=Status.WRITING, interaction={3: 2}, turns=3)
    inattentive = completer("collabllm", 12, 1, 1, {3: 1, 6: 1}, 8.0)
    inattentive.attention_passed = False
    for spec in [*specs, dropout, inattentive]:
        spec.is_simulated = True
    return [*specs, dropout, inattentive]


@pytest.fixture
def both(db):
    return build_known_study(specs=known_specs() + _simulated_specs())


def _people(study, simulated: bool) -> list[Participation]:
    # Completers who did not fail the attention check, real (not pilots) or simulated.
    qs = Participation.objects.filter(study=study, status=Status.COMPLETED, is_simulated=simulated)
    qs = qs.exclude(attention_passed=False)
    return list(qs if simulated else qs.filter(is_test=False))


def _outcomes(p: Participation) -> dict[str, float | None]:
    ratings = list(Rating.objects.filter(participation=p))
    final = {r.scale: r.value for r in ratings if r.turn == FINAL_TURN}
    chat = [r.value for r in ratings if r.scale == Scale.INTERACTION]
    users = [
        m.text for m in Message.objects.filter(participation=p, role=Role.USER, is_active=True)
    ]
    latest = DocumentVersion.objects.filter(participation=p).order_by("-number").first()
    return {
        "document_quality": final.get(Scale.DOCUMENT_QUALITY),
        "interaction_mean": mean(chat) if chat else None,
        "user_turns": len(users),
        "user_words": sum(len(t.split()) for t in users),
        "document_words": len(latest.text.split()) if latest else None,
        "time_spent_min": (p.completed_at - p.entered_at).total_seconds() / 60,
    }


def _by_arm(people: list[Participation], key: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for p in people:
        value = _outcomes(p)[key]
        if value is not None:
            out[p.condition.name].append(float(value))
    return out


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_the_panel_equals_an_independent_computation(staff_client, both):
    response = staff_client.get(reverse("dashboards:study", args=[both.study.slug]))
    panel = response.context["report"].simulated_vs_real
    real, sim = _people(both.study, False), _people(both.study, True)
    assert (panel.real_n, panel.simulated_n) == (len(real), len(sim)) == (12, 7)
    for outcome in panel.outcomes:
        r, s = _by_arm(real, outcome.key), _by_arm(sim, outcome.key)
        for pair in outcome.arms:
            assert pair.real_n == len(r[pair.arm])
            assert pair.simulated_n == len(s[pair.arm])
            assert _close(pair.real_mean, mean(r[pair.arm]))
            assert _close(pair.simulated_mean, mean(s[pair.arm]))
            welch = sps.ttest_ind(s[pair.arm], r[pair.arm], equal_var=False)
            ci = welch.confidence_interval(0.95)
            assert _close(pair.difference.diff, mean(s[pair.arm]) - mean(r[pair.arm]))
            if len(set(s[pair.arm])) > 1 or len(set(r[pair.arm])) > 1:
                assert _close(pair.difference.ci_low, float(ci.low)), outcome.key
                assert _close(pair.difference.ci_high, float(ci.high)), outcome.key
        rho = sps.spearmanr([mean(r[a]) for a in ARMS], [mean(s[a]) for a in ARMS]).statistic
        assert _close(outcome.spearman, float(rho)), outcome.key
    quality = next(o for o in panel.outcomes if o.key == "document_quality")
    # real means 5.5 < 7.0 < 8.25; simulated 8.0 > 5.5 < 9.5: ranks (1,2,3) vs (2,1,3)
    assert quality.spearman == pytest.approx(0.5)
    html = response.content.decode()
    assert 'data-figure-target="simulated_vs_real"' in html
    assert '<td class="n" rowspan="3" data-spearman>0.50</td>' in html


def test_the_panel_follows_the_pages_other_choices(staff_client, both):
    url = reverse("dashboards:study", args=[both.study.slug])
    itt = staff_client.get(url, {"view": "itt", "include_failed_attention": "1"})
    panel = itt.context["report"].simulated_vs_real
    assert panel.simulated_n == 9  # the dropout and the inattentive one too
    turns = next(o for o in panel.outcomes if o.key == "user_turns")
    base = next(a for a in turns.arms if a.arm == "base")
    assert base.simulated_n == 4
    assert base.simulated_mean == pytest.approx(mean([8, 8, 8, 3]))


def test_no_panel_without_simulated_participants(staff_client, db):
    known = build_known_study()
    response = staff_client.get(reverse("dashboards:study", args=[known.study.slug]))
    assert response.context["report"].simulated_vs_real is None
    assert 'id="simulated"' not in response.content.decode()
