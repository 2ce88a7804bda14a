"""Destinations, field maps, deliveries, rate budgets and push jobs move from the crmsync
app to delivery. Their tables keep their names (crmsync_*), so this changes Django's state
only; rows and relations stay."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('crmsync', '0006_leaddelivery_looked_up_at'),
        ('leads', '0002_lead_moved_from_crmsync'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
                migrations.CreateModel(
                    name='Destination',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200)),
                        ('kind', models.CharField(choices=[('hubspot', 'HubSpot'), ('salesforce', 'Salesforce'), ('rest', 'REST/JSON endpoint')], default='hubspot', max_length=20)),
                        ('auth_method', models.CharField(choices=[('private_app', 'HubSpot private-app token'), ('oauth', 'HubSpot OAuth (refresh token)'), ('client_credentials', 'Salesforce client credentials'), ('jwt_bearer', 'Salesforce JWT bearer'), ('bearer', 'Static bearer token'), ('none', 'None (headers and signing only)')], default='private_app', max_length=30)),
                        ('base_url', models.URLField(help_text='HubSpot: https://api.hubapi.com. Salesforce: your login or My Domain URL, e.g. https://acme.my.salesforce.com. REST: the endpoint URL. Or the built-in sandbox.')),
                        ('api_version', models.CharField(blank=True, default='62.0', help_text='Salesforce REST API version.', max_length=10)),
                        ('object_model', models.CharField(choices=[('contact', 'HubSpot contact'), ('contact_company', 'HubSpot contact + company associated by domain'), ('lead', 'Salesforce Lead'), ('contact_account', 'Salesforce Contact + Account'), ('record', 'One JSON record per lead (REST)')], default='contact', max_length=30)),
                        ('upsert_property', models.CharField(default='crmsync_external_id', help_text="The upsert key: a unique HubSpot property, or a Salesforce External ID field (e.g. Crmsync_External_Id__c), holding our lead's external ID.", max_length=100)),
                        ('company_upsert_property', models.CharField(blank=True, default='crmsync_domain', help_text="Unique company property (HubSpot) or Account External ID field (Salesforce) holding the company's domain.", max_length=100)),
                        ('credentials_env', models.CharField(blank=True, help_text='Name of an environment variable holding the token, or a JSON object of credentials. Takes precedence over stored credentials.', max_length=100)),
                        ('credentials_encrypted', models.TextField(blank=True, editable=False)),
                        ('access_token_encrypted', models.TextField(blank=True, editable=False)),
                        ('access_token_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('instance_url', models.URLField(blank=True, editable=False, help_text='Salesforce: returned with the token.')),
                        ('http_method', models.CharField(choices=[('POST', 'POST'), ('PUT', 'PUT'), ('PATCH', 'PATCH')], default='POST', max_length=10)),
                        ('headers', models.JSONField(blank=True, default=dict, help_text='Extra request headers (not secret).')),
                        ('body_template', models.TextField(blank=True, help_text='REST: a JSON template; "{{ field }}" strings are replaced by the lead\'s mapped values (empty: the mapped fields as one JSON object).')),
                        ('signature_header', models.CharField(blank=True, help_text='REST: send an HMAC-SHA256 of the body in this header.', max_length=100)),
                        ('rate_limit_requests', models.PositiveIntegerField(default=100, help_text='At most this many requests per window, across all workers.')),
                        ('rate_limit_window_seconds', models.PositiveIntegerField(default=10)),
                        ('daily_budget', models.PositiveIntegerField(default=250000, help_text='Requests per day (UTC), across all workers.')),
                        ('batch_size', models.PositiveIntegerField(blank=True, help_text="Records per call; empty for the CRM's maximum (HubSpot 100, Salesforce 200).", null=True)),
                        ('batch_wait_seconds', models.FloatField(default=10.0, help_text='A new lead waits up to this long for others to share its batch call; a full batch goes at once. 0 sends every lead as soon as it is due.')),
                        ('changed_fields_only', models.BooleanField(default=True, help_text='Send only the fields that changed since the last successful push.')),
                        ('lookup_existing', models.BooleanField(default=True, help_text="Before creating a record, look for one the CRM already has with the lead's email (typed in by hand, imported) and update that one instead.")),
                        ('is_active', models.BooleanField(default=True)),
                        ('paused_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('paused_reason', models.TextField(blank=True, editable=False)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        'db_table': 'crmsync_destination',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='RateBudget',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('recent_ms', models.JSONField(blank=True, default=list)),
                        ('day', models.CharField(blank=True, max_length=10)),
                        ('day_count', models.PositiveIntegerField(default=0)),
                        ('blocked_until_ms', models.BigIntegerField(default=0)),
                        ('blocked_reason', models.CharField(blank=True, max_length=200)),
                        ('destination', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='rate_budget', to='delivery.destination')),
                    ],
                    options={
                        'db_table': 'crmsync_ratebudget',
                    },
                ),
                migrations.CreateModel(
                    name='DestinationField',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('source', models.CharField(help_text="Lead field: email, first_name, last_name, phone, company, country, domain, company_name (company, else the company record's name or domain), external_id, lifecycle_stage, score, team, owner.<name|email|hubspot_owner_id|salesforce_user_id>, marketing_opt_in, consent_at, consent_text, consent_source, attributes.<name>, attribution.<name> (last touch) or first_touch.<name>.", max_length=100)),
                        ('target', models.CharField(help_text='CRM property or field API name.', max_length=100)),
                        ('object', models.CharField(choices=[('primary', 'Contact / Lead / record'), ('company', 'Company / Account')], default='primary', max_length=10)),
                        ('value_map', models.JSONField(blank=True, default=dict, help_text='Optional: our value -> CRM picklist value, e.g. {"de": "Germany"}.')),
                        ('default', models.CharField(blank=True, help_text='Sent when the lead has no value.', max_length=255)),
                        ('destination', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='fields', to='delivery.destination')),
                    ],
                    options={
                        'db_table': 'crmsync_destinationfield',
                        'ordering': ['destination', 'object', 'id'],
                        'constraints': [models.UniqueConstraint(fields=('destination', 'object', 'target'), name='destinationfield_unique_target')],
                    },
                ),
                migrations.CreateModel(
                    name='LeadDelivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('crm_record_id', models.CharField(blank=True, max_length=100)),
                        ('company_crm_id', models.CharField(blank=True, max_length=100)),
                        ('pushed', models.JSONField(blank=True, default=dict, help_text='CRM field -> value as last pushed.')),
                        ('pushed_at', models.DateTimeField(blank=True, null=True)),
                        ('looked_up_at', models.DateTimeField(blank=True, null=True)),
                        ('destination', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='delivery.destination')),
                        ('lead', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='leads.lead')),
                    ],
                    options={
                        'db_table': 'crmsync_leaddelivery',
                        'constraints': [models.UniqueConstraint(fields=('lead', 'destination'), name='leaddelivery_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='PushJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('in_progress', 'In progress'), ('succeeded', 'Succeeded'), ('review', 'Needs review'), ('dead', 'Dead letter'), ('superseded', 'Superseded by a newer job')], default='pending', max_length=20)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('leased_until', models.DateTimeField(blank=True, null=True)),
                        ('claim_token', models.UUIDField(blank=True, editable=False, null=True)),
                        ('last_error', models.TextField(blank=True)),
                        ('last_error_code', models.CharField(blank=True, max_length=100)),
                        ('operation', models.CharField(blank=True, help_text='create, update or noop, once succeeded.', max_length=20)),
                        ('crm_record_id', models.CharField(blank=True, max_length=100)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('destination', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='push_jobs', to='delivery.destination')),
                        ('lead', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='push_jobs', to='leads.lead')),
                    ],
                    options={
                        'db_table': 'crmsync_pushjob',
                        'ordering': ['-created_at'],
                        'indexes': [models.Index(fields=['status', 'next_attempt_at'], name='pushjob_due'), models.Index(fields=['status', 'leased_until'], name='pushjob_lease')],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('lead', 'destination'), name='pushjob_one_pending_per_lead_destination'), models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'in_progress', 'succeeded', 'review', 'dead', 'superseded'])), name='pushjob_status_valid')],
                    },
                ),
        ]),
    ]
