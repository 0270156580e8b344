"""Where alerts and audit anchors go: a webhook (JSON, optional bearer token) and e-mail (SMTP with
STARTTLS), built from the ``[alerts]`` settings. A notifier delivers or raises ``NotifierError``, whose message
names the notifier and the failure, never a secret."""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Protocol

import httpx
from pydantic import SecretStr

from worker.config import Settings
from worker.monitoring.alert_model import AlertMessage


class NotifierError(Exception):
    """A notification could not be delivered (message: the notifier and the failure, never a secret)."""


class Notifier(Protocol):
    name: str

    def send(self, message: AlertMessage) -> None:
        """Deliver or raise ``NotifierError``."""
        ...


class WebhookNotifier:
    """POSTs the message as JSON; an optional bearer token. The URL is never logged (it may hold a secret)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        token: SecretStr | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._timeout_s = timeout_s
        self._transport = transport

    def send(self, message: AlertMessage) -> None:
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        body = json.dumps(message.payload(), ensure_ascii=False, default=str).encode("utf-8")
        try:
            with httpx.Client(timeout=self._timeout_s, transport=self._transport) as client:
                response = client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotifierError(f"webhook: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise NotifierError(f"webhook: HTTP {response.status_code}")


class EmailNotifier:
    """SMTP with STARTTLS (port 465: implicit TLS). Credentials are never sent over a connection without TLS:
    a server that offers no STARTTLS gets the message only when no login is configured (a local relay)."""

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        user: str | None = None,
        password: SecretStr | None = None,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = list(recipients)
        self._user = user
        self._password = password
        self._timeout_s = timeout_s
        self._ssl_context = ssl_context or ssl.create_default_context()

    def build(self, message: AlertMessage) -> EmailMessage:
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = self._sender
        email["To"] = ", ".join(self._recipients)
        payload = message.payload()
        lines = [
            f"{message.transition.status.upper()}: {message.transition.condition}",
            message.transition.summary,
            "",
            f"facility: {message.facility_code}",
            f"since: {payload['since']}",
            "",
            # An informational message's detail is one JSON line, so that it can be kept as it is (an anchor
            # line for `audit verify --anchors`); an alert's is indented for reading.
            json.dumps(message.transition.detail, sort_keys=True, separators=(",", ":"), default=str)
            if message.transition.info
            else json.dumps(message.transition.detail, ensure_ascii=False, indent=2, default=str),
        ]
        email.set_content("\n".join(lines))
        return email

    def send(self, message: AlertMessage) -> None:
        email = self.build(message)
        try:
            smtp: smtplib.SMTP
            if self._port == 465:
                smtp = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=self._timeout_s, context=self._ssl_context
                )
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
            with smtp:
                smtp.ehlo()
                if self._port != 465:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=self._ssl_context)
                        smtp.ehlo()
                    elif self._user is not None:
                        raise NotifierError(
                            "email: the server offers no STARTTLS; refusing to log in in clear"
                        )
                if self._user is not None:
                    secret = self._password.get_secret_value() if self._password is not None else ""
                    smtp.login(self._user, secret)
                smtp.send_message(email)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifierError(f"email: {type(exc).__name__}") from None


def notifiers_from_settings(settings: Settings) -> list[Notifier]:
    """The notifiers ``alerts`` configures: a webhook when ``webhook_url`` is set, email when ``smtp_host``,
    ``email_from`` and ``email_to`` are."""
    cfg = settings.alerts
    notifiers: list[Notifier] = []
    if cfg.webhook_url:
        notifiers.append(WebhookNotifier(cfg.webhook_url, token=cfg.webhook_token))
    if cfg.smtp_host and cfg.email_from and cfg.email_to:
        notifiers.append(email_notifier(settings, cfg.email_to))
    return notifiers


def email_notifier(settings: Settings, recipients: Sequence[str]) -> EmailNotifier:
    """E-mail to ``recipients`` through the ``[alerts]`` SMTP server and sender (both checked by the caller)."""
    smtp = settings.alerts
    assert smtp.smtp_host is not None
    assert smtp.email_from is not None
    return EmailNotifier(
        host=smtp.smtp_host,
        port=smtp.smtp_port,
        sender=smtp.email_from,
        recipients=recipients,
        user=smtp.smtp_user,
        password=smtp.smtp_password,
    )
