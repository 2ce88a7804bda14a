from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_correlation_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="host:pid of the worker process.", max_length=200, unique=True)),
                ("started_at", models.DateTimeField()),
                ("beat_at", models.DateTimeField(db_index=True)),
            ],
            options={"ordering": ["-beat_at"]},
        ),
    ]
