"""SyncLog's relations now name leads.Lead and delivery's models (same tables): state only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_synclog_outcome'),
        ('delivery', '0001_moved_from_crmsync'),
        ('leads', '0002_lead_moved_from_crmsync'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
                migrations.AlterField(
                    model_name='synclog',
                    name='destination',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='delivery.destination'),
                ),
                migrations.AlterField(
                    model_name='synclog',
                    name='lead',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='sync_logs', to='leads.lead'),
                ),
                migrations.AlterField(
                    model_name='synclog',
                    name='push_job',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='sync_logs', to='delivery.pushjob'),
                ),
        ]),
    ]
