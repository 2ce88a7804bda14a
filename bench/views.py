"""The baseline: the least a Django view can do to acknowledge a request durably."""

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

# Created by the driver (bench.intake), not by a migration: the table is the bench's, not the product's.
BARE_TABLE = {
    "sqlite": "CREATE TABLE IF NOT EXISTS bench_bare "
              "(id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL, received_at DATETIME NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS bench_bare "
                  "(id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL, received_at TIMESTAMPTZ NOT NULL)",
}


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    """One INSERT of the raw body in its own transaction, then the intake's 202 answer."""
    if request.method != "POST":
        return JsonResponse({"error": "method_not_allowed", "detail": "POST only."}, status=405)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare (body, received_at) VALUES (%s, %s) RETURNING id",
                       [request.body, timezone.now()])
        row_id = cursor.fetchone()[0]
    return JsonResponse({"id": row_id, "status": "accepted"}, status=202)
