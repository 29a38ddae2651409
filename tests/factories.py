"""factory_boy factories for the study's records."""

import factory
from django.utils import timezone

from studyapp.feedback.models import Rating, Scale, SurveyKind, SurveyResponse
from studyapp.participants.models import Participation, Platform, Status
from studyapp.studies.models import Condition, Study, StudyVersion
from studyapp.writing.models import DocumentVersion, Message, Role


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    slug = factory.Sequence(lambda n: f"study-{n}")
    title = factory.LazyAttribute(lambda o: o.slug.title())


class StudyVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StudyVersion

    study = factory.SubFactory(StudyFactory)
    number = factory.Sequence(lambda n: n + 1)
    spec = factory.LazyFunction(dict)
    source_text = ""
    source_sha256 = ""


class ConditionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Condition

    version = factory.SubFactory(StudyVersionFactory)
    name = factory.Sequence(lambda n: f"arm{n}")
    weight = 1
    backend = "offline"
    config = factory.LazyAttribute(lambda o: {"name": o.name, "backend": "offline"})


class ParticipationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Participation

    version = factory.SubFactory(StudyVersionFactory)
    study = factory.LazyAttribute(lambda o: o.version.study)
    condition = factory.SubFactory(ConditionFactory, version=factory.SelfAttribute("..version"))
    platform = Platform.PROLIFIC
    external_id = factory.Sequence(lambda n: f"PID{n:08d}")
    document_type = "blog_post"
    topic = "A topic"
    status = Status.WRITING
    consented_at = factory.LazyFunction(timezone.now)
    assigned_at = factory.LazyFunction(timezone.now)
    writing_at = factory.LazyFunction(timezone.now)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    participation = factory.SubFactory(ParticipationFactory)
    turn = 1
    role = Role.USER
    text = "Hello"


class RatingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rating

    participation = factory.SubFactory(ParticipationFactory)
    scale = Scale.INTERACTION
    turn = 3
    value = 7


class DocumentVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DocumentVersion

    participation = factory.SubFactory(ParticipationFactory)
    number = factory.Sequence(lambda n: n + 1)
    text = "Draft"


class SurveyResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SurveyResponse

    participation = factory.SubFactory(ParticipationFactory)
    kind = SurveyKind.FINAL
    answers = factory.LazyFunction(dict)
