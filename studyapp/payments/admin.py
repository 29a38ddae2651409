from django.contrib import admin

from studyapp.payments.models import BonusBatch, BonusLedgerEntry, ProlificRun, ProlificStudy


@admin.register(BonusLedgerEntry)
class BonusLedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("participation", "amount", "reason", "created_at", "paid_batch")
    list_filter = ("participation__study", "reason")
    # Paid entries are history: edit nothing that a file has already carried out.
    readonly_fields = ("paid_batch", "created_at")
    raw_id_fields = ("participation",)


@admin.register(BonusBatch)
class BonusBatchAdmin(admin.ModelAdmin):
    list_display = ("pk", "study", "created_at", "created_by", "pay_state")
    readonly_fields = ("study", "created_at", "created_by", "pay_state", "prolific_payment_id",
                       "pay_sent_at", "paid_at", "pay_error")


@admin.register(ProlificStudy)
class ProlificStudyAdmin(admin.ModelAdmin):
    list_display = ("study", "prolific_study_id", "synced_at")
    readonly_fields = ("synced_at",)


@admin.register(ProlificRun)
class ProlificRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "study", "action", "state", "created_at", "finished_at")
    list_filter = ("state", "action")
    readonly_fields = ("study", "action", "state", "message", "requested_by", "created_at",
                       "started_at", "finished_at")
