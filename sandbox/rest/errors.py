"""The REST CRM's refusals and their one JSON shape: {"error": true, "code": ..., "message": ...}."""

from typing import Any

# Refusals of what the client sent: the ones `errors_as_200` answers with 200.
REFUSAL_CODES = frozenset({"invalid", "duplicate_email"})


class RestError(Exception):
    """A refusal: becomes the JSON error answer, or one batch item's error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": True, "code": self.code, "message": self.message}


def invalid(message: str) -> RestError:
    return RestError(400, "invalid", message)


def not_found(message: str) -> RestError:
    return RestError(404, "not_found", message)


def unauthorized(message: str) -> RestError:
    return RestError(401, "unauthorized", message)


def duplicate_email(email: str, status: int) -> RestError:
    return RestError(status, "duplicate_email", f"email already used: {email}")
