from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_hourly_counts"),
    ]

    operations = [
        migrations.AddField(
            model_name="synclog",
            name="correlation_id",
            field=models.CharField(blank=True, db_index=True, default="", max_length=64,
                                   help_text="The correlation ID of the submission whose push job made this call "
                                             "(see its timeline)."),
            preserve_default=False,
        ),
    ]
