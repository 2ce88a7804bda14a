"""`make bench-dashboard`: the admin dashboard costs the same statements at 10k and at 1M leads.

On a fresh SQLite database: for each size, fill the raw tables (leads and their submissions)
with that many rows and the hourly counts with a month of the traffic that made them
(monitoring.samples.history_seed, scaled to the size), then render the dashboard over the last
30 days as a logged-in operator and count the SQL statements. The statements read bucket rows
only (hours x sources and destinations x outcomes), so their number does not move with the
number of leads; the rows they read grow only with the number of sources and destinations.

Run from the repository root: .venv/bin/python -m bench.dashboard
Environment: BENCH_SIZES (10000,1000000), BENCH_SOURCES (3), BENCH_DESTINATIONS (2).
"""

from __future__ import annotations

import os
from pathlib import Path
import tempfile
import time

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "10000,1000000").split(",")]
SOURCES = int(os.environ.get("BENCH_SOURCES", "3"))
DESTINATIONS = int(os.environ.get("BENCH_DESTINATIONS", "2"))
BATCH = 10_000


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-dashboard-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update({"DJANGO_SETTINGS_MODULE": "crmsync.settings", "CRMSYNC_VAR_DIR": str(tmp),
                           "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "REDIS_URL": "", "DEBUG": "true"})
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        rows = [_measure(size) for size in SIZES]
    print(f"{'leads':>10} {'submissions':>12} {'bucket rows':>12} {'statements':>11} {'page ms':>8}")
    for row in rows:
        print(f"{row['leads']:>10,} {row['submissions']:>12,} {row['bucket_rows']:>12,} {row['statements']:>11} "
              f"{row['ms']:>8.0f}", flush=True)
    same = len({row["statements"] for row in rows}) == 1
    print("same number of statements at every size" if same else "the number of statements changed with the size")
    return 0 if same else 1


def _measure(size: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from audit.models import HourlyCount
    from delivery.models import Destination
    from ingestion.models import Source, Submission
    from leads.models import Lead
    from monitoring.samples import history_seed

    sources, destinations = _subjects(Source, Destination)
    _fill(size, Lead, Submission, sources)
    HourlyCount.objects.all().delete()
    # A month in which `size` leads arrived: the counts are bigger, the rows are as many.
    per_hour = max(1, size // (30 * 24 * SOURCES))
    history_seed(source_ids=[s.pk for s in sources], destination_ids=[d.pk for d in destinations], now=timezone.now(),
                 per_hour=per_hour, days=30)
    user = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
        "bench", "bench@example.com", "bench-password")
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    client.get("/admin/dashboard/?range=30d")  # warm: templates, session
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        answer = client.get("/admin/dashboard/?range=30d")
        ms = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, answer.status_code
    return {"leads": Lead.objects.count(), "submissions": Submission.objects.count(),
            "bucket_rows": HourlyCount.objects.count(), "statements": len(queries), "ms": ms}


def _subjects(Source, Destination):
    sources = [Source.objects.get_or_create(slug=f"form-{i}", defaults={"name": f"Form {i}"})[0] for i in range(SOURCES)]
    destinations = [Destination.objects.get_or_create(name=f"CRM {i}", defaults={"base_url": "http://127.0.0.1:9/"})[0]
                    for i in range(DESTINATIONS)]
    return sources, destinations


def _fill(size: int, Lead, Submission, sources) -> None:
    """Top the raw tables up to `size` leads, each with one processed submission."""
    have = Lead.objects.count()
    for start in range(have, size, BATCH):
        leads = Lead.objects.bulk_create(Lead(email=f"person{i}@example.org") for i in range(start, min(size, start + BATCH)))
        Submission.objects.bulk_create(
            Submission(source=sources[lead.pk % len(sources)], raw_body=b"{}", payload={}, status="processed", lead=lead)
            for lead in leads)


if __name__ == "__main__":
    raise SystemExit(main())
