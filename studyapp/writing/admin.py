"""Admin for the co-writing logs: messages and document versions, read-only."""

from django.contrib import admin

from studyapp.participants.admin import AccessLoggedAdmin
from studyapp.writing.models import DocumentVersion, EditBatch, Message


@admin.register(Message)
class MessageAdmin(AccessLoggedAdmin):
    list_display = (
        "participation",
        "turn",
        "role",
        "is_active",
        "backend",
        "model",
        "finish_reason",
        "ttft_ms",
        "created_at",
    )
    list_filter = ("role", "is_active", "backend", "finish_reason")
    list_select_related = ("participation",)
    search_fields = ("=participation__public_id", "=generation_id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Message._meta.fields]


@admin.register(DocumentVersion)
class DocumentVersionAdmin(AccessLoggedAdmin):
    list_display = ("participation", "number", "created_at")
    list_select_related = ("participation",)
    search_fields = ("=participation__public_id",)
    readonly_fields = ("participation", "number", "text", "created_at")
    fields = readonly_fields


@admin.register(EditBatch)
class EditBatchAdmin(AccessLoggedAdmin):
    list_display = ("participation", "document_version", "created_at")
    list_select_related = ("participation", "document_version")
    search_fields = ("=participation__public_id",)
    readonly_fields = ("participation", "document_version", "events", "created_at")
    fields = readonly_fields
