"""Each sandbox CRM's own clock, and who is making the current request's changes.

A real CRM's clock is not ours: the sync engine's "most recent" rule has to cope with a CRM a
few minutes ahead or behind. `SandboxSettings.clock_offset_seconds` sets that per CRM; every
timestamp the sandbox stamps (createdate, lastmodifieddate, property history, archivedAt,
CreatedDate, LastModifiedDate, SystemModstamp) and the `Date` header of its answers read
`crm_now`, real time plus the offset, to the millisecond (what both CRMs show).

Exactly one `Date` header, in the CRM's clock: gunicorn treats Date as its own header, drops the
application's and writes one from the real clock. `gunicorn_single_date` makes it write the
application's instead when there is one (SandboxConfig.ready calls it when gunicorn serves the
sandbox); the development server and the test server already send the application's.

The actor: a write carrying `X-Sandbox-Actor: person:<name>` is a person's edit (HubSpot
sourceType CRM_UI, Salesforce LastModifiedById of that person's user), otherwise the
integration's. Views set it per request with `acting_as`; the record code reads `current_actor`.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

from django.utils import timezone
from django.utils.http import http_date

from sandbox.limits import settings_get

ACTOR_HEADER = "X-Sandbox-Actor"
PERSON_PREFIX = "person:"


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the integration (the API client) or a named person."""

    person: str = ""

    @property
    def is_person(self) -> bool:
        return bool(self.person)


INTEGRATION = Actor()
_actor: ContextVar[Actor] = ContextVar("sandbox_actor", default=INTEGRATION)


class ActorError(ValueError):
    """An X-Sandbox-Actor header the sandbox cannot read."""


def actor_parse(header: str) -> Actor:
    """`""` is the integration; `person:<name>` a person. Anything else is refused."""
    header = header.strip()
    if not header:
        return INTEGRATION
    name = header[len(PERSON_PREFIX):].strip() if header.startswith(PERSON_PREFIX) else ""
    if not name or len(name) > 100:
        raise ActorError(f"{ACTOR_HEADER} must be 'person:<name>' (a name of 1 to 100 characters), not {header[:120]!r}.")
    return Actor(person=name)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> Actor:
    return _actor.get()


# --- the clock --------------------------------------------------------------------------------

def clock_offset(*, crm: str) -> int:
    return settings_get(crm=crm).clock_offset_seconds


def clock_offset_set(*, crm: str, seconds: int) -> int:
    row = settings_get(crm=crm)
    row.clock_offset_seconds = seconds
    row.save(update_fields=["clock_offset_seconds"])
    return seconds


def crm_now(*, crm: str, offset: int | None = None) -> datetime:
    """The CRM's time now, whole milliseconds (both CRMs show milliseconds; a finer stamp would
    make a record match `GT <its own shown time>`)."""
    now = timezone.now() + timedelta(seconds=clock_offset(crm=crm) if offset is None else offset)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def date_header(*, crm: str) -> str:
    """The `Date` header of the CRM's answers, in its clock."""
    return http_date(crm_now(crm=crm).timestamp())


def gunicorn_single_date() -> None:
    """Make gunicorn send the application's Date header, when it set one, instead of its own.
    Gunicorn counts Date (and Server) among the headers it owns: it drops the application's and
    always writes its own from the real clock, so without this the sandbox's clock would never
    reach a client served by gunicorn. Idempotent."""
    try:
        from gunicorn.http.wsgi import Response
    except ImportError:  # not served by gunicorn
        return
    if getattr(Response, "sandbox_date_patched", False):
        return
    process_headers, default_headers = Response.process_headers, Response.default_headers

    def process_headers_keeping_date(self, headers: list[tuple[str, str]]) -> None:
        process_headers(self, headers)  # validates every header (no CR/LF) before we keep one
        self.sandbox_date = next((value.strip() for name, value in headers if name.lower() == "date"), None)

    def default_headers_with_app_date(self) -> list[str]:
        lines = default_headers(self)
        date = getattr(self, "sandbox_date", None)
        if not date:
            return lines
        return [f"Date: {date}\r\n" if line.lower().startswith("date:") else line for line in lines]

    Response.process_headers = process_headers_keeping_date
    Response.default_headers = default_headers_with_app_date
    Response.sandbox_date_patched = True
