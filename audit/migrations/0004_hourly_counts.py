"""HourlyCount: the bucketed counts behind the dashboard and alerts (audit.buckets)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_synclog_points_at_leads_and_delivery'),
    ]

    operations = [
        migrations.CreateModel(
            name='HourlyCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField(help_text='The start of the hour (UTC).')),
                ('metric', models.CharField(max_length=40)),
                ('subject_id', models.BigIntegerField(default=0)),
                ('outcome', models.CharField(max_length=40)),
                ('count', models.BigIntegerField(default=0, help_text="Events in the hour, or a gauge's highest sample.")),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('metric', 'hour', 'subject_id', 'outcome'), name='hourlycount_unique')],
            },
        ),
    ]
