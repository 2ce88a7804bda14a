"""When a submission happened at its origin: the sender's own event or submitted time where the
provider gives one, else the time we received it. Identity resolution compares these times, so
an older submission processed after a newer one (a retry, a reprocessed rejection, a slow
provider) never replaces the newer one's values."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.utils.dateparse import parse_datetime

from mapping.extractors import dotted_get

# Where each provider puts its event time: (path, format) tried in order. "unix" is seconds
# since the epoch, "iso" an ISO 8601 string.
EVENT_TIME_PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    "stripe": (("created", "unix"),),
    "typeform": (("form_response.submitted_at", "iso"),),
    "tally": (("createdAt", "iso"), ("data.createdAt", "iso")),
    "webflow": (("payload.submittedAt", "iso"), ("payload.dateSubmitted", "iso")),
    "calendly": (("created_at", "iso"), ("payload.created_at", "iso")),
    "meta_lead_ads": (("entry.0.changes.0.value.created_time", "unix"), ("entry.0.time", "unix")),
    # A server sending JSON may say when its event happened (a backlog replayed later).
    "json_webhook": (("submitted_at", "iso"), ("event_time", "iso")),
}
# A sender's clock a little ahead of ours is believed up to this much; further ahead, the
# receipt time is used (a future time would make its values win over everything after it).
FUTURE_TOLERANCE = timedelta(minutes=5)


def event_time(*, kind: str, payload: Any, received_at: datetime) -> datetime:
    """The submission's event time (aware, UTC), never later than its receipt plus a little."""
    for path, fmt in EVENT_TIME_PATHS.get(kind, ()):
        moment = _parse(dotted_get(payload, path), fmt)
        if moment is not None:
            return received_at if moment > received_at + FUTURE_TOLERANCE else moment
    return received_at


def _parse(value: Any, fmt: str) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        if fmt == "unix":
            seconds = float(value)
            return datetime.fromtimestamp(seconds, tz=dt_timezone.utc) if seconds > 0 else None
        moment = parse_datetime(str(value).strip().replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt_timezone.utc)
