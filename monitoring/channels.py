"""Sending one notification through its channel: email through Django's mail settings, the
webhooks through the outbound seam (core.outbound: timeouts, one exception type). A failure
raises ChannelError; the caller records it and retries with the seam's backoff."""

from dataclasses import dataclass
import hashlib
import hmac
import json
import smtplib
from typing import Any

from django.conf import settings
from django.core.mail import send_mail

from core import outbound, secrets
from monitoring.models import Alert, Channel, Notification

EVENT_TITLES = {
    Notification.Event.FIRING: "FIRING",
    Notification.Event.REMINDER: "STILL FIRING",
    Notification.Event.RESOLVED: "RESOLVED",
}


class ChannelError(Exception):
    def __init__(self, message: str, http_status: int | None = None):
        super().__init__(message)
        self.http_status = http_status


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    payload: dict[str, Any]  # the signed webhook's JSON body


def message_for(notification: Notification) -> Message:
    alert: Alert = notification.alert
    rule = alert.rule
    title = f"[crmsync {alert.severity}] {EVENT_TITLES[notification.event]}: {rule.name}"
    link = absolute(alert.link)
    lines = [alert.summary, "", *(f"{key}: {json.dumps(value, default=str)}" for key, value in sorted(alert.evidence.items()))]
    if link:
        lines += ["", f"Open: {link}"]
    payload = {
        "event": notification.event, "alert_id": alert.pk, "rule": rule.name, "kind": rule.kind,
        "severity": alert.severity, "state": alert.state, "summary": alert.summary, "evidence": alert.evidence,
        "link": link, "started_at": alert.started_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }
    return Message(title, "\n".join(lines), payload)


def absolute(path: str) -> str:
    base = getattr(settings, "CRMSYNC_PUBLIC_URL", "").rstrip("/")
    return f"{base}{path}" if path and base else path


def send(notification: Notification) -> int | None:
    """Send it; returns the HTTP status for webhooks. Raises ChannelError."""
    channel: Channel = notification.channel
    message = message_for(notification)
    if channel.kind == Channel.Kind.EMAIL:
        return _email(channel, message)
    if channel.kind == Channel.Kind.SLACK:
        return _post(channel.url, json.dumps({"text": f"*{message.title}*\n{message.text}"}).encode(), {})
    body = json.dumps(message.payload, sort_keys=True).encode()
    return _post(channel.url, body, {channel.signature_header: signature(_secret(channel), body)} if channel.secret_encrypted else {})


def _secret(channel: Channel) -> str:
    try:
        return channel.secret()
    except secrets.SecretUnavailable as exc:
        raise ChannelError("The signing secret no longer decrypts (was the encryption key rotated?): "
                           "enter it again on the channel's page.") from exc


def signature(secret: str, body: bytes) -> str:
    """sha256=<hex HMAC-SHA256 of the exact body>, as the REST destination signs its requests."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _email(channel: Channel, message: Message) -> None:
    try:
        send_mail(message.title, message.text, None, channel.recipient_list, fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise ChannelError(f"{type(exc).__name__}: {exc}") from exc


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    try:
        answer = outbound.request("POST", url, data=body, headers={"Content-Type": "application/json", **headers})
    except outbound.OutboundError as exc:
        raise ChannelError(str(exc)) from exc
    if not answer.ok:
        raise ChannelError(f"HTTP {answer.status}: {str(answer.body)[:500]}", answer.status)
    return answer.status
