"""The sandbox Salesforce org's objects and fields: what describe lists and what writes and
queries are checked against.

Standard fields are constants (like HubSpot's built-in properties, they survive a flushed test
database); custom fields are SandboxSalesforceField rows, created in the admin or by
`custom_field_create`. The external-ID fields the product keys its upserts on are seeded as
custom fields on first use (see org_settings), and the consent fields its default field maps
write are constants (_consent), so the demo works out of the box.
"""

from dataclasses import dataclass
from typing import Any

from sandbox.limits import CRM_DEFAULTS
from sandbox.models import SandboxSalesforceField, SandboxSettings

CRM = "salesforce"
SANDBOX_USER_ID = "0055g00000sandbAAA"  # the org's only user: every record's default owner


@dataclass(frozen=True)
class FieldDef:
    name: str
    label: str
    type: str = "string"
    length: int = 0
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: str | bool | None = None

    @property
    def required(self) -> bool:
        """Salesforce's REQUIRED_FIELD_MISSING applies to non-nillable fields with no default."""
        return not self.nillable and self.createable and self.default is None

    @property
    def keyed(self) -> bool:
        """Values stored in SandboxSalesforceKey: what upserts and queries look records up by."""
        return self.external_id or self.unique


@dataclass(frozen=True)
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    standard: tuple[FieldDef, ...]


def _text(name: str, label: str, length: int, **extra: Any) -> FieldDef:
    return FieldDef(name, label, length=length, **extra)


def _system() -> tuple[FieldDef, ...]:
    return (FieldDef("Id", "Record ID", type="id", length=18, createable=False, updateable=False, nillable=False),
            FieldDef("OwnerId", "Owner ID", type="reference", length=18, nillable=False, default=SANDBOX_USER_ID),
            FieldDef("CreatedDate", "Created Date", type="datetime", createable=False, updateable=False, nillable=False),
            FieldDef("LastModifiedDate", "Last Modified Date", type="datetime", createable=False, updateable=False,
                     nillable=False),
            # What sync polls read: the change stamp (moves on deletes too), who changed the record,
            # and the recycle bin (only queryAll returns deleted rows; merge losers name the master).
            FieldDef("SystemModstamp", "System Modstamp", type="datetime", createable=False, updateable=False,
                     nillable=False),
            FieldDef("CreatedById", "Created By ID", type="reference", length=18, createable=False, updateable=False,
                     nillable=False),
            FieldDef("LastModifiedById", "Last Modified By ID", type="reference", length=18, createable=False,
                     updateable=False, nillable=False),
            FieldDef("IsDeleted", "Deleted", type="boolean", createable=False, updateable=False, nillable=False,
                     default=False),
            FieldDef("MasterRecordId", "Master Record ID", type="reference", length=18, createable=False,
                     updateable=False))


def _consent() -> tuple[FieldDef, ...]:
    # Custom fields crmsync's default field maps write, as if an admin had created them in Setup.
    # Constants, not seeded rows (unlike the upsert keys), because SandboxSalesforceField has no
    # datetime type; so they also appear in orgs seeded before they were added.
    # The opt-in is a Yes/No picklist: a checkbox cannot be empty, and would read "no" for a
    # person never asked.
    return (FieldDef("Crmsync_Marketing_Opt_In__c", "crmsync marketing opt-in", type="picklist", length=255,
                     picklist=("Yes", "No"), restricted=True, custom=True),
            FieldDef("Crmsync_Consent_At__c", "crmsync consent at", type="datetime", custom=True),
            FieldDef("Crmsync_Consent_Text__c", "crmsync consent text", type="textarea", length=32_768, custom=True),
            FieldDef("Crmsync_Consent_Source__c", "crmsync consent source", length=255, custom=True))


LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")

SOBJECTS: dict[str, SObject] = {o.name: o for o in (
    SObject("Lead", "Lead", "Leads", "00Q", (
        *_system(),
        _text("FirstName", "First Name", 40),
        _text("LastName", "Last Name", 80, nillable=False),
        _text("Company", "Company", 255, nillable=False),
        FieldDef("Email", "Email", type="email", length=80),
        FieldDef("Phone", "Phone", type="phone", length=40),
        _text("Country", "Country", 80),
        FieldDef("Status", "Status", type="picklist", length=255, nillable=False, picklist=LEAD_STATUSES,
                 restricted=True, default=LEAD_STATUSES[0]),
        FieldDef("LeadSource", "Lead Source", type="picklist", length=255, picklist=LEAD_SOURCES),
        FieldDef("Description", "Description", type="textarea", length=32_000),
        # The sandbox converts no Lead: the field is there for queries that skip converted ones.
        FieldDef("IsConverted", "Converted", type="boolean", createable=False, updateable=False, nillable=False,
                 default=False),
        *_consent(),
    )),
    SObject("Contact", "Contact", "Contacts", "003", (
        *_system(),
        _text("FirstName", "First Name", 40),
        _text("LastName", "Last Name", 80, nillable=False),
        FieldDef("Email", "Email", type="email", length=80),
        FieldDef("Phone", "Business Phone", type="phone", length=40),
        FieldDef("AccountId", "Account ID", type="reference", length=18),
        _text("MailingCountry", "Mailing Country", 80),
        FieldDef("LeadSource", "Lead Source", type="picklist", length=255, picklist=LEAD_SOURCES),
        *_consent(),
    )),
    SObject("Account", "Account", "Accounts", "001", (
        *_system(),
        _text("Name", "Account Name", 255, nillable=False),
        FieldDef("Website", "Website", type="url", length=255),
        FieldDef("Phone", "Account Phone", type="phone", length=40),
        _text("BillingCountry", "Billing Country", 80),
    )),
)}

# Custom fields every new sandbox org has: the keys of crmsync's upserts.
SEEDED_FIELDS = (
    {"sobject": "Lead", "name": "Crmsync_External_Id__c", "label": "crmsync external ID", "length": 64},
    {"sobject": "Contact", "name": "Crmsync_External_Id__c", "label": "crmsync external ID", "length": 64},
    {"sobject": "Account", "name": "Crmsync_Domain__c", "label": "crmsync domain", "length": 255},
)


def org_settings() -> SandboxSettings:
    """The org's settings row. An org without any custom field (first use, a flushed database,
    or a settings row made elsewhere) gets the seeded key fields."""
    row, created = SandboxSettings.objects.get_or_create(crm=CRM, defaults=CRM_DEFAULTS[CRM])
    if created or not SandboxSalesforceField.objects.exists():
        SandboxSalesforceField.objects.bulk_create(
            [SandboxSalesforceField(**spec, external_id=True, unique=True) for spec in SEEDED_FIELDS],
            ignore_conflicts=True)
    return row


def field_definitions(sobject: SObject) -> dict[str, FieldDef]:
    """Every field of the object by lower-cased name (Salesforce's names are case-insensitive)."""
    org_settings()
    custom = [_from_row(row) for row in SandboxSalesforceField.objects.filter(sobject=sobject.name).order_by("name")]
    return {field.name.lower(): field for field in (*sobject.standard, *custom)}


def _from_row(row: SandboxSalesforceField) -> FieldDef:
    is_text = row.type not in ("double", "boolean")
    return FieldDef(row.name, row.label, type=row.type, length=row.length if is_text else 0, custom=True,
                    nillable=not row.required, external_id=row.external_id, unique=row.unique,
                    picklist=tuple(row.picklist_values), restricted=row.restricted_picklist)


def custom_field_create(*, sobject: str, name: str, label: str, type: str = "string", length: int = 255,
                        external_id: bool = False, unique: bool = False, required: bool = False,
                        picklist_values: list[str] | None = None, restricted_picklist: bool = False) -> SandboxSalesforceField:
    """Add a custom field, as an admin would in Setup. Raises ValidationError for a bad name."""
    org_settings()
    row = SandboxSalesforceField(sobject=sobject, name=name, label=label, type=type, length=length,
                                 external_id=external_id, unique=unique, required=required,
                                 picklist_values=list(picklist_values or []), restricted_picklist=restricted_picklist)
    row.full_clean()
    row.save()
    return row


# --- describe ---------------------------------------------------------------------------------

def describe_json(sobject: SObject, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{sobject.name}"
    return {"name": sobject.name, "label": sobject.label, "labelPlural": sobject.label_plural,
            "keyPrefix": sobject.key_prefix, "custom": False, "createable": True, "updateable": True,
            "queryable": True, "fields": [_field_json(f) for f in field_definitions(sobject).values()],
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}}


def _field_json(field: FieldDef) -> dict[str, Any]:
    return {"name": field.name, "label": field.label, "type": field.type, "custom": field.custom,
            "createable": field.createable, "updateable": field.updateable, "nillable": field.nillable,
            "length": field.length, "externalId": field.external_id, "unique": field.unique,
            "idLookup": field.keyed or field.name == "Id", "caseSensitive": False,
            "defaultedOnCreate": field.default is not None or not field.createable,
            "defaultValue": field.default,
            "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": v == field.default,
                                "validFor": None} for v in field.picklist],
            "restrictedPicklist": field.restricted}
