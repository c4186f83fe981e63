"""Alert payloads: Alertmanager's, Grafana alerting's and the generic alert, parsed into `Alert`s.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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

from .alert import (
    GRAFANA_LINKS,
    MAX_ALERTS,
    MAX_ANNOTATION_VALUE,
    MAX_ANNOTATIONS,
    MAX_FINGERPRINT,
    MAX_LABEL_NAME,
    MAX_LABELS,
    MAX_MESSAGE,
    MAX_SERVICE,
    MAX_URL,
    RESOLVED,
    SEVERITIES,
    SOURCE_ALERTMANAGER,
    SOURCE_API,
    SOURCE_GRAFANA,
    Alert,
    PayloadError,
    labels_fingerprint,
)
from .text import cut
from .timeutil import parse

ALERTMANAGER_VERSION = "4"
"""The one Alertmanager webhook payload version (Alertmanager 0.x has sent it since 2016)."""
MAX_VALUES = 32
"""Most of a Grafana alert's `values` kept (query refID → number)."""

# Alertmanager writes Go's zero time for "no end"; anything before 1971 is that.
_NO_TIME_BEFORE = datetime(1971, 1, 1, tzinfo=UTC)


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
    limit = info.context.get("max_alerts", MAX_ALERTS) if info.context else MAX_ALERTS
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


