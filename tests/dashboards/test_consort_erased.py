"""The CONSORT Sankey counts erased participants (from their erasure records) so it adds up."""

from collections import defaultdict

from django.urls import reverse

from studyapp.erasure.models import ErasureRecord
from studyapp.erasure.services import participation_erase
from studyapp.participants.models import Status
from tests.dashboards.helpers import figures_of


def sankey_of(client, known):
    response = client.get(reverse("dashboards:study", args=[known.study.slug]))
    assert response.status_code == 200
    sankey = figures_of(response)["flow"]["data"][0]
    labels = [label.split(" (n=")[0] for label in sankey["node"]["label"]]
    counts = {
        label.split(" (n=")[0]: int(label.rsplit("(n=", 1)[1].rstrip(")"))
        for label in sankey["node"]["label"]
    }
    link = sankey["link"]
    flows = {
        (labels[s], labels[t]): v
        for s, t, v in zip(link["source"], link["target"], link["value"], strict=True)
    }
    return counts, flows


def test_erased_participants_leave_through_an_erased_box(staff_client, known):
    real = [b for b in known.built if not b.spec.is_test]
    in_arm = next(b for b in real if b.spec.arm and b.spec.status == Status.COMPLETED)
    unassigned = next(b for b in real if b.spec.arm is None)
    before, _ = sankey_of(staff_client, known)
    assert "Erased" not in before

    for b in (in_arm, unassigned):
        participation_erase(participation=b.participation, by=None, via="command")
    assert ErasureRecord.objects.filter(study=known.study).count() == 2

    counts, flows = sankey_of(staff_client, known)
    arm = in_arm.spec.arm
    assert counts["Erased"] == 2
    assert flows[(arm, "Erased")] == 1
    assert flows[("Entered", "Erased")] == 1
    # Everyone who entered is still counted, and the arm keeps its size.
    assert counts["Entered"] == before["Entered"] == len(real)
    assert counts["Consented"] == before["Consented"]
    assert counts[arm] == before[arm]
    assert counts["Completed, analysed"] == before["Completed, analysed"] - 1
    # Each node passes on what it receives: the flow adds up after the erasures.
    into, out = defaultdict(int), defaultdict(int)
    for (source, target), value in flows.items():
        out[source] += value
        into[target] += value
    assert out["Entered"] == counts["Entered"]
    assert into["Consented"] == out["Consented"] == counts["Consented"]
    assert into[arm] == out[arm] == counts[arm]
    assert into["Erased"] == counts["Erased"]
