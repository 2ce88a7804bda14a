"""Before the first push: does the CRM have every field the map writes, is the upsert key a
unique field, and are the values we would send allowed by its picklists?"""

from dataclasses import dataclass, field

from delivery.connectors import connector_for
from delivery.connectors.base import CrmField, CrmSchema
from delivery.models import Destination, DestinationField
from leads.fields import lead_value
from leads.models import Lead

Obj = DestinationField.Object
# Distinct lead values checked against a picklist (the newest leads first).
VALUE_SAMPLE = 1000


@dataclass
class PreflightReport:
    destination: Destination
    missing: list[CrmField] = field(default_factory=list)  # primary-object fields the CRM lacks
    missing_company: list[CrmField] = field(default_factory=list)
    invalid_values: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # e.g. an upsert key that is not unique

    @property
    def ok(self) -> bool:
        return not (self.missing or self.missing_company or self.invalid_values or self.problems)

    def lines(self) -> list[str]:
        lines = [f"missing field {f.name}" + (" (unique upsert key)" if f.unique else "") for f in self.missing]
        lines += [f"missing company field {f.name}" + (" (unique key)" if f.unique else "") for f in self.missing_company]
        return lines + self.invalid_values + self.problems


def destination_preflight(*, destination: Destination, connector=None) -> PreflightReport:
    connector = connector or connector_for(destination)
    schema: CrmSchema = connector.schema()
    report = PreflightReport(destination)
    if destination.kind == Destination.Kind.REST:
        return report  # free-form JSON: nothing to check against
    fields = list(destination.fields.all())
    company = destination.object_model in (Destination.ObjectModel.CONTACT_COMPANY, Destination.ObjectModel.CONTACT_ACCOUNT)
    _key(report, schema.primary, destination.upsert_property, report.missing, "upsert key")
    if company:
        _key(report, schema.company, destination.company_upsert_property, report.missing_company, "company key")
    for line in fields:
        crm_fields, missing = (schema.company, report.missing_company) if line.object == Obj.COMPANY else (schema.primary, report.missing)
        crm_field = crm_fields.get(line.target)
        if crm_field is None:
            if line.object != Obj.COMPANY or company:
                if all(m.name != line.target for m in missing):
                    missing.append(CrmField(name=line.target, label=line.target))
            continue
        if crm_field.options:
            _picklist(report, line, crm_field)
    return report


def _key(report: PreflightReport, crm_fields: dict[str, CrmField], name: str, missing: list, what: str) -> None:
    if not name:
        report.problems.append(f"no {what} is set")
        return
    found = crm_fields.get(name)
    if found is None:
        missing.append(CrmField(name=name, label="crmsync key" if what == "upsert key" else "crmsync domain", unique=True))
    elif not found.unique:
        report.problems.append(f"{what} {name} is not a unique / External ID field in the CRM")


def _picklist(report: PreflightReport, line: DestinationField, crm_field: CrmField) -> None:
    allowed = set(crm_field.options)
    candidates = {str(v) for v in line.value_map.values()} | ({line.default} if line.default else set())
    for lead in Lead.objects.order_by("-updated_at")[:VALUE_SAMPLE]:
        value = lead_value(lead, line.source)
        if value not in (None, ""):
            candidates.add(str(line.value_map.get(str(value), value)))
    bad = sorted(candidates - allowed)
    if bad:
        severity = "refused" if crm_field.restricted else "not in the picklist"
        shown = ", ".join(repr(v) for v in bad[:10]) + (" …" if len(bad) > 10 else "")
        report.invalid_values.append(
            f"{line.target}: {shown} {severity} (allowed: {', '.join(sorted(allowed)[:15])}); add a value map")


def destination_fields_create(*, destination: Destination, report: PreflightReport | None = None) -> list[str]:
    """Create the fields a preflight found missing, where the CRM allows it (HubSpot)."""
    connector = connector_for(destination)
    report = report or destination_preflight(destination=destination, connector=connector)
    created = connector.create_fields(report.missing)
    if report.missing_company:
        created += connector.create_fields(report.missing_company, company=True)
    return created

