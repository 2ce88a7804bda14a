"""Every answer under /api/ is JSON, errors included: {"error": code, "detail": text}.

The intake's own refusals already are. The rest come from Django outside any view: 404 for a
path no route matches, 400 for a Host not in ALLOWED_HOSTS (raised by a middleware), 405, and
500 for an unexpected exception; Django answers those with HTML pages (the debug pages when
DEBUG is on, where handler404/handler500 are not even used). Placed first in MIDDLEWARE, this
sees each of them after Django turned the exception into a response, and answers JSON instead.
The admin and everything outside /api/ keep Django's pages."""

from collections.abc import Callable
from http import HTTPStatus

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
# Headers of the replaced answer that still mean something to the client.
_KEPT_HEADERS = ("Allow", "Retry-After", "Vary", "Access-Control-Allow-Origin")


class ApiJsonErrors:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path_info.startswith(API_PREFIX) and response.status_code >= 400 and not _is_json(response):
            return json_error(request, response)
        return response


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() == "application/json"


def json_error(request: HttpRequest, response: HttpResponse) -> JsonResponse:
    status = response.status_code
    code, detail = _drf_error(response) or _describe(request, status)
    answer = JsonResponse({"error": code, "detail": detail}, status=status)
    for name in _KEPT_HEADERS:
        if response.has_header(name):
            answer[name] = response[name]
    return answer


def _drf_error(response: HttpResponse) -> tuple[str, str] | None:
    # A DRF view's error already in our shape, rendered by a non-JSON renderer (the schema
    # view renders YAML): keep its words.
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), str) and isinstance(data.get("detail"), str):
        return data["error"], data["detail"]
    return None


def _describe(request: HttpRequest, status: int) -> tuple[str, str]:
    if status == 400 and (host_problem := _host_problem(request)):
        return "bad_host", host_problem
    if status == 404:
        return "not_found", f"Nothing answers {request.path[:200]}. Sources receive POST /api/v1/sources/<slug>/submissions."
    if status == 405:
        return "method_not_allowed", f"{request.method} is not allowed on {request.path[:200]}."
    if status >= 500:
        # Logged by Django with its traceback; nothing here tells the sender more than this.
        return "server_error", ("The server failed while handling this request. Retry later; a retry with the "
                                "same Idempotency-Key never stores a submission twice.")
    phrase = _phrase(status)
    return phrase.lower().replace(" ", "_") or "error", f"{phrase or 'Error'}."


def _host_problem(request: HttpRequest) -> str:
    try:
        request.get_host()
    except DisallowedHost:
        host = request.META.get("HTTP_HOST", "")[:100]
        return f"The Host header '{host}' is not one this server answers for (ALLOWED_HOSTS)."
    return ""


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
