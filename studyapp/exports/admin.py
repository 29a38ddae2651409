from django.contrib import admin, messages

from studyapp.exports.models import ExportJob


@admin.action(description="Retry stuck jobs (queued, failed, cancelled or silent)")
def retry_selected(modeladmin, request, queryset):
    # Imported here: the services pull in pyarrow, numpy and the model clients, which every
    # web process would otherwise load at start-up for an action few ever run.
    from studyapp.exports.services import export_job_retry

    done = sum(export_job_retry(job=job) for job in queryset)
    modeladmin.message_user(request, f"{done} job(s) queued again.", messages.SUCCESS)


@admin.action(description="Cancel queued or running jobs")
def cancel_selected(modeladmin, request, queryset):
    from studyapp.exports.services import export_job_cancel

    done = sum(export_job_cancel(job=job) for job in queryset)
    modeladmin.message_user(request, f"{done} job(s) cancelled.", messages.SUCCESS)


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "study", "kind", "format", "status", "progress", "created_at",
                    "requested_by")
    list_filter = ("study", "kind", "status")
    readonly_fields = ("study", "kind", "format", "params", "status", "progress", "message",
                       "path", "error", "requested_by", "created_at", "started_at",
                       "heartbeat_at", "finished_at")
    actions = [retry_selected, cancel_selected]
