from django.db import migrations, models

import studyapp.studies.models


def _one_key_each(apps, schema_editor) -> None:
    # AddField gives every existing study the same default; each needs its own secret.
    Study = apps.get_model("studies", "Study")
    for study in Study.objects.all():
        study.simulation_key = studyapp.studies.models.new_simulation_key()
        study.save(update_fields=["simulation_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0003_studyversion_prompts"),
    ]

    operations = [
        migrations.AddField(
            model_name="study",
            name="simulation_key",
            field=models.CharField(
                default=studyapp.studies.models.new_simulation_key, max_length=64
            ),
        ),
        migrations.RunPython(_one_key_each, migrations.RunPython.noop),
    ]
