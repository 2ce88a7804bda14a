"""The outbound seam against a real local HTTP server that answers header names in lower case,
as a proxy or an HTTP/2 hop may: the CRM's rate signals must still be read."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import threading

import pytest

from core import outbound
from delivery.connectors.base import Outcome, PushRecord
from delivery.connectors.hubspot import HubSpotConnector
from delivery.session import DestinationSession
from tests.factories import hubspot_destination
from tests.factories import lead as make_lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def lowercasing_crm():
    """Answers every request with the status and (lower-case) headers a test sets on it."""
    state = {"status": 200, "headers": {}, "body": {"results": []}}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            raw = state.get("raw") or json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            for name, value in state["headers"].items():
                self.send_header(name.lower(), value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_reply_headers_are_read_whatever_their_case(lowercasing_crm):
    lowercasing_crm["headers"] = {"Retry-After": "42"}

    answer = outbound.request("GET", lowercasing_crm["url"] + "/anything")

    assert answer.headers["Retry-After"] == answer.headers["retry-after"] == "42"


def test_hubspot_waits_as_long_as_a_lowercased_retry_after_says(lowercasing_crm):
    lowercasing_crm.update(status=429, headers={"Retry-After": "42"}, body={"status": "error", "message": "slow"})
    destination = hubspot_destination(base_url=lowercasing_crm["url"])
    connector = HubSpotConnector(destination, DestinationSession(destination))

    [result] = connector.upsert([PushRecord(lead=make_lead(), fields={"email": "ada@example.com"})])

    assert (result.outcome, result.retry_after) == (Outcome.RATE_LIMITED, 42.0)


def test_hubspot_connection_test_reads_a_lowercased_daily_budget(lowercasing_crm):
    lowercasing_crm["headers"] = {"X-HubSpot-RateLimit-Daily-Remaining": "12345"}
    destination = hubspot_destination(base_url=lowercasing_crm["url"])

    message = HubSpotConnector(destination, DestinationSession(destination)).test_connection()

    assert "12,345 requests left today" in message


def test_a_reply_nested_too_deep_for_the_json_parser_is_kept_as_text(lowercasing_crm):
    deep = "[" * 100_000 + "]" * 100_000
    lowercasing_crm["raw"] = deep.encode()

    answer = outbound.request("GET", lowercasing_crm["url"] + "/deep")

    assert answer.body == deep
