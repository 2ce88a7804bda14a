"""The CRM's clock against ours, from the `Date` header of its answers: the poller compares
modification times across the two clocks (the "most recent" rule) and keeps its overlap window in
the CRM's clock."""

from datetime import timezone as dt_timezone
from email.utils import parsedate_to_datetime


def clock_offset(date_header: str | None, midpoint: float) -> float | None:
    """The CRM's clock minus ours, in seconds: its `Date` header against the middle of the call
    (the header has whole seconds, cut off: the CRM's time was in the half-open second it names,
    so its middle is the best guess, good to half a second)."""
    if not date_header:
        return None
    try:
        theirs = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if theirs.tzinfo is None:
        theirs = theirs.replace(tzinfo=dt_timezone.utc)
    return round(theirs.timestamp() + 0.5 - midpoint, 3)
