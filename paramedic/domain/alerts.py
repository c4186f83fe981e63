"""Alerts: payload parsing, alert keys, routing to MonitoredServices, correlation and names.

Three inputs become `Alert`s: Alertmanager's webhook payload (version 4),
Grafana alerting's webhook payload (the same shape, version "1" and later, with
`orgId`, `state`, `title`, `message` and per alert links and values), and the
generic `{service, severity, message, labels, timestamp}` alert. Each payload is
a pydantic model; validation errors name the offending field (`alerts[2].labels:
...`) so a sender can fix its payload; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from .lifecycle import append_timeline, is_active, timeline_entry
from .text import cut as cut
from .timeutil import iso, iso_ms, parse

# Re-exported (defined once, in .vocabulary); DEFAULT_SEVERITY is also the severity of an
# alert whose label says nothing usable and whose service sets no default.
from .vocabulary import DEFAULT_SEVERITY as DEFAULT_SEVERITY
from .vocabulary import SEVERITIES as SEVERITIES
from .vocabulary import State

SEVERITY_ALIASES: dict[str, str] = {
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical",
    "disaster": "critical",
    "high": "high", "page": "high", "error": "high", "err": "high", "major": "high",
    "medium": "medium", "warning": "medium", "warn": "medium", "minor": "medium", "moderate": "medium",
    "low": "low", "info": "low", "informational": "low", "notice": "low", "none": "low", "debug": "low",
}
"""Severity label values seen in the wild, mapped onto Paramedic's four levels."""

FIRING, RESOLVED = "firing", "resolved"
STATUSES = (FIRING, RESOLVED)

SOURCE_ALERTMANAGER, SOURCE_GRAFANA, SOURCE_API = "alertmanager", "grafana", "api"
ACTOR = "paramedic/webhook"

ALERTMANAGER_VERSION = "4"
"""The one Alertmanager webhook payload version (Alertmanager 0.x has sent it since 2016)."""
GRAFANA_LINKS = ("silenceURL", "dashboardURL", "panelURL")
"""Per-alert links of Grafana's payload, kept on the alert's status.alerts entry."""
MAX_VALUES = 32
"""Most of a Grafana alert's `values` kept (query refID → number)."""

# Limits: an Incident is one etcd object (~1.5 MB), and spec.labels mirrors an
# alert's labels (the CRD allows 64 of at most 1024 characters each).
MAX_ALERTS = 1000
MAX_LABELS = 64
MAX_LABEL_NAME = 256
MAX_LABEL_VALUE = 1024
MAX_ANNOTATIONS = 64
MAX_ANNOTATION_VALUE = 8192
MAX_SERVICE = 253
MAX_MESSAGE = 8192
MAX_FINGERPRINT = 128
MAX_URL = 2048
MAX_TITLE = 256
MAX_DESCRIPTION = 8192
MAX_ALERTS_PER_INCIDENT = 1000
"""Past this, the oldest resolved entries leave status.alerts (the object must stay small)."""
ALERTS_BYTES_BUDGET = 400_000
"""About how large status.alerts may grow: etcd refuses objects over 1.5 MB, and every write costs per byte."""

# Alertmanager writes Go's zero time for "no end"; anything before 1971 is that.
_NO_TIME_BEFORE = datetime(1971, 1, 1, tzinfo=UTC)


class PayloadError(ValueError):
    """A request body that cannot be accepted; `field` names where, `message` says why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Alert:
    """One alert, from either input, normalised."""

    fingerprint: str
    status: str                      # firing | resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""
    source: str = SOURCE_ALERTMANAGER
    links: Mapping[str, str] = field(default_factory=dict)     # Grafana: silenceURL, dashboardURL, panelURL
    values: Mapping[str, float | None] = field(default_factory=dict)  # Grafana: query refID → value

    @cached_property
    def key(self) -> str:
        """Identity of one alert occurrence: Alertmanager re-sends it with the same fingerprint and startsAt."""
        return f"{self.fingerprint}@{iso_ms(self.starts_at)}"

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str | None:
        """Mapped from labels.severity; None when absent or unknown (the service's default applies)."""
        return normalize_severity(self.labels.get("severity"))

    @property
    def namespace(self) -> str | None:
        return self.labels.get("namespace") or None

    @property
    def service_hint(self) -> str:
        """The service of an alert that matched no MonitoredService, cut to fit spec.service."""
        return cut(self.labels.get("service") or self.alertname or "unknown", MAX_SERVICE)

    @property
    def summary(self) -> str:
        return (self.annotations.get("summary") or self.annotations.get("message")
                or self.annotations.get("description") or "")

    @property
    def title(self) -> str:
        first_line = (self.annotations.get("summary") or self.annotations.get("title")
                      or self.annotations.get("message") or "").strip().splitlines()
        text = first_line[0] if first_line else ""
        if not text:
            text = self.alertname or f"alert from {self.service_hint}"
        return cut(text, MAX_TITLE)

    @property
    def description(self) -> str:
        text = self.annotations.get("description") or self.annotations.get("message") or ""
        return cut(text, MAX_DESCRIPTION)

    @property
    def runbook_url(self) -> str:
        for name in ("runbook_url", "runbookURL", "runbook"):
            value = self.annotations.get(name, "")
            if value and len(value) <= MAX_URL:
                return value
        return ""


# --- parsing -------------------------------------------------------------------
#
# The payloads are pydantic models: pydantic checks each field's type (strict: no
# coercion), and each field says how it is refused (`_Says`), so a sender reads which
# field is wrong and why. Limits that depend on the value (counts, lengths, text that
# UTF-8 cannot carry, times) are checked after the type, by the same field. A refusal is
# a PayloadError naming the field's path (`alerts[2].labels.x`).


@dataclass(frozen=True)
class _Says:
    """A field's refusals: of a value of the wrong type, and of a missing required field."""

    wrong: str
    missing: str = ""


def _refused(message: str, at: str = "") -> PydanticCustomError:
    return PydanticCustomError("payload", "{message}", {"message": message, "at": at})


def _then(check: Callable[[Any], Any]) -> AfterValidator:
    """`check` on the typed value; its PayloadError names a field relative to this one ("" or ".name")."""
    def validate(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except PayloadError as exc:
            raise _refused(exc.message, exc.field) from None

    return AfterValidator(validate)


def _time_field(required: bool) -> PlainValidator:
    def validate(value: Any) -> datetime | None:
        try:
            return _time(value, "", required)
        except PayloadError as exc:
            raise _refused(exc.message) from None

    return PlainValidator(validate)


def _alerts_list(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    if value is None:
        raise _refused("required: a list of alerts")
    if not isinstance(value, list):
        raise _refused("must be a list")
    limit = (info.context or {}).get("max_alerts", MAX_ALERTS)
    if len(value) > limit:
        raise _refused(f"at most {limit} alerts per request (got {len(value)}); "
                       f"set max_alerts on the Alertmanager webhook_config")
    return handler(value)


def _cut_map(max_items: int, max_value: int) -> AfterValidator:
    return _then(lambda value: _string_map(value, "", max_items, max_value, truncate=True))


def _severity(value: str) -> str:
    if value not in SEVERITIES:
        raise PayloadError("", f"required: one of {', '.join(SEVERITIES)}")
    return value


def _text(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if not value.strip():
            raise PayloadError("", "required: a non-empty string")
        return cut(_text_of(value), limit)  # too long is cut (and marked), never refused

    return _then(check)


def _falsy_is_none(value: Any) -> Any:
    return value or None


_STRING = _Says("must be a string")
_STATUS = _Says("must be \"firing\" or \"resolved\"", "must be \"firing\" or \"resolved\"")
_OBJECT_OF_STRINGS = _Says("must be an object of strings")
_StrMap = dict[StrictStr, StrictStr]
_OptStr = Annotated[StrictStr | None, _STRING]
_Status = Annotated[Literal["firing", "resolved"], _STATUS]
_Url = Annotated[StrictStr | None, _STRING, _then(lambda v: _optional_string(v, "", MAX_URL, truncate=True))]
_Count = Annotated[StrictInt | None, Field(ge=0), _Says("must be a non-negative integer")]
_GroupMap = Annotated[_StrMap | None, _OBJECT_OF_STRINGS, _cut_map(MAX_LABELS * 4, MAX_ANNOTATION_VALUE)]
_ALERTS = _Says("must be a list", "required: a list of alerts")


class _Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    item_model: ClassVar[type[_Payload] | None] = None
    """The model of the items of this payload's list (its `alerts`)."""


class _AlertmanagerAlert(_Payload):
    status: _Status
    labels: Annotated[_StrMap, _Says("must be an object of strings", "required"), _then(lambda v: _labels(v, ""))]
    # Alertmanager may send null, nothing or an empty value: no annotations.
    annotations: Annotated[_StrMap | None, _OBJECT_OF_STRINGS, BeforeValidator(_falsy_is_none),
                           _cut_map(MAX_ANNOTATIONS, MAX_ANNOTATION_VALUE)] = None
    startsAt: Annotated[datetime, _Says("", "required: an RFC 3339 date-time"), _time_field(required=True)]
    endsAt: Annotated[datetime | None, _time_field(required=False)] = None
    generatorURL: _Url = None
    fingerprint: Annotated[StrictStr | None, _STRING, _then(lambda v: _fingerprint(v))] = None


class _GrafanaAlert(_AlertmanagerAlert):
    silenceURL: _Url = None
    dashboardURL: _Url = None
    panelURL: _Url = None
    values: Annotated[dict[StrictStr, Any] | None, _Says("must be an object of numbers"),
                      _then(lambda v: _values(v, ""))] = None
    valueString: _OptStr = None
    imageURL: _OptStr = None


class _AlertmanagerEnvelope(_Payload):
    receiver: _OptStr = None
    groupKey: _OptStr = None
    externalURL: _OptStr = None
    status: _Status = "firing"
    groupLabels: _GroupMap = None
    commonLabels: _GroupMap = None
    commonAnnotations: _GroupMap = None
    truncatedAlerts: _Count = None


class _AlertmanagerPayload(_AlertmanagerEnvelope):
    item_model = _AlertmanagerAlert
    alerts: Annotated[list[_AlertmanagerAlert], _ALERTS, WrapValidator(_alerts_list)]


class _GrafanaPayload(_AlertmanagerEnvelope):
    orgId: _Count = None
    title: _OptStr = None
    state: _OptStr = None
    message: _OptStr = None
    item_model = _GrafanaAlert
    alerts: Annotated[list[_GrafanaAlert], _ALERTS, WrapValidator(_alerts_list)]


_NON_EMPTY = _Says("required: a non-empty string", "required: a non-empty string")


class _GenericAlert(_Payload):
    service: Annotated[StrictStr, _NON_EMPTY, _text(MAX_SERVICE)]
    severity: Annotated[StrictStr, _Says(*[f"required: one of {', '.join(SEVERITIES)}"] * 2), _then(_severity)]
    message: Annotated[StrictStr, _NON_EMPTY, _text(MAX_MESSAGE)]
    labels: Annotated[_StrMap | None, _OBJECT_OF_STRINGS, BeforeValidator(_falsy_is_none),
                      _then(lambda v: _labels(v, "", reserve=2))] = None
    status: _Status = "firing"
    timestamp: Annotated[datetime | None, _time_field(required=False)] = None


_M = TypeVar("_M", bound=_Payload)


def _validate(model: type[_M], raw: Any, where: str, not_an_object: str, **context: Any) -> _M:
    """`raw` as `model`, or the first refusal as a PayloadError naming the field under `where`."""
    if not isinstance(raw, dict):
        raise PayloadError(where or "body", not_an_object)
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
    # Errors come in the order of the fields (and of a list's items); the first is reported, as
    # the field it is in: `alerts[2].labels`, with that field's own words.
    path, says = where, None
    current: type[_Payload] | None = model
    items: type[_Payload] | None = None
    for part in err["loc"]:  # fields of models and items of their lists; not into a field's value
        if isinstance(part, int):
            if items is None:
                break
            path += f"[{part}]"
            current, says, items = items, _Says("must be an object"), None
            continue
        if current is None:
            break
        path = f"{path}.{part}" if path else part
        field = current.model_fields.get(part)
        says = next((m for m in field.metadata if isinstance(m, _Says)), None) if field is not None else None
        items, current = (current.item_model if part == "alerts" else None), None
    ctx = err.get("ctx") or {}
    if err["type"] == "payload":
        raise PayloadError(path + str(ctx.get("at", "")), str(ctx["message"]))
    if says is None:
        raise PayloadError(path, err["msg"])
    raise PayloadError(path, says.missing if err["type"] == "missing" and says.missing else says.wrong)


def payload_source(payload: Mapping[str, Any]) -> str:
    """Who sent an Alertmanager-shaped payload: SOURCE_ALERTMANAGER or SOURCE_GRAFANA.

    Alertmanager sends version "4" (a missing version is taken as 4). Grafana
    alerting sends the same shape as version "1", with `orgId` beside it; a later
    Grafana version is accepted when it carries `orgId`. Anything else is refused,
    naming the `version` field.
    """
    version = payload.get("version")
    grafana = "orgId" in payload
    if version is None:
        return SOURCE_GRAFANA if grafana else SOURCE_ALERTMANAGER
    if not isinstance(version, str):
        raise PayloadError("version", f"unsupported payload version {version!r}: must be a string, as \"4\"")
    if version == ALERTMANAGER_VERSION and not grafana:
        return SOURCE_ALERTMANAGER
    if version == "1" or (grafana and version.isascii() and version.isdigit() and int(version) >= 1):
        return SOURCE_GRAFANA
    raise PayloadError("version", f"unsupported payload version {version!r}; expected \"4\" (Alertmanager) "
                                  f"or \"1\" and later with orgId (Grafana alerting)")


def parse_alertmanager(payload: Any, *, max_alerts: int = MAX_ALERTS) -> list[Alert]:
    """The alerts of an Alertmanager (version 4) or Grafana alerting (version 1+) webhook payload, validated."""
    if not isinstance(payload, dict):
        raise PayloadError("body", "must be a JSON object (an Alertmanager webhook payload)")
    source = payload_source(payload)
    grafana = source == SOURCE_GRAFANA
    # One validation of the whole payload: the envelope's fields, then the alert count, then
    # each alert (errors are reported in that order).
    envelope: _AlertmanagerPayload | _GrafanaPayload
    if grafana:
        envelope = _validate(_GrafanaPayload, payload, "", "", max_alerts=max_alerts)
    else:
        envelope = _validate(_AlertmanagerPayload, payload, "", "", max_alerts=max_alerts)
    return [_alert(m, source) for m in envelope.alerts]


def _alert(m: _AlertmanagerAlert, source: str) -> Alert:
    labels = m.labels
    links: dict[str, str] = {}
    values: dict[str, float | None] = {}
    if isinstance(m, _GrafanaAlert):
        links = {name: link for name in GRAFANA_LINKS if (link := getattr(m, name))}
        values = m.values or {}
    return Alert(fingerprint=m.fingerprint or labels_fingerprint(labels), status=m.status, labels=labels,
                 annotations=m.annotations or {}, starts_at=m.startsAt, ends_at=m.endsAt,
                 generator_url=m.generatorURL or "", source=source, links=links, values=values)


def _values(value: dict[str, Any], where: str) -> dict[str, float | None]:
    """Grafana's `values`: query refID → number (null when Grafana has none). The first MAX_VALUES
    are kept, their names cut; a number beyond a float's range is kept as null."""
    out: dict[str, float | None] = {}
    for name, number in value.items():
        if number is not None and (not isinstance(number, (int, float)) or isinstance(number, bool)):
            raise PayloadError(f"{where}.{name}", "must be a number")
        key = cut(_text_of(name), MAX_LABEL_NAME)
        if len(out) < MAX_VALUES and key not in out:
            try:
                out[key] = None if number is None else float(number)
            except OverflowError:
                out[key] = None
    return out


def parse_generic(payload: Any, *, now: datetime, max_alerts: int = MAX_ALERTS) -> list[Alert]:
    """Generic alerts: one object `{service, severity, message, labels, timestamp}` or a list of them.

    `service` and `severity` become labels (so routing and fingerprints treat
    both inputs alike); without `timestamp` the alert starts `now`. An optional
    `status: resolved` resolves an alert posted earlier with the same labels
    and timestamp.
    """
    if isinstance(payload, list):
        if not payload:
            raise PayloadError("body", "empty list: nothing to record")
        if len(payload) > max_alerts:
            raise PayloadError("body", f"at most {max_alerts} alerts per request (got {len(payload)})")
        return [_parse_generic_one(item, f"[{i}]", now) for i, item in enumerate(payload)]
    return [_parse_generic_one(payload, "", now)]


def _parse_generic_one(raw: Any, where: str, now: datetime) -> Alert:
    m = _validate(_GenericAlert, raw, where, "must be a JSON object {service, severity, message, labels, timestamp}")
    labels = dict(m.labels or {})
    labels["service"] = m.service
    labels["severity"] = m.severity
    return Alert(fingerprint=labels_fingerprint(labels), status=m.status, labels=labels,
                 annotations={"summary": m.message}, starts_at=m.timestamp or now,
                 ends_at=now if m.status == RESOLVED else None, source=SOURCE_API)


def _labels(value: dict[str, str], where: str, reserve: int = 0) -> dict[str, str]:
    """An alert's labels, whole: they make its fingerprint and its routing. Neither their
    number nor their length refuses an alert (the body's size bounds both); the copies an
    Incident keeps are cut to the CRD's limits (`stored_labels`)."""
    labels: dict[str, str] = {}
    for name, item in value.items():
        if not name:
            raise PayloadError(where, "label names must not be empty")
        labels[_text_of(name)] = _text_of(item)
    return labels


def _string_map(value: dict[str, str], where: str, max_items: int, max_value: int,
                truncate: bool = False) -> dict[str, str]:
    """A map of strings kept within limits: its first `max_items` entries, names and values cut
    (and marked); its type is pydantic's to check."""
    out: dict[str, str] = {}
    for name, item in value.items():
        if len(out) >= max_items:
            break
        key = cut(_text_of(name), MAX_LABEL_NAME)
        if key not in out:  # two names cut alike: the first is kept
            out[key] = cut(_text_of(item), max_value)
    return out


def _optional_string(value: str, where: str, max_len: int, truncate: bool = False) -> str:
    value = _text_of(value)
    if len(value) > max_len:
        return ""  # a cut URL is a wrong URL
    return value


def _fingerprint(value: str) -> str:
    """A sender's fingerprint, or a digest of it when too long to store: cutting could make
    two alerts one, a digest keeps them apart (and is the same on every re-send)."""
    value = _text_of(value)
    if len(value) <= MAX_FINGERPRINT:
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def _text_of(value: str) -> str:
    """`value` as UTF-8 can carry it: JSON allows lone surrogates (\\ud800) that no encoder
    accepts; each becomes U+FFFD, as Go (Alertmanager, the API server) decodes them."""
    if value.isascii():  # the common case, and always valid
        return value
    return _LONE_SURROGATE.sub("\ufffd", value)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""json.loads pairs the surrogates it can: any left in a str is alone."""


def stored_labels(labels: Mapping[str, str], max_items: int | None = None) -> dict[str, str]:
    """The copy of an alert's labels an Incident keeps: names and values cut (and marked) to
    the CRD's limits, at most `max_items` of them (spec.labels holds 64)."""
    out: dict[str, str] = {}
    for name, value in labels.items():
        if max_items is not None and len(out) >= max_items:
            break
        key = cut(name, MAX_LABEL_NAME)
        if key not in out:
            out[key] = cut(value, MAX_LABEL_VALUE)
    return out


def _time(value: Any, where: str, required: bool) -> datetime | None:
    if value is None or value == "":
        if required:
            raise PayloadError(where, "required: an RFC 3339 date-time")
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise PayloadError(where, "must be an RFC 3339 date-time string")
    try:
        when = parse(value)
    except (ValueError, OverflowError):
        raise PayloadError(where, f"not an RFC 3339 date-time: {value!r}") from None
    if when < _NO_TIME_BEFORE:
        if required:
            raise PayloadError(where, f"must be a real time, not {value!r}")
        return None
    return when




def normalize_severity(value: Any) -> str | None:
    """critical | high | medium | low, or None when `value` is not a known severity word."""
    if not isinstance(value, str):
        return None
    return SEVERITY_ALIASES.get(value.strip().lower())


_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' label-set fingerprint (FNV-1a 64 over sorted names and values), as Alertmanager shows it."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode("utf-8"), bytes([_SEPARATOR]), labels[name].encode("utf-8"), bytes([_SEPARATOR])):
            for byte in chunk:
                h ^= byte
                h = (h * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def dedupe(alerts: Iterable[Alert]) -> list[Alert]:
    """One alert per key, first-seen order; a resolved copy wins over a firing one."""
    by_key: dict[str, Alert] = {}
    for alert in alerts:
        seen = by_key.get(alert.key)
        if seen is None or (seen.status == FIRING and alert.status == RESOLVED):
            by_key[alert.key] = alert
    return list(by_key.values())


# --- routing -------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics, except that an empty selector matches nothing.

    (An empty selector matching every alert would make one MonitoredService
    swallow all alerts of its namespace.)
    """
    if not selector:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in expressions:
        key = expr.get("key", "")
        op = expr.get("operator")
        values = expr.get("values") or []
        present = key in labels
        if op == "In":
            if not present or labels[key] not in values:
                return False
        elif op == "NotIn":
            if present and labels[key] in values:
                return False
        elif op == "Exists":
            if not present:
                return False
        elif op == "DoesNotExist":
            if present:
                return False
        else:
            return False  # unknown operator: fail closed
    return True


# A MonitoredService claims an alert of its namespace by, in this order (the first
# rule that claims it decides; within a rule the smallest service name wins, so
# every receiver replica decides alike):
#   1. its alertSelector matching the alert's labels;
#   2. the alert's `service` label equal to the service's name;
#   3. the alert's `deployment`, `statefulset` or `daemonset` label equal to its target's
#      name (and the label naming the target's kind), as kube-state-metrics' rules carry;
#   4. the alert's `pod` label naming a pod its target owns (Deployment → ReplicaSet → Pod,
#      StatefulSet → Pod, DaemonSet → Pod), or, once that pod is gone, a name only its
#      target's controller gives pods.
# Rules 3 and 4 need the alert's own `namespace` label: they never reach across namespaces.

CLAIM_SELECTOR = "alertSelector"
CLAIM_SERVICE_LABEL = "service label"
CLAIM_WORKLOAD_LABEL = "workload label"
CLAIM_POD_OWNER = "pod owner"
CLAIM_POD_NAME = "pod name"

WORKLOAD_LABELS: dict[str, str] = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}
"""Alert labels naming a workload of the alert's namespace (kube-state-metrics' names), and its kind."""
POD_LABEL = "pod"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

GENERATED_BASE = 58
"""Kubernetes cuts a generateName base to 58 characters (63 minus the 5 random ones)."""
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
"""The alphabet of generated name suffixes and pod-template hashes (k8s.io/apimachinery/pkg/util/rand)."""
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class Workload:
    """A workload of one namespace, as a MonitoredService's target or a pod's owner."""

    kind: str
    name: str


@dataclass(frozen=True)
class Claim:
    """Which MonitoredService an alert belongs to, and by which rule."""

    service: dict[str, Any]
    rule: str

    @property
    def name(self) -> str:
        return _name(self.service)


def target_of(service: Mapping[str, Any]) -> Workload | None:
    """A MonitoredService's target (kind defaults to Deployment, as the CRD does)."""
    target = (service.get("spec") or {}).get("target") or {}
    name = target.get("name")
    kind = target.get("kind") or "Deployment"
    if not isinstance(name, str) or not name or kind not in WORKLOAD_KINDS:
        return None
    return Workload(kind, name)


def controller_of(obj: Mapping[str, Any]) -> Workload | None:
    """The controller owner of a Pod or ReplicaSet body (its ownerReference with controller: true)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and isinstance(ref.get("kind"), str) and isinstance(ref.get("name"), str):
            return Workload(ref["kind"], ref["name"])
    return None


def could_own_pod(target: Workload, pod: str) -> bool:
    """Whether `target`'s controller could have named a pod `pod`: its pods' names all start with
    `<name>-` (cut as generateName cuts it). A necessary condition only: it decides whether a
    lookup is worth making, never a claim."""
    prefix = f"{target.name}-"[:GENERATED_BASE]
    return len(pod) > len(prefix) and pod.startswith(prefix)


def pod_name_fits(target: Workload, pod: str) -> bool:
    """Whether `pod` is a name `target`'s controller gives its pods (used once the pod is gone):
    `<deployment>-<template hash>-<5>`, `<statefulset>-<ordinal>`, `<daemonset>-<5>`. Names that
    generateName had to cut are never matched this way."""
    name = re.escape(target.name)
    if target.kind == "StatefulSet":
        pattern = rf"{name}-(0|[1-9][0-9]*)"
    elif target.kind == "DaemonSet":
        if len(target.name) + 1 > GENERATED_BASE:
            return False
        pattern = rf"{name}-[{_SAFE}]{{5}}"
    else:
        pattern = rf"{name}-[{_SAFE}]{{1,10}}-[{_SAFE}]{{5}}"
        if not re.fullmatch(pattern, pod):
            return False
        return len(pod) - 5 <= GENERATED_BASE  # the ReplicaSet's name + "-" was not cut
    return re.fullmatch(pattern, pod) is not None


def named_workloads(alert: Alert) -> set[Workload]:
    """The workloads an alert names through kube-state-metrics' labels."""
    return {Workload(kind, alert.labels[label]) for label, kind in WORKLOAD_LABELS.items() if alert.labels.get(label)}


class RoutingTable:
    """MonitoredServices indexed for `claim`: build one per namespace and request, and routing an
    alert costs its selectors plus a few dict lookups, however many services have targets."""

    def __init__(self, services: Iterable[dict[str, Any]]):
        self.services = sorted(services, key=_name)
        self.namespaces = {_namespace_of(svc) for svc in self.services}
        # Name order throughout: the first match is the smallest name (the tie-break).
        self.selectors = [(svc, sel) for svc in self.services
                          if (sel := (svc.get("spec") or {}).get("alertSelector"))]
        self.by_name: dict[str, dict[str, Any]] = {}
        self.by_target: dict[tuple[str | None, Workload], dict[str, Any]] = {}
        self.targets: list[tuple[str | None, Workload, dict[str, Any]]] = []
        prefixes: dict[str | None, dict[int, set[str]]] = {}
        for svc in self.services:
            self.by_name.setdefault(_name(svc), svc)
            target = target_of(svc)
            if target is None:
                continue
            ns = _namespace_of(svc)
            self.by_target.setdefault((ns, target), svc)
            self.targets.append((ns, target, svc))
            prefix = f"{target.name}-"[:GENERATED_BASE]
            prefixes.setdefault(ns, {}).setdefault(len(prefix), set()).add(prefix)
        self._prefixes = {ns: sorted(by_len.items()) for ns, by_len in prefixes.items()}

    def could_own(self, namespace: str, pod: str) -> bool:
        """Whether a target of `namespace` could have named a pod `pod` (see `could_own_pod`)."""
        return any(len(pod) > n and pod[:n] in names for n, names in self._prefixes.get(namespace, ()))

    def scoped(self, namespace: str | None) -> RoutingTable:
        """This table, or one holding only the services an alert of `namespace` may reach."""
        if namespace is None or self.namespaces <= {None, namespace}:
            return self
        return RoutingTable(svc for svc in self.services if _namespace_of(svc) in (None, namespace))


def _table(services: RoutingTable | Iterable[dict[str, Any]]) -> RoutingTable:
    return services if isinstance(services, RoutingTable) else RoutingTable(services)


def pod_to_look_up(alert: Alert, services: RoutingTable | Iterable[dict[str, Any]]) -> str | None:
    """The pod whose owner would decide the claim, or None when no lookup can help: the
    alert has no namespace or `pod` label, or no target of the namespace could own a pod so named."""
    pod = alert.labels.get(POD_LABEL)
    ns = alert.namespace
    if not pod or not ns or not _DNS_SUBDOMAIN.match(pod):
        return None
    return pod if _table(services).could_own(ns, pod) else None


def claim(alert: Alert, services: RoutingTable | Iterable[dict[str, Any]], *, pod_owner: Workload | None = None,
          pod_gone: bool = False) -> Claim | None:
    """The MonitoredService an alert belongs to, and the rule that decided (see the rules above).

    Candidates are the services of the alert's namespace (when the alert has one;
    the caller passes that namespace's services, best as a `RoutingTable`).
    `pod_owner` is the controller of the pod the alert's `pod` label names, when
    the caller looked it up (`pod_to_look_up`); `pod_gone` says that pod no longer exists.
    """
    ns = alert.namespace
    table = _table(services).scoped(ns)
    labels = alert.labels
    for svc, selector in table.selectors:
        if selector_matches(selector, labels):
            return Claim(svc, CLAIM_SELECTOR)
    wanted = labels.get("service")
    if wanted:
        named = table.by_name.get(wanted)
        if named is not None:
            return Claim(named, CLAIM_SERVICE_LABEL)
    if ns is None or not table.targets:
        return None  # a workload is named within a namespace: no namespace, no claim by target
    best: dict[str, Any] | None = None
    for label, kind in WORKLOAD_LABELS.items():
        value = labels.get(label)
        by_label = table.by_target.get((ns, Workload(kind, value))) if value else None
        if by_label is not None and (best is None or _name(by_label) < _name(best)):
            best = by_label
    if best is not None:
        return Claim(best, CLAIM_WORKLOAD_LABEL)
    if pod_owner is not None:
        owned = table.by_target.get((ns, pod_owner))
        if owned is not None:
            return Claim(owned, CLAIM_POD_OWNER)
    pod = labels.get(POD_LABEL)
    if pod_gone and pod:
        for target_ns, target, svc in table.targets:
            if target_ns == ns and pod_name_fits(target, pod):
                return Claim(svc, CLAIM_POD_NAME)
    return None


def match_service(alert: Alert, services: RoutingTable | Iterable[dict[str, Any]], *, pod_owner: Workload | None = None,
                  pod_gone: bool = False) -> dict[str, Any] | None:
    """The MonitoredService an alert belongs to, or None (see `claim`)."""
    found = claim(alert, services, pod_owner=pod_owner, pod_gone=pod_gone)
    return found.service if found else None


def _namespace_of(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("namespace")


def _name(obj: Mapping[str, Any]) -> str:
    name: str = obj.get("metadata", {}).get("name", "")
    return name


def incident_severity(alert: Alert, service: Mapping[str, Any] | None) -> str:
    """The alert's own severity, else the service's default, else high."""
    mapped = alert.severity
    if mapped:
        return mapped
    default = ((service or {}).get("spec") or {}).get("severity")
    return default if default in SEVERITIES else DEFAULT_SEVERITY


# --- correlation and names -----------------------------------------------------


def correlation_bucket(starts_at: datetime, window_seconds: int) -> int:
    """Which correlation window an alert started in."""
    if window_seconds < 1:
        raise ValueError("correlation window must be at least 1 second")
    return int(starts_at.timestamp()) // window_seconds


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_INVALID = re.compile(r"[^a-z0-9-]+")
MAX_SERVICE_IN_NAME = 100
"""Long service names are cut and hashed: names stay readable and leave room for generateName suffixes."""


def _base36(n: int) -> str:
    if n <= 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(reversed(out))


def name_slug(service: str) -> str:
    """A DNS-1123 label for `service`; a hash keeps distinct services distinct when it had to change."""
    slug = _INVALID.sub("-", service.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)
    if slug == service and len(slug) <= MAX_SERVICE_IN_NAME:
        return slug
    digest = hashlib.sha256(service.encode("utf-8")).hexdigest()[:8]
    head = slug[: MAX_SERVICE_IN_NAME - 9].strip("-")
    return f"{head}-{digest}" if head else f"svc-{digest}"


def incident_name(service: str, severity: str, starts_at: datetime, window_seconds: int, attempt: int = 1) -> str:
    """`<service>-<severity>-<bucket>[-N]`: alerts of one window get one name, so re-sends find it.

    `attempt` > 1 gives the successors used when the window's incident is
    already resolved and a new alert of that window arrives.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    name = f"{name_slug(service)}-{severity}-{_base36(correlation_bucket(starts_at, window_seconds))}"
    return name if attempt <= 1 else f"{name}-{attempt}"


def _escape_field_value(value: str) -> str:
    # As k8s.io/apimachinery/pkg/fields.EscapeValue.
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def service_field_selector(service: str) -> str:
    """Field selector for every incident of a service; the value is escaped, so a `,` or `=`
    in an alert's `service` label can never add a requirement of its own."""
    return f"spec.service={_escape_field_value(service)}"


def active_field_selector(service: str, severity: str) -> str:
    """Field selector for the active incidents of a service and severity (CRD selectableFields)."""
    return (f"spec.service={_escape_field_value(service)},spec.severity={_escape_field_value(severity)},"
            "spec.state!=resolved,spec.state!=closed")


def incident_active(incident: Mapping[str, Any]) -> bool:
    return is_active((incident.get("spec") or {}).get("state") or State.OPEN)


def alert_keys(incident: Mapping[str, Any]) -> set[str]:
    return {a.get("key", "") for a in ((incident.get("status") or {}).get("alerts") or [])}


# --- recording alerts on an incident ------------------------------------------


def alert_entry(alert: Alert, now: datetime, common: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The status.alerts entry of a newly recorded alert.

    Labels are stored as the difference from `common` (the incident's spec.labels):
    alerts of one group share most of theirs, and every status write carries every
    entry, so repeating them made large incidents' writes twice as costly.
    """
    common = common or {}
    entry: dict[str, Any] = {
        "key": alert.key,
        "alertname": cut(alert.alertname, MAX_LABEL_VALUE),
        "status": alert.status,
        "startsAt": iso_ms(alert.starts_at),
        "receivedAt": iso_ms(now),
    }
    summary = cut(alert.summary, 1024)
    if summary:
        entry["summary"] = summary
    labels = stored_labels(alert.labels)
    own = {k: v for k, v in labels.items() if common.get(k) != v}
    if own:
        entry["labels"] = own
    absent = sorted(k for k in common if k not in labels)
    if absent:
        entry["absentLabels"] = absent
    if alert.generator_url:
        entry["generatorURL"] = alert.generator_url
    entry.update(alert.links)
    if alert.status == RESOLVED:
        entry["resolvedAt"] = iso_ms(now)
        entry["endsAt"] = iso_ms(alert.ends_at or now)
    return entry


def entry_labels(incident: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, str]:
    """The full label set of a status.alerts entry (see `alert_entry`)."""
    absent = set(entry.get("absentLabels") or ())
    common = ((incident.get("spec") or {}).get("labels") or {}) if "fingerprint" not in entry else {}
    labels = {k: v for k, v in common.items() if k not in absent}
    labels.update(entry.get("labels") or {})
    return labels


def entry_fingerprint(entry: Mapping[str, Any]) -> str:
    return entry.get("fingerprint") or str(entry.get("key", "")).partition("@")[0]


@dataclass
class Recorded:
    """What `record_alerts` changed: `patch` is None when nothing did (all duplicates)."""

    patch: dict[str, Any] | None
    added: list[str] = field(default_factory=list)           # keys newly recorded
    resolved: list[str] = field(default_factory=list)        # keys newly marked resolved
    duplicates: list[str] = field(default_factory=list)      # keys that changed nothing
    all_resolved: bool = False                                # every recorded alert is resolved now
    became_all_resolved: bool = False                         # ... and this write made it so


def record_alerts(incident: Mapping[str, Any], alerts: list[Alert], now: datetime, *,
                  timeline_limit: int, auto_resolve: bool = True, created: bool = False) -> Recorded:
    """The status merge patch that records `alerts` on `incident`, idempotently.

    An alert key is recorded once; a firing copy of a recorded alert changes
    nothing, and a resolved one only resolves it (never back). One timeline
    entry per change (or one summary entry for many). When this write resolves
    the last firing alert of an active incident, an "all alerts resolved"
    entry joins the timeline (the caller moves spec.state when `auto_resolve`).
    `created` sets status.createdAt for an incident created just now.
    """
    status = incident.get("status") or {}
    common = (incident.get("spec") or {}).get("labels") or {}
    current = [dict(a) for a in (status.get("alerts") or [])]
    index = {a.get("key"): i for i, a in enumerate(current)}
    was_all_resolved = bool(current) and all(a.get("status") == RESOLVED for a in current)
    out = Recorded(patch=None)
    fired: list[Alert] = []
    cleared: list[Alert] = []
    for alert in alerts:
        i = index.get(alert.key)
        if i is None:
            current.append(alert_entry(alert, now, common))
            index[alert.key] = len(current) - 1
            out.added.append(alert.key)
            (fired if alert.status == FIRING else cleared).append(alert)
            if alert.status == RESOLVED:
                out.resolved.append(alert.key)
        elif alert.status == RESOLVED and current[i].get("status") != RESOLVED:
            current[i]["status"] = RESOLVED
            current[i]["resolvedAt"] = iso_ms(now)
            current[i]["endsAt"] = iso_ms(alert.ends_at or now)
            out.resolved.append(alert.key)
            cleared.append(alert)
        else:
            out.duplicates.append(alert.key)
    out.all_resolved = bool(current) and all(a.get("status") == RESOLVED for a in current)
    needs_created = not status.get("createdAt")
    if not out.added and not out.resolved and not needs_created:
        return out
    timeline = list(status.get("timeline") or [])
    for type_, batch, verb in (("alert-firing", fired, "firing"), ("alert-resolved", cleared, "resolved")):
        for message in _timeline_messages(batch, verb):
            timeline = append_timeline(timeline, timeline_entry(now, type_, ACTOR, message), timeline_limit)
    if out.all_resolved and not was_all_resolved and (out.resolved or out.added) and incident_active(incident):
        out.became_all_resolved = True
        note = "all alerts resolved" + ("" if auto_resolve else " (autoResolve is off: resolve it by hand)")
        timeline = append_timeline(timeline, timeline_entry(now, "alerts-resolved", ACTOR, note), timeline_limit)
    patch_status: dict[str, Any] = {"alerts": _bounded(current), "timeline": timeline}
    if needs_created:
        # An object created by an earlier, interrupted request lacks it: its creationTimestamp is the truth.
        stamp = None if created else (incident.get("metadata") or {}).get("creationTimestamp")
        patch_status["createdAt"] = stamp or iso(now)
    out.patch = {"status": patch_status}
    return out


def _bounded(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """status.alerts kept within MAX_ALERTS_PER_INCIDENT entries and about ALERTS_BYTES_BUDGET bytes.

    The oldest entries shed their detail (labels, summary, URLs) first: their
    keys still deduplicate re-sends. Only then do the oldest resolved entries go.
    """
    out = _drop_resolved(entries, len(entries) - MAX_ALERTS_PER_INCIDENT)
    sizes = [_entry_size(e) for e in out]
    total = sum(sizes)
    if total <= ALERTS_BYTES_BUDGET:
        return out
    out = [dict(e) for e in out]
    for i, entry in enumerate(out):
        if total <= ALERTS_BYTES_BUDGET:
            break
        for name in ("labels", "absentLabels", "summary", "generatorURL", *GRAFANA_LINKS):
            entry.pop(name, None)
        slim = _entry_size(entry)
        total -= sizes[i] - slim
        sizes[i] = slim
    if total > ALERTS_BYTES_BUDGET:
        average = max(1, total // max(1, len(out)))
        out = _drop_resolved(out, (total - ALERTS_BYTES_BUDGET) // average + 1)
    return out


def _drop_resolved(entries: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    if count <= 0:
        return entries
    out = []
    for entry in entries:
        if count > 0 and entry.get("status") == RESOLVED:
            count -= 1
            continue
        out.append(entry)
    return out


def _entry_size(entry: Mapping[str, Any]) -> int:
    """Roughly the entry's JSON size (cheaper than serialising it)."""
    size = 2
    for name, value in entry.items():
        if isinstance(value, Mapping):
            size += len(name) + 5 + sum(len(k) + len(v) + 6 for k, v in value.items())
        else:
            size += len(name) + len(str(value)) + 6
    return size


MAX_VALUES_TEXT = 256
MAX_TIMELINE_NAME = 256
MAX_TIMELINE_TEXT = 512
"""A timeline entry names an alert and its summary's first line, cut: the timeline is kept
whole in one object, so its entries must stay small whatever an alert carries."""


def format_values(values: Mapping[str, float | None]) -> str:
    """`B=44.24, C=1`: a Grafana alert's values as its timeline entry shows them (bounded)."""
    parts = [f"{name}={'null' if v is None else format(v, '.6g')}" for name, v in values.items()]
    text = ", ".join(parts)
    return cut(text, MAX_VALUES_TEXT)


def _timeline_messages(alerts: list[Alert], verb: str) -> list[str]:
    if not alerts:
        return []

    def describe(a: Alert) -> str:
        # The fingerprint keeps entries of same-named alerts apart (equal entries are merged).
        name = f"{cut(a.alertname or a.service_hint, MAX_TIMELINE_NAME)} [{a.fingerprint}]"
        text = cut(a.summary.strip().splitlines()[0], MAX_TIMELINE_TEXT) if a.summary.strip() else ""
        line = f"{name}: {text}" if text else name
        values = format_values(a.values)
        return f"{line} ({values})" if values else line

    if len(alerts) <= 3:
        return [f"alert {verb}: {describe(a)}" for a in alerts]
    names = sorted({cut(a.alertname or a.service_hint, MAX_TIMELINE_NAME) for a in alerts})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return [f"{len(alerts)} alerts {verb}: {shown}"]
