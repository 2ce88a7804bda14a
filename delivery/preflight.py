"""Before the first push: does the CRM have every field the map writes, is the upsert key a
unique field, and are the values we would send allowed by its picklists? For a REST
destination: does every template of its recipe render for a sample lead, naming only fields the
map sends, and does its lookup answer?"""

from dataclasses import dataclass, field
import json

from delivery.connectors import connector_for
from delivery.connectors.base import ConnectorError, CrmField, CrmSchema
from delivery.fieldmap import render
from delivery.models import Destination, DestinationField
from delivery.rest_recipe import RecipeError, TemplateError, fill, fill_url, unknown_placeholders
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
    notes: list[str] = field(default_factory=list)  # what was checked, shown when it passed

    @property
    def ok(self) -> bool:
        return not (self.missing or self.missing_company or self.invalid_values or self.problems)

    def lines(self) -> list[str]:
        lines = [f"missing field {f.name}" + (" (unique upsert key)" if f.unique else "") for f in self.missing]
        lines += [f"missing company field {f.name}" + (" (unique key)" if f.unique else "") for f in self.missing_company]
        return lines + self.invalid_values + self.problems


def destination_preflight(*, destination: Destination, connector=None, probe: bool = True) -> PreflightReport:
    """`probe`: for a REST destination with a lookup, call it with an address nobody has."""
    connector = connector or connector_for(destination)
    if destination.kind == Destination.Kind.REST:
        return _rest_preflight(destination, connector, probe)
    schema: CrmSchema = connector.schema()
    report = PreflightReport(destination)
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
            if line.reads_back:
                report.problems.append(f"{line.target} is read back from the CRM ({line.get_direction_display()}), "
                                       "but the CRM has no such field to read")
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



# A made-up person, never saved: the preflight shows what the CRM would receive without
# putting anyone's personal data into an admin message.
SAMPLE_LEAD = {"email": "ada.lovelace@example.com", "first_name": "Ada", "last_name": "Lovelace",
               "phone": "+442071838750", "company": "Analytical Engines Ltd", "country": "GB",
               "external_id": "sample-external-id"}
SAMPLE_RECORD_ID = "SAMPLE-RECORD-ID"


def _rest_preflight(destination: Destination, connector, probe: bool) -> PreflightReport:
    report = PreflightReport(destination)
    try:
        recipe = destination.recipe()
    except RecipeError as exc:
        report.problems += [f"REST recipe {where}: {what}" for where, what in exc.errors.items()]
        return report
    fields = list(destination.fields.filter(object=Obj.PRIMARY))
    known = {f.target for f in fields}
    for where, names in unknown_placeholders(recipe, known).items():
        shown = ", ".join("{{ %s }}" % name for name in names)
        report.problems.append(f"{where}: unknown placeholder {shown} (the field map sends: {', '.join(sorted(known)) or 'nothing'})")
    if report.problems:
        return report
    _rest_render_sample(report, destination, recipe, fields)
    if probe and recipe.lookup is not None and not report.problems:
        try:
            report.notes.append(connector.lookup_probe())
        except ConnectorError as exc:
            report.problems.append(str(exc))
    return report


def _rest_render_sample(report: PreflightReport, destination: Destination, recipe, fields: list[DestinationField]) -> None:
    """Each request as it would go out for the sample lead (the update for a known record ID)."""
    sample = Lead(**SAMPLE_LEAD)
    primary, _ = render(sample, fields, company_key="")
    values = {"email": sample.email, **primary, "external_id": sample.external_id}
    nulls = frozenset({f.target for f in fields} - set(primary)) if recipe.missing == "null" else frozenset()
    for name in ("create", "update", "lookup", "batch"):
        request = getattr(recipe, name)
        if request is None:
            continue
        extra = {"crm_record_id": SAMPLE_RECORD_ID} if name in ("update", "batch") else {}
        try:
            url = fill_url(request.url, {**values, **extra}, destination.base_url, where=f"{name}.url")
        except TemplateError as exc:
            report.problems.append(f"{exc} for a sample lead")
            continue
        body = "" if request.body is None else " " + json.dumps(fill(request.body, {**values, **extra}, nulls=nulls),
                                                                 ensure_ascii=False, default=str)
        report.notes.append(f"{name}: {request.method} {url}{body}")
