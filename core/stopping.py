"""A worker's stop, as seen by the processes it forked.

`manage.py worker` shares one value with its task processes before forking them: zero while it
runs, then the moment (on the machine's monotonic clock, which every process shares) by which
work in flight must be finished or handed back. Long work reads it: the dispatcher claims
nothing more once a stop is requested, and hands back what it still holds before the deadline.
Outside such a worker (web processes, tests, `qcluster` run alone) no stop is ever requested."""

import multiprocessing
import time

_deadline = None  # a shared double, made by stop_share() in the worker before it forks


def stop_share() -> None:
    """Make the shared value; call before forking the processes that must see the stop."""
    global _deadline
    _deadline = multiprocessing.get_context("fork").Value("d", 0.0, lock=False)


def stop_request(*, within_seconds: float) -> float:
    """Ask every process forked after stop_share() to stop; returns the deadline."""
    deadline = time.monotonic() + within_seconds
    if _deadline is not None:
        _deadline.value = deadline
    return deadline


def stop_deadline() -> float | None:
    """The monotonic time by which work in flight must be settled or handed back, once a stop
    has been requested; None while the worker runs."""
    if _deadline is None or not _deadline.value:
        return None
    return _deadline.value


def stop_requested() -> bool:
    return stop_deadline() is not None
