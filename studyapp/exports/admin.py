from django.contrib import admin

from studyapp.exports.models import ExportJob


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "study", "kind", "format", "status", "progress", "created_at",
                    "requested_by")
    list_filter = ("study", "kind", "status")
    readonly_fields = ("study", "kind", "format", "params", "status", "progress", "message",
                       "path", "error", "requested_by", "created_at", "started_at",
                       "finished_at")
