import pytest

from ingestion.models import Source
from mapping.starters import mapping_starter_create


@pytest.fixture
def web(db) -> Source:
    """A website form with the starter mapping (email, names, phone, company, country, UTM,
    consent, referrer, landing page, website)."""
    source = Source.objects.create(name="Website", slug="website", kind="web_form")
    mapping_starter_create(source=source)
    return source


@pytest.fixture
def crm_import(db) -> Source:
    source = Source.objects.create(name="CRM import", slug="crm-import", kind="json_webhook")
    mapping_starter_create(source=source)
    return source
