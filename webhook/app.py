"""The receiver: Alertmanager webhook and generic alert API, writing Incidents.

Delivery contract with Alertmanager (which retries 5xx and never 4xx): 200
only after every alert of the request is persisted, with what became of each
(`alerts`: key, outcome, incident, managed, and `rehomed` when it was recorded at
home); 503 with Retry-After when the API server cannot be reached or writes keep
conflicting; 4xx only for requests that can never succeed (auth, size, type,
malformed body). An alert that cannot go where it claims (outside its token's
namespaces, somewhere the receiver may not write, or refused there by the API
server) is recorded unmanaged in the token's home namespace: one such alert never
fails its request. Text too long for an Incident is cut, never refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from paramedic import kube, metrics
from paramedic.domain import alert_parse as parsing
from paramedic.domain.alert import SOURCE_GRAFANA, Alert, PayloadError
from paramedic.domain.timeutil import utcnow
from paramedic.informer import Directory
from paramedic.ingest import IngestConflict, ingest
from paramedic.owners import PodOwners
from paramedic.settings import Settings

from .auth import TokenSource, challenge

log = logging.getLogger("paramedic.webhook")

STATE = "paramedic.webhook"
OPEN_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "health.metrics", "static"})
"""Probes and scrapes need no token (they reveal nothing about incidents)."""
RETRY_AFTER_UNAVAILABLE = "10"
RETRY_AFTER_CONFLICT = "1"
_READ_CHUNK = 64 * 1024
_DRAIN_LIMIT = 16 * 1024 * 1024
"""Most of a refused body read and dropped, so the sender sees the 413 instead of a reset connection."""


class BadRequest(Exception):
    """A request that can never succeed as sent."""

    def __init__(self, status: int, message: str, field: str = ""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Receiver:
    """One receiver app's state (`app.extensions[STATE]`), read by its blueprints."""

    settings: Settings
    client: kube.KubeClient
    tokens: TokenSource
    services: Directory
    """Watch-fed MonitoredServices per namespace, started by the first alert from it (after
    gunicorn's fork, so the watch threads live in the worker that serves requests)."""
    owners: PodOwners
    """Pod → owning workload, for alerts that name only a pod (cached, bounded)."""
    reads: kube.ReadFloor
    """This app's view of Incidents: correlation lists from the watch cache, never older than its writes."""

    @property
    def max_body(self) -> int:
        return int(self.settings.webhook_max_body_bytes)

    @property
    def max_alerts(self) -> int:
        return int(self.settings.webhook_max_alerts)


def receiver() -> Receiver:
    state: Receiver = current_app.extensions[STATE]
    return state


def create_app(settings: Settings | None = None, client: kube.KubeClient | None = None) -> Flask:
    """The receiver as a WSGI app. Refuses (SettingsError) to start without a token unless insecure."""
    settings = settings or Settings.from_env()
    tokens = TokenSource.from_settings(settings)
    client = client or kube.KubeClient.from_settings(settings)
    app = Flask("paramedic.webhook")
    app.config["MAX_CONTENT_LENGTH"] = int(settings.webhook_max_body_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[STATE] = Receiver(settings=settings, client=client, tokens=tokens,
                                     services=Directory(client, kube.MONITORED_SERVICES), owners=PodOwners(client),
                                     reads=kube.ReadFloor())
    app.before_request(authenticate)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
    app.register_blueprint(alerts_bp)
    app.register_blueprint(health_bp)
    return app


def authenticate() -> Response | None:
    """Every request but probes and scrapes carries a bearer token; its scope goes to `g.scope`."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    scope = receiver().tokens.check(request.headers.get("Authorization"))
    if scope is not None:
        g.scope = scope  # the namespaces this request may write incidents in
        return None
    error = "invalid_request" if not request.headers.get("Authorization") else "invalid_token"
    resp = jsonify(error="missing or wrong bearer token")
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = challenge(error)
    return resp


# --- the webhook endpoints -----------------------------------------------------------------
# No read API: a token only proves "may send alerts", never "may read this namespace's
# incidents". Post-mortems are rendered with the reader's own credentials
# (`kubectl paramedic report`).
alerts_bp = Blueprint("alerts", __name__)


@alerts_bp.post("/api/v1/alertmanager")
def alertmanager() -> tuple[Response, int] | Response:
    # Alertmanager's payload (version 4) and Grafana alerting's (version 1+, same shape).
    def parse(payload: Any) -> list[Alert]:
        alerts = parsing.parse_alertmanager(payload, max_alerts=receiver().max_alerts)
        if payload.get("truncatedAlerts"):
            log.warning("%s left out %s alerts of group %s (max_alerts): they are not recorded",
                        "Grafana" if alerts and alerts[0].source == SOURCE_GRAFANA else "Alertmanager",
                        payload["truncatedAlerts"], payload.get("groupKey", "?"))
        return alerts

    return receive(parse, "alertmanager")


@alerts_bp.post("/api/v1/alerts")
def generic_alerts() -> tuple[Response, int] | Response:
    return receive(lambda p: parsing.parse_generic(p, now=utcnow(), max_alerts=receiver().max_alerts), "api")


def receive(parse: Callable[[Any], list[Alert]], kind: str) -> tuple[Response, int] | Response:
    state = receiver()
    started = time.perf_counter()
    try:
        payload = _read_json(state.max_body)
        alerts = parse(payload)
    except BadRequest as exc:
        log.info("rejected %s request from %s: %s %s", kind, request.remote_addr, exc.status, exc.message)
        return _error(exc.status, exc.message, exc.field)
    except PayloadError as exc:
        log.info("rejected %s request from %s: %s", kind, request.remote_addr, exc)
        return _error(400, str(exc), exc.field)
    for alert in alerts:
        metrics.ALERTS_RECEIVED.labels(alert.status).inc()
    try:
        result = ingest(state.client, state.settings, alerts, utcnow(), services=state.services, owners=state.owners,
                        scope=g.scope, reads=state.reads)
    except kube.Unavailable as exc:
        log.warning("cannot persist %d alerts (%s): %s", len(alerts), kind, exc)
        return _error(503, f"Kubernetes API unavailable, retry later: {exc}", retry_after=RETRY_AFTER_UNAVAILABLE)
    except IngestConflict as exc:
        log.warning("cannot persist %d alerts (%s): %s", len(alerts), kind, exc)
        return _error(503, f"concurrent updates, retry: {exc}", retry_after=RETRY_AFTER_CONFLICT)
    except kube.ApiError as exc:
        # Even the minimal record was refused in the token's home namespace (RBAC, a missing
        # namespace, ...): nothing could be recorded, so 5xx: retried once the admin fixes it.
        log.error("Kubernetes API refused while persisting %d alerts (%s): %s", len(alerts), kind, exc)
        return _error(500, f"Kubernetes API refused: {exc}")
    finally:
        metrics.ALERT_PROCESSING.observe(time.perf_counter() - started)
    log.info("%s: %d alerts: %s", kind, len(alerts), result.as_dict())
    return jsonify(status="ok", received=len(alerts), **result.as_dict(), alerts=[result.outcome_of(a) for a in alerts])


# --- health and metrics ----------------------------------------------------------------------
health_bp = Blueprint("health", __name__)


@health_bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@health_bp.get("/readyz")
def readyz() -> Response:
    if receiver().client.healthy():
        return jsonify(status="ok")
    return _error(503, "Kubernetes API server not reachable", retry_after=RETRY_AFTER_UNAVAILABLE)


@health_bp.get("/metrics", endpoint="metrics")
def metrics_route() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


# --- errors ----------------------------------------------------------------------------------

def http_error(exc: HTTPException) -> Response:
    resp = _error(exc.code or 500, exc.description or exc.name)
    if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        resp.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return resp


def unexpected(exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(500, f"internal error: {exc.__class__.__name__}")


def _error(status: int, message: str, field: str = "", retry_after: str | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    resp = jsonify(body)
    resp.status_code = status
    if retry_after:
        resp.headers["Retry-After"] = retry_after
    return resp


def _read_json(max_body: int) -> Any:
    """The request body as JSON: 415 for another type, 413 when too large, 400 when not UTF-8 JSON."""
    if request.mimetype != "application/json":
        raise BadRequest(415, f"Content-Type must be application/json, not {request.mimetype or 'missing'}")
    length = request.content_length
    if length is not None and length > max_body:
        _drain(length)
        raise BadRequest(413, f"body of {length} bytes is over the {max_body}-byte limit")
    # Cap what is read too: a chunked body carries no Content-Length.
    chunks: list[bytes] = []
    total = 0
    try:
        stream = request.stream
        while True:
            chunk = stream.read(min(_READ_CHUNK, max_body + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_body:
                _drain(None)
                raise BadRequest(413, f"body is over the {max_body}-byte limit")
    except RequestEntityTooLarge:
        _drain(None)
        raise BadRequest(413, f"body is over the {max_body}-byte limit") from None
    data = b"".join(chunks)
    if not data.strip():
        raise BadRequest(400, "empty body: a JSON document is required", "body")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"body is not valid UTF-8 (byte {exc.start})", "body") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", "body") from None
    except ValueError as exc:  # NaN/Infinity, integers too long to convert
        raise BadRequest(400, f"malformed JSON: {exc}", "body") from None
    except RecursionError:
        raise BadRequest(400, "malformed JSON: nested too deeply", "body") from None


def _drain(length: int | None) -> None:
    """Read and drop what is left of a refused body, up to _DRAIN_LIMIT.

    Closing a connection with unread data in it makes the kernel answer with a reset,
    which can destroy the 413 in flight: the sender would retry a body that can never
    fit instead of being told so. Beyond the limit the connection is simply closed.
    """
    if length is not None and length > _DRAIN_LIMIT:
        return
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    left = _DRAIN_LIMIT
    try:
        while left > 0:
            chunk = stream.read(min(_READ_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
    except (OSError, ValueError):
        pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
