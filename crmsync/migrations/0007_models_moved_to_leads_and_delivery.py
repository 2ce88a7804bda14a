"""The crmsync app's models now live in leads and delivery (their own migrations take them
over with the same tables): this drops them from this app's state only, and renames their
content types so permissions, groups and admin history follow them."""

from django.db import migrations


MOVED = {"lead": "leads", "destination": "delivery", "destinationfield": "delivery", "leaddelivery": "delivery",
         "ratebudget": "delivery", "pushjob": "delivery"}


def content_types_follow(apps, schema_editor):
    for model, app_label in MOVED.items():
        _content_type_move(apps, model, old_label="crmsync", new_label=app_label)


def content_types_return(apps, schema_editor):
    for model, app_label in MOVED.items():
        _content_type_move(apps, model, old_label=app_label, new_label="crmsync")


def _content_type_move(apps, model: str, *, old_label: str, new_label: str) -> None:
    """Rename the content type; if the new one exists already (a partial upgrade such as
    `migrate leads` ran, and its post_migrate created it), move the permissions, their grants
    and the admin history onto it and drop the old one."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    LogEntry = apps.get_model("admin", "LogEntry")
    old = ContentType.objects.filter(app_label=old_label, model=model).first()
    if old is None:
        return
    new = ContentType.objects.filter(app_label=new_label, model=model).first()
    if new is None:
        old.app_label = new_label
        old.save(update_fields=["app_label"])
        return
    for permission in Permission.objects.filter(content_type=old):
        twin = Permission.objects.filter(content_type=new, codename=permission.codename).first()
        if twin is None:
            permission.content_type = new
            permission.save(update_fields=["content_type"])
            continue
        twin.user_set.add(*permission.user_set.all())
        twin.group_set.add(*permission.group_set.all())
        permission.delete()
    LogEntry.objects.filter(content_type=old).update(content_type=new)
    old.delete()


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('admin', '0003_logentry_add_action_flag_choices'),
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
