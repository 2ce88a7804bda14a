from django.db import migrations, models


class Migration(migrations.Migration):
    """A marker set just before a push job's CRM call, so that taking over the job of a killed
    worker counts the attempt only if the request may have reached the CRM."""

    dependencies = [
        ("delivery", "0003_two_way_sync"),
    ]

    operations = [
        migrations.AddField(
            model_name="pushjob",
            name="request_sent",
            field=models.BooleanField(default=False, editable=False),
        ),
    ]
