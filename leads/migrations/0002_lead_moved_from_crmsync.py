"""Lead moves from the crmsync app to leads, the app that owns identity. Its table keeps
its name (crmsync_lead), so this changes Django's state only; rows and relations stay."""

import django.db.models.deletion
import leads.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('crmsync', '0006_leaddelivery_looked_up_at'),
        ('leads', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
                migrations.CreateModel(
                    name='Lead',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('external_id', models.CharField(default=leads.models.new_external_id, editable=False, max_length=64, unique=True)),
                        ('email', models.CharField(blank=True, max_length=254)),
                        ('first_name', models.CharField(blank=True, max_length=200)),
                        ('last_name', models.CharField(blank=True, max_length=200)),
                        ('phone', models.CharField(blank=True, max_length=50)),
                        ('company', models.CharField(blank=True, max_length=200)),
                        ('country', models.CharField(blank=True, max_length=100)),
                        ('attribution', models.JSONField(blank=True, default=dict, help_text='Last touch: UTM values, referrer, landing page.')),
                        ('first_touch', models.JSONField(blank=True, default=dict, help_text='First touch, kept as it was.')),
                        ('attributes', models.JSONField(blank=True, default=dict, help_text='Custom attributes from mappings.')),
                        ('field_sources', models.JSONField(blank=True, default=dict, editable=False, help_text='field -> the source slug that set its value (merge rules).')),
                        ('lifecycle_stage', models.CharField(choices=[('lead', 'Lead'), ('mql', 'Marketing-qualified lead'), ('sql', 'Sales-qualified lead'), ('customer', 'Customer')], default='lead', max_length=10)),
                        ('score', models.IntegerField(default=0)),
                        ('marketing_opt_in', models.BooleanField(blank=True, null=True)),
                        ('consent_at', models.DateTimeField(blank=True, null=True)),
                        ('consent_text', models.CharField(blank=True, help_text='The wording or its version.', max_length=1000)),
                        ('consent_source', models.CharField(blank=True, help_text='Where it was given (form, page).', max_length=500)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('company_record', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='leads', to='leads.company', verbose_name='company (by domain)')),
                        ('merged_into', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='merged_leads', to='leads.lead')),
                        ('owner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='leads', to='leads.owner')),
                        ('team', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='leads', to='leads.team')),
                    ],
                    options={
                        'db_table': 'crmsync_lead',
                        'ordering': ['-updated_at'],
                    },
                ),
                migrations.AlterField(
                    model_name='leaddecision',
                    name='lead',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='decisions', to='leads.lead'),
                ),
                migrations.AlterField(
                    model_name='leadidentity',
                    name='lead',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='identities', to='leads.lead'),
                ),
                migrations.AddIndex(
                    model_name='lead',
                    index=models.Index(fields=['last_name', 'first_name'], name='lead_name'),
                ),
                migrations.AddConstraint(
                    model_name='lead',
                    constraint=models.UniqueConstraint(condition=models.Q(('email', ''), _negated=True), fields=('email',), name='lead_unique_email'),
                ),
        ]),
    ]
