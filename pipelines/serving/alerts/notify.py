"""Carrying an alert's transition (opened, closed) off the page: a JSON POST to a webhook and a
mail over SMTP, each optional (``alerts.webhook`` / ``alerts.email`` in
``parameters/<env>.yaml``). Standard library only (``urllib.request``, ``smtplib``).

Each send is tried ``attempts`` times in a run, with a timeout and a backoff; a network error,
a timeout, HTTP 408 / 429 / 5xx or an SMTP 4xx reply is worth another try, any other refusal
is not. Every payload carries an idempotency key, ``<alert id>:<event>``: the webhook gets it
in the JSON (``idempotency_key``) and as the ``Idempotency-Key`` header, the mail as its
``Message-ID`` and ``X-Tarmac-Idempotency-Key``. The store sends at least once per transition
(``store.deliver``): a receiver that must see each transition once dedups on that key.
"""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from pipelines.core.config import EmailSettings, WebhookSettings

PASSWORD_ENV = "TARMAC_SMTP_PASSWORD"
RETRY_HTTP = (408, 429)


@dataclass(frozen=True)
class Outcome:
    """How a send ended: ``ok``, the tries it took, the last error (None when sent)."""

    ok: bool
    attempts: int
    error: str | None = None


class Permanent(Exception):
    """A refusal another try would not change (HTTP 4xx, SMTP 5xx, no password)."""


def idempotency_key(alert_id: str, event: str) -> str:
    return f"{alert_id}:{event}"


def payload(alert: Mapping[str, Any], event: str, env: str) -> dict[str, Any]:
    """The JSON a webhook receives for ``event`` (``open`` / ``close``) of ``alert``."""
    fields = ("key", "rule", "subject", "severity", "message", "action", "facts", "opened_at",
              "last_seen", "closed_at")  # fmt: skip
    return {
        "idempotency_key": idempotency_key(alert["_id"], event),
        "event": event,
        "env": env,
        "alert": {"id": alert["_id"], **{k: _json(alert.get(k)) for k in fields}},
    }


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z") + ("Z" if value.tzinfo is None else "")
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _tries(attempts: int, backoff_s: float, send: Callable[[], None]) -> Outcome:
    error = None
    for k in range(1, attempts + 1):
        if k > 1:
            time.sleep(backoff_s * 2 ** (k - 2))
        try:
            send()
            return Outcome(True, k)
        except Permanent as exc:
            return Outcome(False, k, str(exc))
        except (OSError, smtplib.SMTPException) as exc:  # URLError, timeouts, refused
            error = f"{type(exc).__name__}: {exc}"
    return Outcome(False, attempts, error)


def post(hook: WebhookSettings, body: Mapping[str, Any]) -> Outcome:
    """POST ``body`` as JSON to ``hook.url``: 2xx is sent."""
    if not hook.url:
        raise ValueError("no webhook url")
    data = json.dumps(body, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "tarmac-alerts",
               "Idempotency-Key": str(body["idempotency_key"]), **hook.headers}  # fmt: skip
    url = hook.url

    def send() -> None:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            text = f"HTTP {exc.code} from {url}"
            if exc.code in RETRY_HTTP or exc.code >= 500:
                raise OSError(text) from None
            raise Permanent(text) from None

    return _tries(hook.attempts, hook.backoff_s, send)


def message(alert: Mapping[str, Any], event: str, env: str, mail: EmailSettings) -> EmailMessage:
    """The mail of ``event`` of ``alert``: what, what to do, the facts, the idempotency key."""
    key = idempotency_key(alert["_id"], event)
    msg = EmailMessage()
    word = "OPEN" if event == "open" else "CLOSED"
    msg["Subject"] = f"[Tarmac {env}] {word} {alert.get('severity', '')}: {alert.get('message')}"
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.to)
    domain = mail.sender.rsplit("@", 1)[-1] or "tarmac"
    msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
    msg["X-Tarmac-Idempotency-Key"] = key
    facts = json.dumps(_json(alert.get("facts") or {}), indent=2, sort_keys=True)
    state = (
        f"Opened {_json(alert.get('opened_at'))}"
        if event == "open"
        else f"Closed {_json(alert.get('closed_at'))} (opened {_json(alert.get('opened_at'))})"
    )
    msg.set_content(
        f"{alert.get('message')}\n\nWhat to do: {alert.get('action')}\n\n{state}.\n"
        f"Alert {alert['_id']} (rule {alert.get('rule')}, {alert.get('subject')}).\n\n"
        f"Facts:\n{facts}\n"
    )
    return msg


def mail(settings: EmailSettings, msg: EmailMessage) -> Outcome:
    """Send ``msg`` over SMTP: STARTTLS when ``starttls``, login when ``user`` (password from
    ``$TARMAC_SMTP_PASSWORD``)."""
    if not settings.host or not settings.to:
        raise ValueError("no SMTP host or recipients")

    def send() -> None:
        password = os.environ.get(PASSWORD_ENV)
        if settings.user and not password:
            raise Permanent(f"alerts.email.user is set but ${PASSWORD_ENV} is empty")
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
                if settings.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.user:
                    smtp.login(settings.user, password or "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:  # refused for good (auth, recipient, policy)
                raise Permanent(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
            raise

    return _tries(settings.attempts, settings.backoff_s, send)
