"""A database at the pre-refactor migrations (Lead, Destination, PushJob... in the crmsync app),
filled with data the old code would have written, migrates forward to today's leaf nodes with
every row, relation, permission and admin history entry intact, read back through the current
models (leads.*, delivery.*); new rows get fresh ids afterwards (sequences intact)."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
import pytest

# The leaf nodes before the models moved out of crmsync; the apps not named here (Django's own,
# django_q) stay at their latest. None: the app had no migrations yet.
OLD_LEAVES = {
    "crmsync": "0006_leaddelivery_looked_up_at",
    "leads": "0001_initial",
    "ingestion": "0005_alter_submission_lead_and_more",
    "mapping": "0004_identity_help_texts",
    "audit": "0002_synclog_outcome",
    "sandbox": "0004_token_lifetime_default",
    "delivery": None,
}
REFACTOR = {
    ("leads", "0002_lead_moved_from_crmsync"),
    ("delivery", "0001_moved_from_crmsync"),
    ("ingestion", "0006_submission_lead_in_leads"),
    ("audit", "0003_synclog_points_at_leads_and_delivery"),
    ("crmsync", "0007_models_moved_to_leads_and_delivery"),
}

N_LEADS = 300
STATUSES = ["pending", "in_progress", "succeeded", "review", "dead", "superseded"]

# (old app, old model) -> (current module, model, fields compared row by row)
TABLES = {
    ("crmsync", "Lead"): ("leads.models", "Lead", ("id", "external_id", "email", "lifecycle_stage", "score",
                                                    "company_record_id", "team_id", "owner_id", "merged_into_id")),
    ("leads", "Team"): ("leads.models", "Team", ("id", "name", "is_default")),
    ("leads", "Owner"): ("leads.models", "Owner", ("id", "team_id", "name", "hubspot_owner_id")),
    ("leads", "Company"): ("leads.models", "Company", ("id", "domain", "name")),
    ("leads", "LeadIdentity"): ("leads.models", "LeadIdentity", ("id", "lead_id", "kind", "value")),
    ("leads", "LeadDecision"): ("leads.models", "LeadDecision", ("id", "lead_id", "submission_id", "actor_id", "action")),
    ("ingestion", "Source"): ("ingestion.models", "Source", ("id", "slug", "kind")),
    ("ingestion", "Submission"): ("ingestion.models", "Submission", ("id", "source_id", "lead_id", "mapping_version_id",
                                                                     "status", "idempotency_key")),
    ("mapping", "MappingSet"): ("mapping.models", "MappingSet", ("id", "source_id", "name")),
    ("mapping", "MappingVersion"): ("mapping.models", "MappingVersion", ("id", "mapping_set_id", "number", "published_by_id")),
    ("crmsync", "Destination"): ("delivery.models", "Destination", ("id", "name", "kind", "object_model", "base_url")),
    ("crmsync", "DestinationField"): ("delivery.models", "DestinationField", ("id", "destination_id", "object", "source",
                                                                             "target")),
    ("crmsync", "RateBudget"): ("delivery.models", "RateBudget", ("id", "destination_id", "day", "day_count")),
    ("crmsync", "LeadDelivery"): ("delivery.models", "LeadDelivery", ("id", "lead_id", "destination_id", "crm_record_id")),
    ("crmsync", "PushJob"): ("delivery.models", "PushJob", ("id", "lead_id", "destination_id", "status", "attempts",
                                                             "crm_record_id")),
    ("audit", "SyncLog"): ("audit.models", "SyncLog", ("id", "push_job_id", "lead_id", "destination_id", "operation",
                                                        "lead_external_id")),
}


def _leaf_targets(executor) -> tuple[list, list]:
    """(targets for migrate(), nodes for project_state()) of the pre-refactor state."""
    leaves = executor.loader.graph.leaf_nodes()
    others = [leaf for leaf in leaves if leaf[0] not in OLD_LEAVES]
    targets = others + list(OLD_LEAVES.items())
    nodes = others + [(app, name) for app, name in OLD_LEAVES.items() if name]
    return targets, nodes


def _snapshot(model, fields) -> set[tuple]:
    return set(model.objects.order_by().values_list(*fields))


def _fill(apps) -> dict:
    """Rows as the old code wrote them, through the historical (pre-refactor) models."""
    now = timezone.now()
    User = apps.get_model("auth", "User")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    Source = apps.get_model("ingestion", "Source")
    Submission = apps.get_model("ingestion", "Submission")
    MappingSet = apps.get_model("mapping", "MappingSet")
    MappingVersion = apps.get_model("mapping", "MappingVersion")
    Team = apps.get_model("leads", "Team")
    Owner = apps.get_model("leads", "Owner")
    Company = apps.get_model("leads", "Company")
    LeadIdentity = apps.get_model("leads", "LeadIdentity")
    LeadDecision = apps.get_model("leads", "LeadDecision")
    Lead = apps.get_model("crmsync", "Lead")
    Destination = apps.get_model("crmsync", "Destination")
    DestinationField = apps.get_model("crmsync", "DestinationField")
    RateBudget = apps.get_model("crmsync", "RateBudget")
    LeadDelivery = apps.get_model("crmsync", "LeadDelivery")
    PushJob = apps.get_model("crmsync", "PushJob")
    SyncLog = apps.get_model("audit", "SyncLog")

    admin = User.objects.create(username="mig-admin", is_staff=True, is_superuser=True, password="!")
    editor = User.objects.create(username="mig-editor", is_staff=True, password="!")

    # The demo's kinds of rows: a web form with a published mapping, a sandbox HubSpot
    # destination with its field map and rate budget (and a Salesforce one), a sales team.
    source = Source.objects.create(name="Demo web form", slug="mig-demo-form", kind="web_form")
    webhook = Source.objects.create(name="CRM import", slug="mig-crm-import", kind="json_webhook")
    mapping_set = MappingSet.objects.create(source=source, name="Demo web form mapping", is_active=True)
    versions = [MappingVersion.objects.create(mapping_set=mapping_set, number=n, config={"rules": [], "n": n},
                                              note=f"v{n}", published_by=admin) for n in (1, 2)]
    hubspot = Destination.objects.create(name="Sandbox HubSpot (mig)", kind="hubspot", base_url="http://sandbox.test/hubspot",
                                         object_model="contact_company", batch_wait_seconds=1)
    salesforce = Destination.objects.create(name="Salesforce (mig)", kind="salesforce", auth_method="jwt_bearer",
                                            base_url="https://acme.my.salesforce.com", object_model="lead",
                                            upsert_property="Crmsync_External_Id__c")
    destinations = [hubspot, salesforce]
    DestinationField.objects.bulk_create(
        [DestinationField(destination=hubspot, object="primary", source=s, target=t)
         for s, t in [("email", "email"), ("first_name", "firstname"), ("last_name", "lastname"),
                      ("phone", "phone"), ("company", "company"), ("country", "country")]]
        + [DestinationField(destination=hubspot, object="company", source="domain", target="domain"),
           DestinationField(destination=salesforce, object="primary", source="email", target="Email"),
           DestinationField(destination=salesforce, object="primary", source="company_name", target="Company",
                            default="[not provided]"),
           DestinationField(destination=salesforce, object="primary", source="country", target="Country",
                            value_map={"DE": "Germany"})]
    )
    RateBudget.objects.bulk_create([RateBudget(destination=hubspot, day="2026-11-30", day_count=1234, recent_ms=[1, 2]),
                                    RateBudget(destination=salesforce, day="2026-11-30", day_count=7)])
    teams = [Team.objects.create(name="Sales (mig)", is_default=True), Team.objects.create(name="Accounts (mig)")]
    owners = Owner.objects.bulk_create([Owner(team=teams[0], name="Alex", hubspot_owner_id="101"),
                                        Owner(team=teams[0], name="Sam", hubspot_owner_id="102"),
                                        Owner(team=teams[1], name="Kim", salesforce_user_id="005000000000001")])
    companies = Company.objects.bulk_create([Company(domain=f"co{i}.mig.example", name=f"Co {i}") for i in range(20)])

    # Leads: some routed, some with a company record, a few blank emails, a few merged away.
    leads = Lead.objects.bulk_create([
        Lead(email="" if i % 50 == 7 else f"person{i}@co{i % 20}.mig.example", first_name=f"First{i}",
             last_name=f"Last{i}", company=f"Co {i % 20}", country="DE" if i % 3 else "US",
             attribution={"utm_source": "google", "i": i}, first_touch={"utm_medium": "cpc"},
             attributes={"plan": "pro", "seats": i}, field_sources={"email": "mig-demo-form"},
             lifecycle_stage=["lead", "mql", "sql", "customer"][i % 4], score=i % 70,
             company_record=companies[i % 20] if i % 4 else None,
             team=teams[i % 2] if i % 5 else None, owner=owners[i % 3] if i % 5 else None,
             marketing_opt_in=[None, True, False][i % 3], consent_at=now if i % 3 == 1 else None,
             consent_text="v1" if i % 3 == 1 else "")
        for i in range(N_LEADS)
    ])
    assert all(lead.pk for lead in leads)  # ids came back (RETURNING) for the relations below
    merged = leads[-10:]
    for i, lead in enumerate(merged):
        lead.merged_into = leads[i]
    Lead.objects.bulk_update(merged, ["merged_into"])

    # Submissions: one or two per lead, through either mapping version; some rejected or spam.
    submissions = Submission.objects.bulk_create(
        [Submission(source=source if i % 2 else webhook, status="processed", raw_body=b'{"email": "x"}',
                    content_type="application/json", payload={"n": i}, headers={"user-agent": "t"},
                    lead=leads[i % N_LEADS], mapping_version=versions[i % 2], processed_at=now,
                    idempotency_key=f"evt-{i}" if i % 2 == 0 else None)
         for i in range(int(N_LEADS * 1.5))]
        + [Submission(source=source, status="rejected", raw_body=b"{}", payload={}, headers={},
                      reasons=[{"field": "email", "reason": "missing"}], mapping_version=versions[1])
           for _ in range(10)]
        + [Submission(source=source, status="spam", raw_body=b"{}", payload={}, headers={}) for _ in range(5)]
    )
    linked = [s for s in submissions if s.lead_id]
    LeadIdentity.objects.bulk_create(
        [LeadIdentity(lead=leads[i], kind="source_record", value=f"mig-demo-form:{i}") for i in range(N_LEADS)]
        + [LeadIdentity(lead=leads[i], kind="email", value=f"alias{i}@mig.example") for i in range(0, N_LEADS, 7)]
    )
    LeadDecision.objects.bulk_create(
        [LeadDecision(lead_id=s.lead_id, submission=s, action="created" if i < N_LEADS else "matched",
                      matched_by="" if i < N_LEADS else "email", changes={"email": [None, "x"]})
         for i, s in enumerate(linked)]
        + [LeadDecision(lead=lead, action="merged", actor=admin, detail=f"into {leads[i].pk}")
           for i, lead in enumerate(merged)]
        + [LeadDecision(lead=leads[i], action="routed", detail="round-robin") for i in range(0, N_LEADS, 5)]
    )

    # Deliveries and push jobs: two jobs per lead per destination at most, never two pending.
    LeadDelivery.objects.bulk_create(
        [LeadDelivery(lead=leads[i], destination=hubspot, crm_record_id=f"hs-{i}", pushed={"email": "x"}, pushed_at=now)
         for i in range(N_LEADS) if i % 6]
        + [LeadDelivery(lead=leads[i], destination=salesforce, crm_record_id=f"00Q{i:012d}", looked_up_at=now)
           for i in range(0, N_LEADS, 2)]
    )
    jobs = PushJob.objects.bulk_create(
        [PushJob(lead=leads[i], destination=destinations[i % 2], status=STATUSES[i % len(STATUSES)], attempts=i % 4,
                 crm_record_id=f"rec-{i}" if i % 6 == 2 else "", last_error="429" if i % 6 == 3 else "",
                 operation="create" if i % 6 == 2 else "", finished_at=now if i % 6 >= 2 else None)
         for i in range(N_LEADS)]
        + [PushJob(lead=leads[i], destination=destinations[i % 2], status="succeeded", operation="update",
                   finished_at=now) for i in range(0, N_LEADS, 3)]
    )
    SyncLog.objects.bulk_create(
        [SyncLog(push_job=job, lead_id=job.lead_id, destination_id=job.destination_id,
                 destination_name=hubspot.name if job.destination_id == hubspot.pk else salesforce.name,
                 lead_external_id=leads[0].external_id, operation="error" if job.status in ("review", "dead") else "create",
                 outcome="transient" if job.status == "review" else "create", http_status=200,
                 request={"email": "x"}, response={"id": "1"}) for job in jobs]
        # A log whose job and lead were deleted since (SET_NULL): kept, pointing at the destination.
        + [SyncLog(destination=hubspot, destination_name=hubspot.name, lead_external_id="lead_gone", operation="noop")]
    )

    # An editor allowed to change leads and push jobs, and the admin's history of a lead. Nothing
    # ran post_migrate at the old state: the old content types may have to be created here.
    perms = []
    for model, name in (("lead", "lead"), ("pushjob", "push job")):
        ct, _ = ContentType.objects.get_or_create(app_label="crmsync", model=model)
        perm, _ = Permission.objects.get_or_create(content_type=ct, codename=f"change_{model}",
                                                   defaults={"name": f"Can change {name}"})
        perms.append(perm)
    editor.user_permissions.add(*perms)
    lead_ct = ContentType.objects.get(app_label="crmsync", model="lead")
    entry = LogEntry.objects.create(user=admin, content_type=lead_ct, object_id=str(leads[3].pk),
                                    object_repr=leads[3].email, action_flag=2,
                                    change_message='[{"changed": {"fields": ["Owner"]}}]', action_time=now)
    return {"editor": editor.pk, "log_entry": entry.pk, "lead_ct": lead_ct.pk,
            "pushjob_ct": ContentType.objects.get(app_label="crmsync", model="pushjob").pk,
            "attributes": {lead.pk: lead.attributes for lead in leads}}


@pytest.mark.django_db(transaction=True)
def test_pre_refactor_database_migrates_forward_intact():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    old_targets, old_nodes = _leaf_targets(executor)
    try:
        back = executor.migration_plan(old_targets)
        assert back and all(backwards for _, backwards in back)
        assert REFACTOR <= {(m.app_label, m.name) for m, _ in back}
        executor.migrate(old_targets)

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        assert not REFACTOR & set(executor.loader.applied_migrations)
        old_apps = executor.loader.project_state(old_nodes).apps
        with pytest.raises(LookupError):
            old_apps.get_app_config("delivery").get_model("PushJob")

        filled = _fill(old_apps)
        before = {key: _snapshot(old_apps.get_model(*key), fields) for key, (_, _, fields) in TABLES.items()}
        counts = {key: old_apps.get_model(*key).objects.count() for key in TABLES}
        max_lead = old_apps.get_model("crmsync", "Lead").objects.order_by("-pk").values_list("pk", flat=True)[0]
        max_job = old_apps.get_model("crmsync", "PushJob").objects.order_by("-pk").values_list("pk", flat=True)[0]
        assert counts[("crmsync", "Lead")] >= N_LEADS and counts[("crmsync", "PushJob")] >= N_LEADS

        forward = MigrationExecutor(connection)
        plan = forward.migration_plan(latest)
        assert REFACTOR <= {(m.app_label, m.name) for m, _ in plan} and not any(b for _, b in plan)
        forward.migrate(latest)

        _check_current(before, counts, filled, max_lead, max_job)
    finally:
        # Whatever happened, later tests get the fully migrated schema (the flush that ends a
        # transactional test clears the rows).
        final = MigrationExecutor(connection)
        final.migrate(final.loader.graph.leaf_nodes())
        from django.contrib.contenttypes.models import ContentType
        ContentType.objects.clear_cache()


def _check_current(before, counts, filled, max_lead, max_job):
    import importlib

    from django.contrib.admin.models import LogEntry
    from django.contrib.auth import get_user_model
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.contenttypes.models import ContentType

    from audit.models import SyncLog
    from delivery.models import Destination, PushJob
    from ingestion.models import Submission
    from leads.models import Lead

    ContentType.objects.clear_cache()
    # Every row and every relation, read through the current models.
    for key, (module, name, fields) in TABLES.items():
        model = getattr(importlib.import_module(module), name)
        assert model.objects.count() == counts[key], f"{key} -> {module}.{name}: row count changed"
        after = _snapshot(model, fields)
        assert after == before[key], f"{key} -> {module}.{name}: {len(before[key] - after)} rows lost or changed"
    assert dict(Lead.objects.filter(pk__in=filled["attributes"]).values_list("pk", "attributes")) == filled["attributes"]

    # Following relations, both ways, works with the models' new homes.
    jobs = list(PushJob.objects.select_related("lead", "destination"))
    assert jobs and all(job.lead.external_id and job.destination.name for job in jobs)
    assert {job.destination.kind for job in jobs} == {"hubspot", "salesforce"}
    for submission in Submission.objects.filter(lead__isnull=False).select_related("lead", "mapping_version__mapping_set"):
        assert submission.lead.email is not None and submission.mapping_version.mapping_set.name
    for log in SyncLog.objects.filter(push_job__isnull=False).select_related("push_job", "lead", "destination"):
        assert log.push_job.lead_id == log.lead.pk and log.push_job.destination_id == log.destination.pk
    merged = Lead.objects.filter(merged_into__isnull=False).select_related("merged_into", "owner__team", "company_record")
    assert merged.count() == 10 and all(lead.merged_into.merged_into_id is None for lead in merged)
    hubspot = Destination.objects.get(name="Sandbox HubSpot (mig)")
    assert hubspot.rate_budget.day_count == 1234 and hubspot.fields.filter(object="company").count() == 1
    lead = Lead.objects.filter(push_jobs__isnull=False, submissions__isnull=False).distinct().first()
    assert lead.identities.exists() and lead.decisions.exists() and lead.deliveries.exists()
    assert lead.submissions.count() >= 1 and lead.sync_logs.exists()

    # Permissions and admin history followed the content types (renamed, not re-created).
    assert ContentType.objects.get_for_model(Lead).pk == filled["lead_ct"]
    assert ContentType.objects.get_for_model(PushJob).pk == filled["pushjob_ct"]
    assert not ContentType.objects.filter(app_label="crmsync", model__in=["lead", "pushjob"]).exists()
    editor = get_user_model().objects.get(pk=filled["editor"])  # fresh: no permission cache
    backend = ModelBackend()
    assert backend.has_perm(editor, "leads.change_lead") and backend.has_perm(editor, "delivery.change_pushjob")
    assert editor.has_perm("leads.change_lead") and editor.has_perm("delivery.change_pushjob")
    assert not editor.has_perm("crmsync.change_lead")
    entry = LogEntry.objects.select_related("content_type").get(pk=filled["log_entry"])
    assert (entry.content_type.app_label, entry.content_type.model) == ("leads", "lead")
    assert isinstance(entry.get_edited_object(), Lead)

    # New rows get fresh ids (on PostgreSQL: the identity sequences came along with the tables).
    new_lead = Lead.objects.create(email="after-migration@mig.example")
    new_job = PushJob.objects.create(lead=new_lead, destination=hubspot)
    assert new_lead.pk > max_lead and new_job.pk > max_job
    assert PushJob.objects.select_related("lead").get(pk=new_job.pk).lead.email == "after-migration@mig.example"


@pytest.mark.django_db(transaction=True)
def test_an_upgrade_in_two_steps_keeps_permissions_and_admin_history():
    """`migrate leads` first (its post_migrate creates leads.lead's content type and
    permissions), then `migrate`: the grants and the admin history made under crmsync.lead
    still count, on the one content type left."""
    from django.apps import apps as current_apps
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth import get_user_model
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes
    from django.contrib.contenttypes.models import ContentType

    from leads.models import Lead

    executor = MigrationExecutor(connection)
    old_targets, old_nodes = _leaf_targets(executor)
    try:
        executor.migrate(old_targets)
        old_apps = MigrationExecutor(connection).loader.project_state(old_nodes).apps
        old_type, _ = old_apps.get_model("contenttypes", "ContentType").objects.get_or_create(app_label="crmsync",
                                                                                              model="lead")
        permission, _ = old_apps.get_model("auth", "Permission").objects.get_or_create(
            content_type=old_type, codename="change_lead", defaults={"name": "Can change lead"})
        revops = old_apps.get_model("auth", "User").objects.create(username="revops")
        revops.user_permissions.add(permission)
        old_apps.get_model("admin", "LogEntry").objects.create(user=revops, content_type=old_type, object_id="1",
                                                               object_repr="ada@example.com", action_flag=2,
                                                               action_time=timezone.now())

        MigrationExecutor(connection).migrate([("leads", "0002_lead_moved_from_crmsync")])
        ContentType.objects.clear_cache()
        create_contenttypes(current_apps.get_app_config("leads"), verbosity=0)
        create_permissions(current_apps.get_app_config("leads"), verbosity=0)
        final = MigrationExecutor(connection)
        final.migrate(final.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()

        assert get_user_model().objects.get(username="revops").has_perm("leads.change_lead")
        assert not ContentType.objects.filter(app_label="crmsync", model="lead").exists()
        assert LogEntry.objects.get().content_type == ContentType.objects.get_for_model(Lead)
    finally:
        final = MigrationExecutor(connection)
        final.migrate(final.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()
