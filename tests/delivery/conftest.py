import pytest


@pytest.fixture
def sandbox_url(live_server) -> str:
    """The sandbox HubSpot, served over real HTTP by the live test server."""
    return f"{live_server.url}/sandbox/hubspot"
