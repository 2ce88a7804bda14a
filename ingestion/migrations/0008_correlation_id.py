from django.db import migrations, models

import audit.logging


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0007_web_forms_and_reviewer_corrections"),
    ]

    operations = [
        # Rows received before correlation IDs existed keep an empty one (a callable default
        # would give them all the same ID); new rows get one from the intake or the default.
        migrations.AddField(
            model_name="submission",
            name="correlation_id",
            field=models.CharField(blank=True, db_index=True, default="", editable=False, max_length=64,
                                   help_text="Made at intake; carried by the lead's decisions, push jobs, sync log "
                                             "rows and log lines."),
        ),
        migrations.AlterField(
            model_name="submission",
            name="correlation_id",
            field=models.CharField(blank=True, db_index=True, default=audit.logging.correlation_id_new, editable=False,
                                   max_length=64,
                                   help_text="Made at intake; carried by the lead's decisions, push jobs, sync log "
                                             "rows and log lines."),
        ),
    ]
