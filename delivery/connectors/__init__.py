"""One connector per destination kind: `base.py` is the contract (PushRecord in, one classified
RecordResult out per record); a new CRM is a module here plus a line in CONNECTORS."""

from delivery.connectors.hubspot import HubSpotConnector
from delivery.connectors.rest import RestConnector
from delivery.connectors.salesforce import SalesforceConnector
from delivery.models import Destination
from delivery.session import DestinationSession

CONNECTORS = {
    Destination.Kind.HUBSPOT: HubSpotConnector,
    Destination.Kind.SALESFORCE: SalesforceConnector,
    Destination.Kind.REST: RestConnector,
}


def connector_class(kind: str) -> type:
    return CONNECTORS[kind]


def connector_for(destination: Destination, session: DestinationSession | None = None):
    return CONNECTORS[destination.kind](destination, session or DestinationSession(destination))
