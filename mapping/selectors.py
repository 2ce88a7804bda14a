"""Reads of the mapping stage that several callers need: the drift of each source, for the
admin (index, source and mapping pages) and for alerting."""

from collections import defaultdict
from dataclasses import dataclass, field

from ingestion.models import Source
from mapping.models import DriftOverflow, FieldPresence, MappingSet, UnmappedField
from mapping.services import key_form


@dataclass
class SourceDrift:
    """A source whose fields changed: names it sends that its published mapping does not use
    (new, not acknowledged), mapped names it stopped sending, and how many unmapped names the
    recording limits left out. Plain data, for the admin and for alerts."""

    source_id: int
    slug: str
    name: str
    new_unmapped: list[str] = field(default_factory=list)
    stopped_arriving: list[str] = field(default_factory=list)
    unmapped_left_out: int = 0

    @property
    def new_unmapped_count(self) -> int:
        return len(self.new_unmapped)

    @property
    def stopped_arriving_count(self) -> int:
        return len(self.stopped_arriving)


def drift_summary(*, source_id: int | None = None) -> list[SourceDrift]:
    """Every source with drift (or just `source_id`'s), by source name. Reads only the drift
    tables, which the recording limits keep small, and the published mappings of those sources."""
    scope = {"source_id": source_id} if source_id is not None else {}
    unmapped = UnmappedField.objects.filter(acknowledged=False, **scope).order_by("-last_seen", "name")
    stopped = FieldPresence.objects.filter(stopped_at__isnull=False, **scope).order_by("name")
    left_out = dict(DriftOverflow.objects.filter(names_left_out__gt=0, **scope).values_list("source_id", "names_left_out"))
    new_names = _by_source(unmapped.values_list("source_id", "name"))
    stopped_names = _by_source(stopped.values_list("source_id", "name"))
    ids = new_names.keys() | stopped_names.keys() | left_out.keys()
    mapped = _mapped_forms(ids)
    drifts = []
    for source in Source.objects.filter(pk__in=ids).order_by("name"):
        # An unmapped name the published rules now find was mapped after it was recorded.
        new = [name for name in new_names.get(source.pk, []) if key_form(name) not in mapped.get(source.pk, set())]
        drift = SourceDrift(source.pk, source.slug, source.name, new, stopped_names.get(source.pk, []),
                            left_out.get(source.pk, 0))
        if drift.new_unmapped or drift.stopped_arriving or drift.unmapped_left_out:
            drifts.append(drift)
    return drifts


def _by_source(rows) -> dict[int, list[str]]:
    names: dict[int, list[str]] = defaultdict(list)
    for source_id, name in rows:
        names[source_id].append(name)
    return names


def _mapped_forms(source_ids) -> dict[int, set[str]]:
    """The field names each source's published mapping uses, as key_form() spells them."""
    sets = MappingSet.objects.filter(source_id__in=source_ids, is_active=True, published__isnull=False)
    return {source_id: {key_form(key) for rule in config["rules"] for key in rule["source_keys"]}
            for source_id, config in sets.values_list("source_id", "published__config")}
