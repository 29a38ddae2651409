from django.contrib import admin

from studyapp.erasure.models import ErasureRecord
from studyapp.studies.admin import ReadOnlyAdmin


@admin.register(ErasureRecord)
class ErasureRecordAdmin(ReadOnlyAdmin):
    list_display = ("pk", "study", "arm", "status", "erased_at", "erased_by", "via")
    list_filter = ("study", "via")
    readonly_fields = ("study", "version_number", "arm", "status", "is_test", "deleted",
                       "export_jobs_removed", "erased_by", "via", "erased_at")
    fields = readonly_fields
