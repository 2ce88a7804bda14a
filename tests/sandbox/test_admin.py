"""What an operator sees of the sandbox in the admin."""

import pytest

from sandbox.meta.graph import meta_lead_create

pytestmark = pytest.mark.django_db




def test_a_meta_lead_is_shown_read_only_without_its_page_token(operator):
    lead = meta_lead_create(leadgen_id="233370042045345", field_data=[{"name": "email", "values": ["ada@example.com"]}],
                            access_token="EAAsandbox-page-token", page_id="138124712925158")

    detail = operator.get(f"/admin/sandbox/sandboxmetalead/{lead.pk}/change/")

    assert detail.status_code == 200
    assert "ada@example.com" in detail.content.decode() and "EAAsandbox-page-token" not in detail.content.decode()
    assert operator.get("/admin/sandbox/sandboxmetalead/").status_code == 200
    assert operator.get("/admin/sandbox/sandboxmetalead/add/").status_code == 403
    assert operator.post(f"/admin/sandbox/sandboxmetalead/{lead.pk}/delete/", {"post": "yes"}).status_code == 403
