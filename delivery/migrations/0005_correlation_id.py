from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0004_pushjob_request_sent"),
    ]

    operations = [
        migrations.AddField(
            model_name="pushjob",
            name="correlation_id",
            field=models.CharField(blank=True, db_index=True, default="", max_length=64,
                                   help_text="The correlation ID of the submission whose processing created or last "
                                             "refreshed this job."),
            preserve_default=False,
        ),
    ]
