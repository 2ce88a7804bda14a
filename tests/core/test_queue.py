"""The doorbell must never turn an acknowledged request into an error."""

import logging

from core import queue


class BrokenBroker:
    list_key = "crmsync"

    def enqueue(self, task):
        raise ConnectionError("broker down")


def test_a_broker_failure_after_commit_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.setattr(queue, "_process_broker", lambda: BrokenBroker())

    with caplog.at_level(logging.ERROR, logger="core.queue"):
        queue._send("mapping.tasks.submission_process", 42)

    record = caplog.records[-1]
    assert record.getMessage() == "could not enqueue task; the sweeper will retry"
    assert (record.task, record.task_args) == ("mapping.tasks.submission_process", (42,))
