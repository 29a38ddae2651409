"""Admin for participations: read-only views of who took part and what they did."""

from django.contrib import admin

from studyapp.feedback.models import Rating, SurveyResponse
from studyapp.participants.models import AllocationSlot, Participation, ParticipationEvent
from studyapp.studies.admin import ReadOnlyAdmin, ReadOnlyInline
from studyapp.writing.models import Message


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ("turn", "role", "text", "is_active", "finish_reason", "error")
    readonly_fields = fields


class RatingInline(ReadOnlyInline):
    model = Rating
    fields = ("scale", "turn", "value", "created_at")
    readonly_fields = fields


class SurveyResponseInline(ReadOnlyInline):
    model = SurveyResponse
    fields = ("kind", "answers", "created_at")
    readonly_fields = fields


@admin.register(Participation)
class ParticipationAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id", "study", "platform", "status", "condition", "outcome", "is_test",
        "entered_at", "completed_at",
    )
    list_filter = (
        "study", "status", "condition", "platform", "outcome", "is_test", "is_simulated"
    )
    list_select_related = ("study", "condition__version__study")
    # Exact matches only: a UUID or a platform id is looked up, never scanned for substrings.
    search_fields = ("=public_id", "=external_id")
    date_hierarchy = "entered_at"
    readonly_fields = (
        "public_id", "study", "version", "condition", "platform", "external_id", "platform_data",
        "is_test", "is_simulated", "document_type", "topic", "status", "outcome", "completion_code",
        "attention_passed", "entered_at", "consented_at", "assigned_at", "writing_at",
        "finished_at", "completed_at", "declined_at", "returned_at", "timed_out_at",
        "excluded_at", "last_seen_at", "total_seconds", "active_seconds", "focus_losses",
    )
    fields = readonly_fields
    inlines = [MessageInline, RatingInline, SurveyResponseInline]


@admin.register(ParticipationEvent)
class ParticipationEventAdmin(ReadOnlyAdmin):
    list_display = ("participation", "kind", "at")
    list_filter = ("kind",)
    list_select_related = ("participation",)
    search_fields = ("=participation__public_id",)
    readonly_fields = ("participation", "kind", "at", "data")
    fields = readonly_fields


@admin.register(AllocationSlot)
class AllocationSlotAdmin(ReadOnlyAdmin):
    list_display = ("version", "block", "position", "condition", "participation")
    list_filter = ("version__study",)
    list_select_related = ("version__study", "condition__version__study", "participation")
    readonly_fields = ("version", "block", "position", "condition", "participation")
    fields = readonly_fields
