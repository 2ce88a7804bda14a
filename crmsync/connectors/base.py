"""What every connector returns: one outcome per record, classified so the dispatcher can
decide by data (retry, park for review, done) without knowing any CRM."""

from dataclasses import dataclass, field
import enum
from typing import Any, Protocol

from crmsync.models import Destination, Lead


class Outcome(enum.StrEnum):
    CREATED = "create"
    UPDATED = "update"
    PERMANENT = "permanent"  # the CRM refused this record; a person must look at it
    TRANSIENT = "transient"  # try again later: 5xx, timeout, connection error, lock
    RATE_LIMITED = "rate_limited"  # try again after retry_after
    AUTH = "auth"  # credentials refused


@dataclass
class RecordResult:
    lead: Lead
    outcome: Outcome
    crm_record_id: str = ""
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    retry_after: float | None = None
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return self.outcome in (Outcome.CREATED, Outcome.UPDATED)


class Connector(Protocol):
    batch_size: int

    def __init__(self, destination: Destination) -> None: ...

    def upsert(self, leads: list[Lead]) -> list[RecordResult]:
        """Upsert up to batch_size leads; return one result per lead, in any order."""
        ...
