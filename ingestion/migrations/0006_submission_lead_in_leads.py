"""Submission.lead now names leads.Lead (same table): state only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0005_alter_submission_lead_and_more'),
        ('leads', '0002_lead_moved_from_crmsync'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
                migrations.AlterField(
                    model_name='submission',
                    name='lead',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='submissions', to='leads.lead'),
                ),
        ]),
    ]
