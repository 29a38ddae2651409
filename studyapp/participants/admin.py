"""Admin for participations: read-only views of who took part and what they did."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from studyapp.feedback.models import Rating, SurveyResponse
from studyapp.participants.audit import Action, data_access_record
from studyapp.participants.decisions import (
    DecisionRefused,
    participation_exclude,
    participation_mark_returned,
)
from studyapp.participants.models import (
    AllocationSlot,
    DataAccess,
    Participation,
    ParticipationEvent,
    StatusChange,
)
from studyapp.studies.admin import ReadOnlyAdmin, ReadOnlyInline
from studyapp.studies.spec import exclusion_reasons
from studyapp.writing.models import Message


class AccessLoggedAdmin(ReadOnlyAdmin):
    """Read-only admin of participant data: each list or record shown goes in the access log."""

    def changelist_view(self, request, extra_context=None):
        data_access_record(user=request.user, action=Action.ADMIN_LIST,
                           detail=f"{self.opts.label_lower}?{request.GET.urlencode()}")
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        data_access_record(user=request.user, action=Action.ADMIN_RECORD,
                           detail=f"{self.opts.label_lower} {object_id}")
        return super().change_view(request, object_id, form_url, extra_context)


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


class StatusChangeInline(ReadOnlyInline):
    model = StatusChange
    fields = ("changed_at", "from_status", "to_status", "reason", "note", "changed_by", "via")
    readonly_fields = fields
    show_change_link = False


@admin.action(description="Exclude from analysis (with a reason)…")
def exclude_selected(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Participation]
) -> HttpResponse | None:
    chosen = list(queryset.select_related("version", "study"))
    if len({p.study_id for p in chosen}) > 1:
        modeladmin.message_user(request, "Exclude participations of one study at a time.",
                                messages.ERROR)
        return None
    reasons = exclusion_reasons(chosen[0].version.spec)
    reason = request.POST.get("reason")
    if reason is None:  # first step: ask for the reason
        context = {**modeladmin.admin_site.each_context(request), "participations": chosen,
                   "reasons": reasons, "opts": modeladmin.model._meta,
                   "action": "exclude_selected", "title": "Exclude from analysis"}
        return TemplateResponse(request, "admin/participants/exclude.html", context)
    _decide(modeladmin, request, chosen, lambda p: participation_exclude(
        participation=p, reason=reason, note=request.POST.get("note", ""), by=request.user,
        via="admin"))
    return None


@admin.action(description="Mark returned (gave up before finishing)")
def mark_returned_selected(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Participation]
) -> None:
    _decide(modeladmin, request, list(queryset.select_related("version")),
            lambda p: participation_mark_returned(participation=p, by=request.user, via="admin"))


def _decide(modeladmin, request, participations, decide) -> None:  # type: ignore[no-untyped-def]
    done, refused = 0, []
    for participation in participations:
        try:
            decide(participation)
            done += 1
        except DecisionRefused as exc:
            refused.append(f"{participation.public_id}: {exc}")
    modeladmin.message_user(request, f"{done} participation(s) changed.", messages.SUCCESS)
    for line in refused:
        modeladmin.message_user(request, line, messages.WARNING)


@admin.register(Participation)
class ParticipationAdmin(AccessLoggedAdmin):
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
        "erase_link",
    )
    fields = readonly_fields
    inlines = [StatusChangeInline, MessageInline, RatingInline, SurveyResponseInline]
    actions = [exclude_selected, mark_returned_selected]

    @admin.display(description="withdrawal")
    def erase_link(self, obj: Participation) -> str:
        # Deleting here is refused: erasure is the supported route (it keeps a record and
        # removes the exports).
        url = reverse("dashboards:conversation", args=[obj.study.slug, obj.public_id])
        return format_html('<a href="{}#manage-h">Erase this participant\'s data…</a>', url)


@admin.register(ParticipationEvent)
class ParticipationEventAdmin(AccessLoggedAdmin):
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


@admin.register(StatusChange)
class StatusChangeAdmin(AccessLoggedAdmin):
    list_display = ("participation", "from_status", "to_status", "reason", "changed_by", "via",
                    "changed_at")
    list_filter = ("to_status", "reason", "via")
    list_select_related = ("participation", "changed_by")
    search_fields = ("=participation__public_id",)
    readonly_fields = ("participation", "from_status", "to_status", "reason", "note",
                       "changed_by", "via", "changed_at")
    fields = readonly_fields


@admin.register(DataAccess)
class DataAccessAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "action", "study_slug", "participation", "detail")
    list_filter = ("action", "study_slug")
    search_fields = ("=username", "=participation")
    date_hierarchy = "at"
    readonly_fields = ("at", "user", "username", "action", "study_slug", "participation",
                       "detail")
    fields = readonly_fields
