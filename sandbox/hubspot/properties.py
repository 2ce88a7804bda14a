"""HubSpot's object types of the sandbox (contacts, companies), their property definitions and
the checks HubSpot applies to property values on write.

Built-in properties are constants rather than rows because test databases get flushed between
tests, and a sandbox that forgot `email` would be useless.
"""

from dataclasses import dataclass
import json
import re
from typing import Any

from django.db import IntegrityError, transaction

from sandbox.hubspot.errors import HubSpotError, not_found, validation_error
from sandbox.models import SandboxCompany, SandboxContact, SandboxProperty, SandboxRecord
from sandbox.validators import is_email

# HubSpot computes these itself; a write to them is refused.
SYSTEM_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate", "hs_lastmodifieddate", "hs_merged_object_ids")
# HubSpot allows at most 10 unique-value properties per object.
MAX_UNIQUE_PROPERTIES = 10
# From the PropertyCreate model of HubSpot's Python client.
TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}
FIELD_TYPES = {"textarea", "text", "date", "file", "number", "select", "radio", "checkbox",
               "booleancheckbox", "calculation_equation", "phonenumber"}
REQUIRED_ON_CREATE = ("name", "label", "type", "fieldType", "groupName")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = "contactinformation"
    has_unique_value: bool = False
    options: tuple[dict[str, Any], ...] = ()
    description: str = ""
    hubspot_defined: bool = True


@dataclass(frozen=True)
class Problem:
    """One refused property value, reported the way HubSpot reports it."""

    name: str
    code: str
    message: str


@dataclass(frozen=True)
class ObjectType:
    """What differs between HubSpot's object types; everything else is shared code."""

    name: str  # as in the v3 paths: "contacts"
    singular: str  # as in the v4 association paths: "contact"
    type_id: str  # HubSpot's object type ID: "0-1"
    model: type[SandboxRecord]
    built_in: dict[str, PropertyDef]
    # Properties that identify one record although HubSpot lists them with hasUniqueValue false.
    key_properties: tuple[str, ...]
    # Properties the search endpoint's free-text `query` looks in.
    query_properties: tuple[str, ...]
    # The modification date a sync poll filters and sorts on: contacts' lastmodifieddate,
    # companies' hs_lastmodifieddate (HubSpot's names differ by object).
    modified_property: str = "lastmodifieddate"


def _lifecycle_options() -> tuple[dict[str, Any], ...]:
    stages = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
              "customer", "evangelist", "other")
    return tuple({"label": s, "value": s, "hidden": False, "displayOrder": i} for i, s in enumerate(stages))


def _system(group: str) -> tuple[PropertyDef, ...]:
    return (PropertyDef("hs_object_id", "Record ID", type="number", field_type="number", group_name=group),
            PropertyDef("createdate", "Create Date", type="datetime", field_type="date", group_name=group),
            PropertyDef("lastmodifieddate", "Last Modified Date", type="datetime", field_type="date", group_name=group),
            # The IDs of records merged into this one, ";"-joined (set by a merge).
            PropertyDef("hs_merged_object_ids", "Merged record IDs", type="enumeration", field_type="checkbox",
                        group_name=group))


def _external_id(group: str) -> PropertyDef:
    # The product's upsert key, as if an admin had created it in the HubSpot portal.
    return PropertyDef("crmsync_external_id", "crmsync external ID", group_name=group, has_unique_value=True,
                       hubspot_defined=False, description="Stable ID set by crmsync; the key of its batch upserts.")


def _consent() -> tuple[PropertyDef, ...]:
    # What crmsync's default contact field map writes besides HubSpot's own properties, as if an
    # admin had created these properties in the portal.
    yes_no = ({"label": "Yes", "value": "true", "hidden": False, "displayOrder": 0},
              {"label": "No", "value": "false", "hidden": False, "displayOrder": 1})
    return (PropertyDef("crmsync_marketing_opt_in", "Marketing opt-in (crmsync)", type="bool",
                        field_type="booleancheckbox", options=yes_no, hubspot_defined=False),
            PropertyDef("crmsync_consent_at", "Consent given at (crmsync)", type="datetime", field_type="date",
                        hubspot_defined=False),
            PropertyDef("crmsync_consent_text", "Consent text (crmsync)", field_type="textarea", hubspot_defined=False),
            PropertyDef("crmsync_consent_source", "Consent source (crmsync)", hubspot_defined=False))


def _by_name(*definitions: PropertyDef) -> dict[str, PropertyDef]:
    return {p.name: p for p in definitions}


CONTACT_PROPERTIES = _by_name(
    PropertyDef("email", "Email"),
    PropertyDef("firstname", "First Name"),
    PropertyDef("lastname", "Last Name"),
    PropertyDef("phone", "Phone Number", field_type="phonenumber"),
    PropertyDef("mobilephone", "Mobile Phone Number", field_type="phonenumber"),
    PropertyDef("company", "Company Name"),
    PropertyDef("jobtitle", "Job Title"),
    PropertyDef("website", "Website URL"),
    PropertyDef("address", "Street Address"),
    PropertyDef("city", "City"),
    PropertyDef("state", "State/Region"),
    PropertyDef("zip", "Postal Code"),
    PropertyDef("country", "Country/Region"),
    PropertyDef("lifecyclestage", "Lifecycle Stage", type="enumeration", field_type="radio",
                options=_lifecycle_options()),
    # HubSpot lists the portal's owners as its options; the sandbox has none, so any owner ID goes.
    PropertyDef("hubspot_owner_id", "Contact owner", type="enumeration", field_type="select"),
    *_system("contact_activity"),
    _external_id("contactinformation"),
    *_consent(),
)
COMPANY_PROPERTIES = _by_name(
    PropertyDef("name", "Company name", group_name="companyinformation"),
    PropertyDef("domain", "Company Domain Name", group_name="companyinformation"),
    PropertyDef("phone", "Phone Number", field_type="phonenumber", group_name="companyinformation"),
    PropertyDef("country", "Country/Region", group_name="companyinformation"),
    *_system("companyinformation"),
    PropertyDef("hs_lastmodifieddate", "Last Modified Date", type="datetime", field_type="date",
                group_name="companyinformation"),
    _external_id("companyinformation"),
)
CONTACTS = ObjectType("contacts", "contact", "0-1", SandboxContact, CONTACT_PROPERTIES, ("email", "hs_object_id"),
                      ("firstname", "lastname", "email", "phone", "company", "website"))
COMPANIES = ObjectType("companies", "company", "0-2", SandboxCompany, COMPANY_PROPERTIES, ("hs_object_id",),
                       ("name", "domain", "phone", "country"), modified_property="hs_lastmodifieddate")
OBJECT_TYPES = {kind.name: kind for kind in (CONTACTS, COMPANIES)}
# The v4 associations API names object types in the singular, or by type ID.
OBJECT_TYPE_ALIASES = {alias: kind for kind in OBJECT_TYPES.values()
                       for alias in (kind.name, kind.singular, kind.type_id)}


def property_definitions(kind: ObjectType) -> dict[str, PropertyDef]:
    """Every known property of the object type: built-in ones and those created through the API."""
    created = {row.name: _from_row(row) for row in SandboxProperty.objects.filter(object_type=kind.name)}
    return {**created, **kind.built_in}


def _from_row(row: SandboxProperty) -> PropertyDef:
    return PropertyDef(row.name, row.label, row.type, row.field_type, row.group_name, row.has_unique_value,
                       tuple(row.options), row.description, hubspot_defined=False)


def property_get(*, kind: ObjectType, name: str) -> PropertyDef:
    found = property_definitions(kind).get(name)
    if found is None:
        raise not_found(f"Unable to find property with name {name} for objectType {kind.type_id}")
    return found


def property_json(prop: PropertyDef) -> dict[str, Any]:
    body = {
        "name": prop.name, "label": prop.label, "type": prop.type, "fieldType": prop.field_type,
        "description": prop.description, "groupName": prop.group_name, "options": list(prop.options),
        "displayOrder": -1, "calculated": False, "externalOptions": False, "hasUniqueValue": prop.has_unique_value,
        "hidden": False, "formField": not prop.hubspot_defined or prop.name not in SYSTEM_PROPERTIES,
        "modificationMetadata": {"archivable": not prop.hubspot_defined, "readOnlyDefinition": prop.hubspot_defined,
                                 "readOnlyValue": prop.name in SYSTEM_PROPERTIES},
        "archived": False,
    }
    if prop.hubspot_defined:
        body["hubspotDefined"] = True
    return body


def identifies(kind: ObjectType, prop: PropertyDef) -> bool:
    return prop.has_unique_value or prop.name in kind.key_properties


def unique_property(kind: ObjectType, name: str, definitions: dict[str, PropertyDef]) -> PropertyDef:
    """The property an idProperty names; only unique ones can identify a record."""
    prop = definitions.get(name)
    if prop is None or not identifies(kind, prop):
        raise validation_error(f"{name} is not a unique property of {kind.name}; idProperty must be "
                               f"{' or '.join(kind.key_properties)} or a property with hasUniqueValue.")
    return prop


# --- values on write --------------------------------------------------------------------------

def properties_clean(raw: Any, definitions: dict[str, PropertyDef]) -> tuple[dict[str, str], list[Problem]]:
    """Values as HubSpot stores them (strings, email trimmed and lower-cased) and what is wrong."""
    if not isinstance(raw, dict):
        raise validation_error("Invalid input JSON: properties must be an object of property names to values.")
    values, problems = {}, []
    for name, value in raw.items():
        text, problem = _clean_one(str(name), value, definitions.get(str(name)))
        if problem:
            problems.append(problem)
        else:
            values[str(name)] = text
    return values, problems


def _clean_one(name: str, value: Any, prop: PropertyDef | None) -> tuple[str, Problem | None]:
    if prop is None:
        return "", Problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
    if name in SYSTEM_PROPERTIES:
        return "", Problem(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
    if isinstance(value, (dict, list)):
        return "", Problem(name, "INVALID_VALUE", f'Property "{name}" needs a single value, not {type(value).__name__}')
    text = _as_text(value)
    if name == "email":
        text = text.strip().lower()
    return text, _value_problem(prop, text)


def _as_text(value: Any) -> str:
    # HubSpot stores every value as a string; booleans as "true"/"false", null clears.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value_problem(prop: PropertyDef, text: str) -> Problem | None:
    if not text:
        return None
    if prop.name == "email" and not is_email(text):
        return Problem(prop.name, "INVALID_EMAIL", f"Email address {text} is invalid")
    allowed = {option["value"] for option in prop.options}
    wrong = [v for v in text.split(";") if allowed and v not in allowed]
    if wrong:
        return Problem(prop.name, "INVALID_OPTION",
                       f"{wrong[0]} was not one of the allowed options: {', '.join(sorted(allowed))}")
    return None


def property_errors(problems: list[Problem]) -> HubSpotError:
    """The 400 HubSpot answers when any value of the request is refused: nothing is written."""
    legacy = [{"isValid": False, "message": p.message, "error": p.code, "name": p.name,
               "localizedErrorMessage": p.message} for p in problems]
    details = [{"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}} for p in problems]
    return validation_error(f"Property values were not valid: {json.dumps(legacy)}", errors=details)


# --- creating properties ----------------------------------------------------------------------

def property_create(*, kind: ObjectType, data: dict[str, Any]) -> PropertyDef:
    _check_new_property(kind, data)
    row = SandboxProperty(
        object_type=kind.name, name=data["name"], label=str(data["label"]), type=data["type"], field_type=data["fieldType"],
        group_name=str(data["groupName"]), description=str(data.get("description") or ""),
        options=_options(data.get("options")), has_unique_value=data.get("hasUniqueValue") is True,
    )
    with transaction.atomic():
        if row.has_unique_value and _unique_count(kind) >= MAX_UNIQUE_PROPERTIES:
            raise validation_error(f"An object can have at most {MAX_UNIQUE_PROPERTIES} unique value properties.")
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:  # created by a concurrent request since the check
            raise _exists(row.name) from None
    return _from_row(row)


def _check_new_property(kind: ObjectType, data: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED_ON_CREATE if data.get(key) in (None, "")]
    if missing:
        raise validation_error("Invalid input JSON: Cannot build PropertyCreate, some of required attributes "
                               f"are not set [{', '.join(missing)}]")
    if not isinstance(data["name"], str) or not NAME_PATTERN.match(data["name"]):
        raise validation_error(f"Property name {data['name']!r} is invalid: use lower-case letters, digits "
                               "and underscores, starting with a letter.")
    if str(data["type"]) not in TYPES or str(data["fieldType"]) not in FIELD_TYPES:
        raise validation_error(f"Invalid property type {data['type']!r} or fieldType {data['fieldType']!r}.")
    if data["name"] in property_definitions(kind):
        raise _exists(data["name"])


def _options(raw: Any) -> list[dict[str, Any]]:
    if raw in (None, []):
        return []
    if not isinstance(raw, list) or not all(isinstance(o, dict) and "label" in o and "value" in o for o in raw):
        raise validation_error("Invalid input JSON: every option needs a label and a value.")
    return [{"label": str(o["label"]), "value": str(o["value"]), "hidden": bool(o.get("hidden", False)),
             "displayOrder": o["displayOrder"] if isinstance(o.get("displayOrder"), int) else i}
            for i, o in enumerate(raw)]


def _unique_count(kind: ObjectType) -> int:
    built_in = sum(1 for p in kind.built_in.values() if p.has_unique_value and not p.hubspot_defined)
    return built_in + SandboxProperty.objects.filter(object_type=kind.name, has_unique_value=True).count()


def _exists(name: str) -> HubSpotError:
    return HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.")
