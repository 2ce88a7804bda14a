"""django-q2 entry points for the intake stage."""

from ingestion import services


def idempotency_keys_prune() -> str:
    return f"forgot {services.idempotency_keys_prune()} idempotency keys"
