"""Admin for ratings, survey answers and automatic document scores, read-only."""

from django.contrib import admin

from studyapp.feedback.models import DocumentScore, Rating, SurveyResponse
from studyapp.participants.admin import AccessLoggedAdmin


@admin.register(Rating)
class RatingAdmin(AccessLoggedAdmin):
    list_display = ("participation", "scale", "turn", "value", "created_at")
    list_filter = ("scale", "turn")
    list_select_related = ("participation",)
    search_fields = ("=participation__public_id",)
    readonly_fields = ("participation", "scale", "turn", "value", "created_at")
    fields = readonly_fields


@admin.register(SurveyResponse)
class SurveyResponseAdmin(AccessLoggedAdmin):
    list_display = ("participation", "kind", "created_at")
    list_filter = ("kind",)
    list_select_related = ("participation",)
    search_fields = ("=participation__public_id",)
    readonly_fields = ("participation", "kind", "answers", "created_at")
    fields = readonly_fields


@admin.register(DocumentScore)
class DocumentScoreAdmin(AccessLoggedAdmin):
    list_display = ("participation", "judge", "rubric_version", "score", "created_at")
    list_filter = ("judge", "rubric_version")
    list_select_related = ("participation",)
    search_fields = ("=participation__public_id",)
    readonly_fields = (
        "participation", "judge", "rubric_version", "score", "rationale", "raw_output", "error",
        "created_at",
    )
    fields = readonly_fields
