from django.db import migrations

# A starting list of disposable-inbox domains; RevOps edit it in the admin.
DISPOSABLE = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "trashmail.com",
              "temp-mail.org", "sharklasers.com", "dispostable.com", "getnada.com", "maildrop.cc")


def seed(apps, schema_editor) -> None:
    DomainBlock = apps.get_model("mapping", "DomainBlock")
    for domain in DISPOSABLE:
        DomainBlock.objects.get_or_create(domain=domain, defaults={"reason": "disposable inbox"})


class Migration(migrations.Migration):
    dependencies = [("mapping", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
