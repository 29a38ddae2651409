from django.db import migrations, models


def classify_stored_errors(apps, schema_editor):
    """Give every failed reply already stored its kind: one UPDATE per distinct error text."""
    from studyapp.writing.errorkinds import error_kind

    Message = apps.get_model("writing", "Message")
    failed = Message.objects.exclude(error="")
    for text in failed.values_list("error", flat=True).distinct().iterator():
        failed.filter(error=text).update(error_kind=error_kind(text))


class Migration(migrations.Migration):
    dependencies = [
        ("writing", "0006_merge_20261207_1915"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="error_kind",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.RunPython(classify_stored_errors, migrations.RunPython.noop),
    ]
