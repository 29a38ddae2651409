from django.contrib import admin

from studyapp.scoring.models import StudyJudge


@admin.register(StudyJudge)
class StudyJudgeAdmin(admin.ModelAdmin):
    list_display = ("name", "study", "is_active", "created_at")
    list_filter = ("study", "is_active")
