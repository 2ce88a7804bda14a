"""The demo: a public web form wired to the sandbox CRM, and an admin user. Idempotent."""

from dataclasses import dataclass
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from delivery.fieldmap import fields_default_ensure
from delivery.models import Destination, DestinationField
from ingestion.models import Source
from leads.models import Owner, ScoringRule, StageThreshold, Team
from mapping.models import FieldRule, MappingSet
from mapping.services import mapping_publish

DEMO_SLUG = "demo-form"
DEMO_DESTINATION = "Sandbox HubSpot"
ADMIN_USERNAME = "admin"

TEXT = [{"op": "trim"}, {"op": "collapse_whitespace"}]
# source keys (aliases), target, transforms, required, on invalid
DEMO_RULES = (
    ("email, email_address, user_email", "email", [{"op": "trim"}, {"op": "lower"}], True, "reject"),
    ("first_name, firstname", "first_name", TEXT, False, "reject"),
    ("last_name, lastname", "last_name", TEXT, False, "reject"),
    ("company, company_name", "company", TEXT, False, "reject"),
    ("phone, phone_number", "phone", [{"op": "phone_e164"}], False, "drop"),
    ("country", "country", [{"op": "country_iso2"}], False, "drop"),
    ("utm_source", "attribution.utm_source", [{"op": "utm_normalize"}], False, "drop"),
    ("utm_medium", "attribution.utm_medium", [{"op": "utm_normalize"}], False, "drop"),
    ("utm_campaign", "attribution.utm_campaign", [{"op": "utm_normalize"}], False, "drop"),
    ("marketing_opt_in, opt_in", "marketing_opt_in", [{"op": "boolean"}], False, "drop"),
    ("consent_text", "consent_text", TEXT, False, "drop"),
)
# A sales team sharing new leads round-robin (owner IDs as the sandbox HubSpot knows them),
# and scoring rules that make a lead from a company with a phone number an MQL.
DEMO_OWNERS = (("Alex (demo)", "101"), ("Sam (demo)", "102"))
DEMO_SCORING = (("company", "present", "", 20), ("phone", "present", "", 10), ("attribution.utm_medium", "equals", "cpc", 10))
DEMO_THRESHOLDS = (("mql", 30), ("sql", 60))


@dataclass(frozen=True)
class DemoInfo:
    source: Source
    destination: Destination
    admin_username: str
    admin_password: str


def demo_load(*, sandbox_base_url: str) -> DemoInfo:
    with transaction.atomic():
        source, _ = Source.objects.get_or_create(
            slug=DEMO_SLUG, defaults={"name": "Demo web form", "kind": "web_form"}
        )
        _demo_mapping(source)
        destination = _demo_destination(sandbox_base_url)
        _demo_rules()
        password = _demo_admin()
    return DemoInfo(source, destination, ADMIN_USERNAME, password)


def _demo_mapping(source: Source) -> MappingSet:
    mapping_set, created = MappingSet.objects.get_or_create(
        source=source, is_active=True, defaults={"name": "Demo web form mapping"}
    )
    if created:
        FieldRule.objects.bulk_create(
            FieldRule(mapping_set=mapping_set, position=i, source_keys=keys, target=target, transforms=chain,
                      required=required, on_invalid=on_invalid)
            for i, (keys, target, chain, required, on_invalid) in enumerate(DEMO_RULES)
        )
        mapping_publish(mapping_set=mapping_set, note="Demo mapping")
    return mapping_set


def _demo_destination(base_url: str) -> Destination:
    destination, _ = Destination.objects.get_or_create(
        name=DEMO_DESTINATION, defaults={"kind": Destination.Kind.HUBSPOT, "base_url": base_url}
    )
    destination.base_url = base_url  # the port may differ from the last run
    destination.set_token(settings.SANDBOX_HUBSPOT_TOKEN)
    # The demo shows one lead at a time: don't make it wait for company (the default waits
    # up to 10 s so that a burst of leads shares batch calls).
    destination.batch_wait_seconds = 1
    created = not destination.fields.exists()
    if created:
        # Two-way sync, so an edit in the sandbox comes back within seconds (README, "Two-way sync").
        destination.poll_interval_seconds = 5
    destination.save()
    fields_default_ensure(destination=destination)
    if created:
        _demo_two_way(destination)
    return destination


# The demo's two-way fields: phone and company both ways with manual review, owner and
# lifecycle stage from the CRM once it has them.
DEMO_TWO_WAY = {"phone": (DestinationField.Direction.BOTH, DestinationField.Rule.MANUAL),
                "company": (DestinationField.Direction.BOTH, DestinationField.Rule.MANUAL),
                "lifecycle_stage": (DestinationField.Direction.FROM_CRM, ""),
                "owner.hubspot_owner_id": (DestinationField.Direction.FROM_CRM, "")}


def _demo_two_way(destination: Destination) -> None:
    for source, (direction, rule) in DEMO_TWO_WAY.items():
        DestinationField.objects.filter(destination=destination, source=source).update(direction=direction, rule=rule)


def _demo_rules() -> None:
    """Routing and scoring, once: whatever RevOps changed since is kept."""
    if Team.objects.exists() or ScoringRule.objects.exists():
        return
    team = Team.objects.create(name="Sales (demo)", is_default=True)
    Owner.objects.bulk_create(Owner(team=team, name=name, hubspot_owner_id=owner_id) for name, owner_id in DEMO_OWNERS)
    ScoringRule.objects.bulk_create(ScoringRule(field=field, operator=operator, value=value, points=points)
                                    for field, operator, value, points in DEMO_SCORING)
    StageThreshold.objects.bulk_create(StageThreshold(stage=stage, min_score=score) for stage, score in DEMO_THRESHOLDS)


def _demo_admin() -> str:
    """The password is generated once into var/ so it stays the same across runs."""
    path = settings.VAR_DIR / "demo_admin_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    password = path.read_text().strip()
    User = get_user_model()
    if not User.objects.filter(username=ADMIN_USERNAME).exists():
        User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
    return password
