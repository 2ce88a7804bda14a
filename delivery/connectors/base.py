"""The contract between the dispatcher and every connector.

The dispatcher decides *what* to send (field map, changed fields only, batching, rate budget,
retries); a connector knows *how* its CRM wants it and classifies each record's outcome so the
dispatcher can act on data (retry, park for review, pause the destination, done) without
knowing any CRM.
"""

from dataclasses import dataclass, field
from datetime import datetime
import enum
from typing import Any, Protocol

from delivery.models import Destination
from delivery.session import DestinationSession
from leads.models import Lead


class Outcome(enum.StrEnum):
    CREATED = "create"
    UPDATED = "update"
    PERMANENT = "permanent"  # the CRM refused this record; a person must look at it
    TRANSIENT = "transient"  # try again later: 5xx, timeout, connection error, lock
    RATE_LIMITED = "rate_limited"  # try again after retry_after
    AUTH = "auth"  # credentials refused even after one refresh


@dataclass
class PushRecord:
    """One lead as the destination should receive it."""

    lead: Lead
    # CRM field -> value for the primary object (contact, Lead, or the REST record), already
    # mapped. Only the fields to send (with changed_fields_only: those changed since the last
    # successful push). Never holds the upsert key: the connector adds it from external_id.
    fields: dict[str, Any]
    # The company/Account side, when the object model has one: CRM field -> value, including
    # the company's own upsert key field (destination.company_upsert_property -> domain).
    company: dict[str, Any] | None = None
    crm_record_id: str = ""  # known from an earlier successful push, else ""
    company_crm_id: str = ""
    # Set when we hold no CRM record ID for this lead and the destination looks up existing
    # records: before creating, the connector asks the CRM for a record with this email and,
    # if there is one (typed in by hand, imported), updates that record instead.
    lookup_email: str = ""
    # With lookup_email: CRM fields an adopted record keeps when it already holds a value (its
    # owner, its lifecycle stage): the CRM knew this person first.
    keep_existing: frozenset[str] = frozenset()

    @property
    def external_id(self) -> str:
        return self.lead.external_id


@dataclass
class RecordResult:
    lead: Lead
    outcome: Outcome
    crm_record_id: str = ""
    company_crm_id: str = ""
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    retry_after: float | None = None
    request: dict[str, Any] = field(default_factory=dict)  # what was sent for this record
    response: dict[str, Any] = field(default_factory=dict)  # what came back for it
    duration_ms: int = 0
    # A sentence when the record was found by lookup_email and adopted, e.g. "HubSpot contact
    # 512 found by email"; the dispatcher logs it on the lead.
    adopted: str = ""
    # True when a retry need not ask the CRM again: the lookup by lookup_email found nothing
    # (whatever became of the write), or found a record and adopted it. Not when a found
    # record could not be updated: the retry must find it again rather than create one.
    looked_up: bool = False
    # The CRM's lifecycle stage of an adopted record, lower-case ("customer"), when it has one.
    crm_lifecycle: str = ""

    @property
    def succeeded(self) -> bool:
        return self.outcome in (Outcome.CREATED, Outcome.UPDATED)


@dataclass(frozen=True)
class CrmField:
    """One field of the CRM's schema, as a preflight needs it."""

    name: str
    type: str = "string"
    label: str = ""
    options: tuple[str, ...] = ()  # allowed picklist values, when it is a picklist
    restricted: bool = False  # True when a value outside `options` is refused
    unique: bool = False  # usable as an upsert key
    required: bool = False  # must be set when a record is created


@dataclass(frozen=True)
class CrmSchema:
    primary: dict[str, CrmField]
    company: dict[str, CrmField] = field(default_factory=dict)


class ConnectorError(Exception):
    """A call outside record pushing (test connection, schema, create fields) failed; the
    message is for a person."""


class Connector(Protocol):
    max_batch: int  # the CRM's limit of records per call

    def __init__(self, destination: Destination, session: DestinationSession) -> None: ...

    def upsert(self, records: list[PushRecord]) -> list[RecordResult]:
        """Upsert the records (at most max_batch) keyed on their external IDs; return exactly
        one result per record. Must not raise for CRM or network errors: classify them. May
        raise outbound.RateLimitWait when the budget has no slot soon (nothing was sent, or
        what was sent is safe to send again)."""
        ...

    def test_connection(self) -> str:
        """Authenticate and make one cheap read; return a short description (raises ConnectorError)."""
        ...

    def schema(self) -> CrmSchema:
        """The fields of the object(s) this destination writes (raises ConnectorError)."""
        ...

    def create_fields(self, fields: list[CrmField], *, company: bool = False) -> list[str]:
        """Create missing custom fields where the CRM allows it through its API; return their
        names (raises ConnectorError, NotImplementedError where unsupported)."""
        ...


# --- Reading changes back (two-way sync) ---------------------------------------------------


class PollError(ConnectorError):
    """A read for the reconciliation poller failed. `auth` when the CRM refused the
    credentials; `retryable` when trying again later may work (5xx, timeout, 429)."""

    def __init__(self, message: str, *, retryable: bool = True, auth: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.auth = auth
        self.retry_after = retry_after  # seconds the CRM asked us to wait (429 Retry-After), when it said


@dataclass
class CrmChange:
    """One CRM record as the poller reads it: the mapped fields' current values and what the
    CRM says about who changed them and when (in the CRM's clock)."""

    crm_id: str
    modified_at: datetime  # the record's last change (HubSpot updatedAt, Salesforce SystemModstamp), aware
    values: dict[str, Any] = field(default_factory=dict)  # CRM field -> value as the CRM returns it; requested fields only
    # Per field, when it took its current value and who set it, where the CRM says so (HubSpot:
    # propertiesWithHistory timestamp and sourceType[:sourceId]; Salesforce: the record's
    # SystemModstamp and LastModifiedById for every field).
    changed_at: dict[str, datetime] = field(default_factory=dict)
    changed_by: dict[str, str] = field(default_factory=dict)
    # True when the CRM says the record's last change was our own integration's write (an echo).
    by_us: bool = False
    archived: bool = False  # deleted (HubSpot archived, Salesforce IsDeleted)
    merged_into: str = ""  # a merged-away record: the survivor's ID
    merged_ids: tuple[str, ...] = ()  # a survivor: the IDs merged into it (HubSpot hs_merged_object_ids)
    # The record's value of the destination's upsert property (our external ID), when it has one.
    external_id: str = ""


@dataclass
class ChangePage:
    """One page of a poll. Apply `changes`, then store `watermark` and `cursor` together."""

    changes: list[CrmChange]
    cursor: str  # opaque: pass it back for the next page; "" when this was the last page
    watermark: datetime | None  # the highest modification time this page covers (CRM clock)
    calls: int = 0  # HTTP calls this page took
    clock_offset_seconds: float | None = None  # the CRM's clock minus ours, from its Date header
