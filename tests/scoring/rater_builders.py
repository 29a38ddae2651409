"""A collected study whose final documents say nothing about who wrote them, for raters."""

from dataclasses import dataclass

from studyapp.participants.models import Participation
from studyapp.studies.services import study_load
from studyapp.writing.models import DocumentVersion
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import conversation_make

ARMS = ("base", "proactive_base", "collabllm")


@dataclass
class Collected:
    slug: str
    documents: dict[str, Participation]  # final text -> its participation


def collected_make(*, slug: str = "rated", per_arm: int = 1) -> Collected:
    """Completed documents in every arm, each final text unique and free of any id."""
    version = study_load(text=REFERENCE_STUDY.read_text(), slug=slug, offline=True).version
    documents = {}
    for n, arm in enumerate(ARMS * per_arm, start=1):
        participation = conversation_make(version=version, condition=arm).participation
        final = DocumentVersion.objects.filter(participation=participation).latest("number")
        final.text = f"Travelling cheaply, essay number {n}.\n\nTake the night train."
        final.save(update_fields=["text"])
        documents[final.text] = participation
    return Collected(slug=slug, documents=documents)
