"""The REST recipes of the README ("Pointing it at any REST endpoint"), as the end-to-end tests
use them against the sandbox's generic REST CRM, and a destination built from one."""

import copy

from delivery.fieldmap import fields_default_ensure
from delivery.models import Destination

LEAD_BODY = {"email": "{{ email }}", "first_name": "{{ first_name }}", "last_name": "{{ last_name }}",
             "company": "{{ company }}", "phone": "{{ phone }}", "country": "{{ country }}",
             "crmsync_id": "{{ external_id }}"}

# One create endpoint, an update by record ID, a list filterable by email, duplicates refused
# with 400 (or 409, or a 200 carrying {"error": true}).
SINGLE = {
    "create": {"method": "POST", "url": "/leads", "body": LEAD_BODY},
    "update": {"method": "PATCH", "url": "/leads/{{ crm_record_id }}"},
    "lookup": {"method": "GET", "url": "/leads?email={{ email }}", "id_path": "results[*].id"},
    "answer": {"success_when": {"path": "error", "not_equals": True}, "id_path": "id",
               "error_message_path": "message", "error_code_path": "code",
               "exists_status": [200, 400, 409], "exists_match": "duplicate_email|already used"},
}

# The same CRM answering {"data": {"lead": {...}}} and taking up to 50 records per batch call.
BATCH = {
    **copy.deepcopy(SINGLE),
    "lookup": {"method": "GET", "url": "/leads?email={{ email }}", "id_path": "data.items[*].id"},
    "batch": {"method": "POST", "url": "/leads/batch", "max": 50, "body": {"id": "{{ crm_record_id }}", **LEAD_BODY},
              "results_path": "data.results[*]", "index_path": "index", "id_path": "id"},
}
BATCH["answer"]["id_path"] = "data.lead.id"


def rest_crm_destination(base_url: str, recipe: dict | None = None, *, auth: str = Destination.Auth.BEARER,
                         credentials: dict | None = None, **fields) -> Destination:
    """A REST destination on the sandbox, checked as the admin checks it, with the default map."""
    destination = Destination(name="Generic REST CRM", kind=Destination.Kind.REST, base_url=base_url, auth_method=auth,
                              object_model=Destination.ObjectModel.RECORD, rest_recipe=recipe if recipe is not None else SINGLE,
                              batch_wait_seconds=0, rate_limit_requests=1000, rate_limit_window_seconds=1, **fields)
    if credentials is None and auth == Destination.Auth.BEARER:
        credentials = {"token": "sandbox-rest-token"}
    if credentials:
        destination.set_credentials(credentials)
    destination.full_clean()
    destination.save()
    fields_default_ensure(destination=destination)
    return destination
