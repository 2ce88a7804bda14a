"""The crmsync app's models now live in leads and delivery (their own migrations take them
over with the same tables): this drops them from this app's state only, and renames their
content types so permissions, groups and admin history follow them."""

from django.db import migrations


MOVED = {"lead": "leads", "destination": "delivery", "destinationfield": "delivery", "leaddelivery": "delivery",
         "ratebudget": "delivery", "pushjob": "delivery"}


def content_types_follow(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        if not ContentType.objects.filter(app_label=app_label, model=model).exists():
            ContentType.objects.filter(app_label="crmsync", model=model).update(app_label=app_label)


def content_types_return(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        if not ContentType.objects.filter(app_label="crmsync", model=model).exists():
            ContentType.objects.filter(app_label=app_label, model=model).update(app_label="crmsync")


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('audit', '0003_synclog_points_at_leads_and_delivery'),
        ('ingestion', '0006_submission_lead_in_leads'),
        ('delivery', '0001_moved_from_crmsync'),
        ('leads', '0002_lead_moved_from_crmsync'),
        ('crmsync', '0006_leaddelivery_looked_up_at'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
                migrations.RemoveField(
                    model_name='pushjob',
                    name='destination',
                ),
                migrations.RemoveField(
                    model_name='destinationfield',
                    name='destination',
                ),
                migrations.RemoveField(
                    model_name='leaddelivery',
                    name='destination',
                ),
                migrations.RemoveField(
                    model_name='lead',
                    name='company_record',
                ),
                migrations.RemoveField(
                    model_name='lead',
                    name='merged_into',
                ),
                migrations.RemoveField(
                    model_name='lead',
                    name='owner',
                ),
                migrations.RemoveField(
                    model_name='lead',
                    name='team',
                ),
                migrations.RemoveField(
                    model_name='leaddelivery',
                    name='lead',
                ),
                migrations.RemoveField(
                    model_name='pushjob',
                    name='lead',
                ),
                migrations.DeleteModel(
                    name='RateBudget',
                ),
                migrations.DeleteModel(
                    name='DestinationField',
                ),
                migrations.DeleteModel(
                    name='Destination',
                ),
                migrations.DeleteModel(
                    name='LeadDelivery',
                ),
                migrations.DeleteModel(
                    name='Lead',
                ),
                migrations.DeleteModel(
                    name='PushJob',
                ),
        ]),
        migrations.RunPython(content_types_follow, content_types_return),
    ]
