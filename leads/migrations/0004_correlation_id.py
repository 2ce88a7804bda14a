from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0003_lead_field_times"),
    ]

    operations = [
        migrations.AddField(
            model_name="leaddecision",
            name="correlation_id",
            field=models.CharField(blank=True, db_index=True, default="", max_length=64,
                                   help_text="The correlation ID of the submission (or push) whose processing made "
                                             "this decision."),
            preserve_default=False,
        ),
    ]
