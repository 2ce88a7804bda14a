"""drift_summary(): each source's drift as plain data, for the admin and for alerts."""

import pytest

from crmsync.pipeline import submission_process
from mapping.models import UnmappedField
from mapping.selectors import SourceDrift, drift_summary
from mapping.services import mapping_publish
from tests.factories import EMAIL_RULE, source_with_mapping, submission

pytestmark = pytest.mark.django_db


def send(source, count: int, **fields) -> None:
    for _ in range(count):
        submission_process(submission_id=submission(source=source, payload={"email": "ada@example.com", **fields}).pk)


def test_it_lists_new_unmapped_names_stopped_names_and_what_the_limits_left_out_per_source():
    renamed = source_with_mapping(slug="renamed", rules=(EMAIL_RULE, {"source_keys": "Surname", "target": "last_name"}))
    noisy = source_with_mapping(slug="noisy")
    quiet = source_with_mapping(slug="quiet")
    send(renamed, 20, Surname="Lovelace")
    send(renamed, 5, **{"Last Name": "Lovelace"})
    send(noisy, 1, **{f"f{i}": "x" for i in range(60)})
    send(quiet, 3)

    summary = drift_summary()

    assert [(d.slug, d.stopped_arriving, d.unmapped_left_out) for d in summary] == [
        ("noisy", [], 10), ("renamed", ["Surname"], 0)]
    assert summary[1] == SourceDrift(renamed.pk, "renamed", "Renamed", ["Last Name"], ["Surname"], 0)
    assert sorted(summary[0].new_unmapped) == sorted(f"f{i}" for i in range(60))[:50]
    assert (summary[0].new_unmapped_count, summary[1].stopped_arriving_count) == (50, 1)
    assert drift_summary(source_id=quiet.pk) == []


def test_acknowledged_names_and_names_the_published_mapping_now_finds_are_not_drift():
    source = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "surname", "target": "last_name"}))
    send(source, 1, colour="green", size="L", **{"Last Name": "Lovelace"})
    UnmappedField.objects.filter(name="size").update(acknowledged=True)
    # a version published before drift was cleared on publishing: the name stays recorded
    mapping_set = source.mapping_sets.get()
    mapping_set.rules.filter(target="last_name").update(source_keys="surname, last_name")
    mapping_set.published.config["rules"][1]["source_keys"] = ["surname", "last_name"]
    mapping_set.published.save()

    assert [d.new_unmapped for d in drift_summary()] == [["colour"]]
    mapping_publish(mapping_set=mapping_set)
    assert [d.new_unmapped for d in drift_summary()] == [["colour"]]
