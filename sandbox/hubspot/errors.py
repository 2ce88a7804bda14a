"""HubSpot's error bodies. The shape is fixed by HubSpot's error-handling guide and the `Error`
and `StandardError` models of its official Python client (see docs/wire-contracts.md)."""

from typing import Any
import uuid

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class HubSpotError(Exception):
    """A request HubSpot would refuse as a whole: becomes the JSON error answer."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"status": "error", "message": self.message, "correlationId": str(uuid.uuid4()),
                "category": self.category, **self.extra}


def validation_error(message: str, **extra: Any) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, **extra)


def not_found(message: str) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND", message)


def auth_error() -> HubSpotError:
    return HubSpotError(401, "INVALID_AUTHENTICATION", AUTH_MESSAGE)


def rate_limit_error(policy: str) -> HubSpotError:
    # HubSpot names the policy in lower case in the message and upper case in policyName.
    return HubSpotError(429, "RATE_LIMITS", f"You have reached your {policy.lower()} limit.",
                        errorType="RATE_LIMIT", policyName=policy)


def record_error(category: str, message: str, context: dict[str, list[str]]) -> dict[str, Any]:
    """One failed input of a batch (HubSpot's StandardError): the batch answers 207."""
    return {"status": "error", "category": category, "message": message, "context": context,
            "errors": [], "links": {}}


def expired_error() -> HubSpotError:
    # What HubSpot answers for an OAuth access token past its 30 minutes.
    return HubSpotError(401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired.")


# Injected faults: HubSpot's 5xx and 423 bodies carry the same error JSON as its 4xx.
FAULT_CATEGORIES = {
    423: ("LOCKED", "The record is locked by another request; retry after 2 seconds."),
    500: ("INTERNAL_ERROR", "An internal error occurred."),
    502: ("BAD_GATEWAY", "The upstream service did not answer in time."),
    503: ("SERVICE_UNAVAILABLE", "The service is temporarily unavailable."),
}


def fault_error(status: int) -> HubSpotError:
    category, message = FAULT_CATEGORIES[status]
    return HubSpotError(status, category, message)
