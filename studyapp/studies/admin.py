"""Admin for studies: open/close a study and read its versions. Versions come from study files."""

import json

from django.contrib import admin
from django.utils.html import format_html

from studyapp.studies.models import Condition, Study, StudyVersion


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class StudyVersionInline(ReadOnlyInline):
    model = StudyVersion
    fields = ("number", "created_at", "source_sha256")
    readonly_fields = fields


class ConditionInline(ReadOnlyInline):
    model = Condition
    fields = ("name", "weight", "backend")
    readonly_fields = fields


# Frozen when the study opens and set by the dashboard's unlock: shown, never edited here.
PREREGISTRATION_FIELDS = (
    "preregistration_sha256", "preregistration_frozen_at", "preregistration_version",
    "primary_unlocked_at", "primary_unlocked_by",
)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "is_open", "preview_count", "created_at")
    list_filter = ("is_open",)
    search_fields = ("slug", "title")
    fields = (
        "slug", "title", "is_open", "pilot_key", "simulation_key", "preview_count", "created_at",
        *PREREGISTRATION_FIELDS,
    )
    readonly_fields = (
        "slug", "pilot_key", "simulation_key", "preview_count", "created_at",
        *PREREGISTRATION_FIELDS,
    )
    inlines = [StudyVersionInline]

    def has_add_permission(self, request):
        # Studies are created by loading a study file (manage.py load_study).
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the app (versions, logs): researchers read them, nobody edits them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StudyVersion)
class StudyVersionAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "study", "number", "created_at")
    list_filter = ("study",)
    fields = ("study", "number", "created_at", "source_sha256", "spec_pretty", "source_text")
    readonly_fields = fields
    inlines = [ConditionInline]

    @admin.display(description="normalised spec")
    def spec_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.spec, indent=2, ensure_ascii=False))


@admin.register(Condition)
class ConditionAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "weight", "backend")
    list_filter = ("version__study", "backend")
    list_select_related = ("version__study",)
    fields = ("version", "name", "weight", "backend", "config_pretty")
    readonly_fields = fields

    @admin.display(description="config")
    def config_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.config, indent=2, ensure_ascii=False))
