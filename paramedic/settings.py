"""The one settings object: every knob is a `PARAMEDIC_*` environment variable.

A pydantic-settings model: the environment is read by its env source (prefix
`PARAMEDIC_`, lists comma-separated), values are checked by pydantic, and every
refusal is a `SettingsError` naming the variable. The README's configuration table
is generated from the fields below (see `python -m paramedic.settings --markdown`),
so the docs and the code cannot drift.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

PREFIX = "PARAMEDIC_"


class SettingsError(ValueError):
    """A PARAMEDIC_* variable has a value that cannot be used."""


def _default_playbooks_dir() -> str:
    # Installed layout: the image copies playbooks/ next to the package; in a
    # checkout it sits at the repository's top level.
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "playbooks", Path("/opt/paramedic/playbooks")):
        if candidate.is_dir():
            return str(candidate)
    return str(here.parent / "playbooks")


def _setting(default: Any, doc: str, secret: bool = False) -> Any:
    """One field: its default (a callable is a factory), its line in the README table, whether it is secret."""
    extra: dict[str, Any] = {"secret": secret}
    if callable(default):
        return Field(default_factory=default, description=doc, json_schema_extra=extra)
    if isinstance(default, (list, dict)):
        return Field(default_factory=lambda d=default: type(d)(d), description=doc, json_schema_extra=extra)
    return Field(default=default, description=doc, json_schema_extra=extra)


class _Env(EnvSettingsSource):
    """PARAMEDIC_* variables of a given mapping (the process environment by default)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Settings(BaseSettings):
    # frozen: one object shared by every component; enable_decoding off: lists are
    # comma-separated, not JSON (split by _from_text).
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore", enable_decoding=False)

    # --- Kubernetes ---------------------------------------------------------
    kubeconfig: str = _setting("", "Path of a kubeconfig; empty: $KUBECONFIG, ~/.kube/config, then in-cluster")
    namespace: str = _setting("paramedic", "Paramedic's own namespace "
                                                    "(unmatched alerts land here when theirs does not exist)")
    watch_namespaces: list[str] = _setting([], "Comma-separated namespaces the operator watches; empty: all namespaces")
    api_timeout_seconds: float = _setting(10.0, "Timeout of one Kubernetes API request")
    # --- Operator -----------------------------------------------------------
    health_port: int = _setting(8080, "Operator liveness endpoint port (/healthz)")
    metrics_port: int = _setting(9090, "Operator Prometheus metrics port (/metrics); 0 disables")
    workers: int = _setting(16, "Concurrent reconciliations in the operator")
    timeline_limit: int = _setting(200, "Most timeline entries kept on an Incident (oldest dropped first)")
    retention_days: int = _setting(90, "Closed incidents older than this are deleted; 0 keeps them forever")
    events_per_second: float = _setting(10.0, "Most Kubernetes Events the operator posts per second (bursts of 10x); "
                                              "the rest are dropped and counted, the incident timeline keeps everything")
    preflight_interval_seconds: float = _setting(10.0, "At start-up, how often the operator re-checks what it waits for "
                                                       "(API server, CRDs, RBAC), logging an ERROR each time")
    # --- Replicas (docs/SCALING.md) ------------------------------------------
    identity: str = _setting("", "This operator replica's name in its Leases and in status.handledBy "
                                 "(`--identity`); empty: $POD_NAME (the chart's downward API), else host:pid")
    shards: int = _setting(32, "Shards the work is divided into (a service and its incidents belong to one); "
                               "the same on every replica, changed only with every replica stopped")
    lease_seconds: float = _setting(10.0, "How long a replica's Lease lasts unrenewed: its shards move to the others "
                                          "this long (plus one renewal) after it dies or is cut off")
    lease_renew_seconds: float = _setting(2.0, "How often a replica renews its Lease and rebalances the shards")
    # --- Probing --------------------------------------------------------------
    probe_concurrency: int = _setting(256, "Most HTTP probes in flight at once (one shared client)")
    probe_deny_private: bool = _setting(False, "Probes also refuse private addresses (RFC 1918, CGNAT 100.64/10, "
                                               "ULA fc00::/7) unless PARAMEDIC_OUTBOUND_ALLOW_CIDRS or "
                                               "PARAMEDIC_PROBE_ALLOW_CIDRS names them; the chart and manifests/ "
                                               "set it (allow the cluster's Service CIDR for in-cluster probes)")
    outbound_allow_cidrs: list[str] = _setting([], "Comma-separated CIDRs probes and notification hooks may reach "
                                                   "although refused by default (loopback, link-local, reserved; "
                                                   "private for hooks); a cloud metadata address only by an "
                                                   "entry naming exactly it")
    probe_allow_cidrs: list[str] = _setting([], "Comma-separated CIDRs probes alone may reach besides "
                                                "PARAMEDIC_OUTBOUND_ALLOW_CIDRS (hooks are not lifted by them)")
    hook_allow_cidrs: list[str] = _setting([], "Comma-separated CIDRs notification hooks alone may reach besides "
                                               "PARAMEDIC_OUTBOUND_ALLOW_CIDRS, e.g. an in-cluster chat relay "
                                               "(probes are not lifted by them)")
    # --- Alerts / webhook -----------------------------------------------------
    webhook_token: str = _setting("", "Bearer token the receiver requires", secret=True)
    webhook_token_file: str = _setting("", "File holding the bearer token, one per line: two during a rotation "
                                           "(re-read when it changes)")
    webhook_token_namespaces: list[str] = _setting([], "Comma-separated namespaces the WEBHOOK_TOKEN(_FILE) token "
                                                       "may write incidents in, home first; `*`: all; empty: "
                                                       "Paramedic's own namespace only")
    webhook_token_remediate: bool = _setting(False, "Whether alerts sent with the WEBHOOK_TOKEN(_FILE) token may "
                                                    "trigger remediation; off: they open unmanaged incidents "
                                                    "(recorded and paged, never remediated)")
    webhook_tokens_file: str = _setting("", "YAML file of scoped tokens `[{name, namespaces, token or tokenFile, "
                                            "remediate}]` (re-read when it changes)")
    webhook_insecure: bool = _setting(False, "Allow the receiver to run without a token (local use only)")
    webhook_max_body_bytes: int = _setting(1024 * 1024, "Largest accepted request body; larger gets 413")
    webhook_url: str = _setting("", "URL of the receiver, used by `kubectl paramedic fire`")
    webhook_max_alerts: int = _setting(1000, "Most alerts accepted in one request; more gets 400 "
                                                  "(set Alertmanager's max_alerts)")
    webhook_bind: str = _setting("0.0.0.0:8080", "HOST:PORT the receiver listens on (`paramedic-webhook --bind`)")
    webhook_workers: int = _setting(1, "gunicorn worker processes of the receiver (metrics are per process: keep 1)")
    webhook_threads: int = _setting(8, "Threads per receiver worker (concurrent requests)")
    correlation_window_seconds: int = _setting(300, "Alerts of one service and severity this close "
                                                         "together share an incident")
    # --- Remediation ----------------------------------------------------------
    remediation_enabled: bool = _setting(True, "Global switch: false stops all remediation")
    playbooks_dir: str = _setting(_default_playbooks_dir, "Directory remediation playbooks are taken "
                                                           "from (paths leaving it are refused)")
    playbook_catalog: str = _setting("", "File of the admin's playbook catalog (which playbooks namespaces may run, "
                                         "with a JSON Schema per extra var); empty: catalog.yaml in the playbooks "
                                         "directory")
    ansible_timeout_seconds: int = _setting(300, "Default time limit of one playbook run")
    rollout_timeout_seconds: int = _setting(300, "How long a restart waits for its rollout")
    evidence_enabled: bool = _setting(True, "Gather evidence (rollouts, pods, Warning Events, nodes) about an "
                                            "incident's target and rank probable causes")
    evidence_refresh_seconds: int = _setting(60, "How often an active incident's evidence is gathered again")
    evidence_concurrency: int = _setting(8, "Most evidence gatherings in flight at once (bounds the API load "
                                            "when many incidents open together)")
    # --- Notifications --------------------------------------------------------
    admin_emails: list[str] = _setting([], "Comma-separated admins mailed about every incident")
    notify_evidence_wait_seconds: int = _setting(10, "How long an incident's first notification waits for its "
                                                     "first evidence, so it names probable causes (0: no wait)")
    smtp_host: str = _setting("", "SMTP server; empty disables e-mail")
    smtp_port: int = _setting(25, "SMTP port")
    smtp_security: str = _setting("none", "none | starttls | tls")
    smtp_username: str = _setting("", "SMTP user name")
    smtp_username_file: str = _setting("", "File holding the SMTP user name (re-read at each use)")
    smtp_password: str = _setting("", "SMTP password", secret=True)
    smtp_password_file: str = _setting("", "File holding the SMTP password (re-read at each use)")
    smtp_from: str = _setting("paramedic@localhost", "Sender address")
    smtp_timeout_seconds: float = _setting(10.0, "SMTP connection timeout")
    smtp_ca_file: str = _setting("", "PEM file of CAs trusted for SMTP TLS (private CA); empty: the system CAs")
    slack_webhook_url: str = _setting("", "Slack incoming-webhook URL", secret=True)
    slack_webhook_url_file: str = _setting("", "File holding the Slack incoming-webhook URL (re-read at each use)")
    notify_webhook_url: str = _setting("", "Generic JSON webhook notified of incident events", secret=True)
    notify_webhook_url_file: str = _setting("", "File holding the generic JSON webhook URL (re-read at each use)")
    dashboard_url: str = _setting("", "Base URL linked from notifications (e.g. Grafana)")
    # --- Web console ------------------------------------------------------------
    console_url: str = _setting("", "Public base URL of the web console; notifications link to the incident's page")
    console_bind: str = _setting("0.0.0.0:8443", "HOST:PORT the web console listens on (`paramedic-console --bind`)")
    console_session_key_file: str = _setting("", "File holding the key that signs the console's session cookies and "
                                                 "seals the tokens its sessions keep (share it between replicas); "
                                                 "empty: a random key per process")
    console_tls_cert_file: str = _setting("", "PEM certificate the console serves TLS with (cookies then Secure); "
                                              "empty: plain HTTP behind a TLS-terminating proxy")
    console_tls_key_file: str = _setting("", "PEM private key of console_tls_cert_file")
    console_insecure_http: bool = _setting(False, "Serve the console over plain HTTP: its session cookie is then not "
                                                  "`Secure` (loopback development only); false: always `Secure`")
    console_session_seconds: int = _setting(43200, "Longest a console sign-in lasts (a token that expires sooner ends "
                                                   "it sooner); sessions are Secrets in PARAMEDIC_CONSOLE_SESSION_NAMESPACE")
    console_session_namespace: str = _setting("", "Namespace holding the console's sessions (one Secret each) and "
                                                  "nothing else: the console may read every Secret there. Never "
                                                  "Paramedic's own namespace; empty: `<PARAMEDIC_NAMESPACE>"
                                                  "-console-sessions`")
    # --- Logging ----------------------------------------------------------------
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING, ERROR")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_explain(type(self), exc)) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) is exactly what it is given (tests, defaults); from_env() reads the environment.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        return cls(**_Env(cls, os.environ if env is None else env)())

    @field_validator("*", mode="before")
    @classmethod
    def _from_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Environment text: booleans as 1/true/yes/on and 0/false/no/off/empty, lists comma-separated."""
        if not isinstance(value, str) or info.field_name is None:
            return value
        annotation = cls.model_fields[info.field_name].annotation
        if annotation is bool:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise SettingsError(f"{PREFIX}{info.field_name.upper()}={value!r} is not a valid bool")
        if get_origin(annotation) is list:
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.smtp_security not in ("none", "starttls", "tls"):
            raise SettingsError(f"PARAMEDIC_SMTP_SECURITY must be none, starttls or tls, not {self.smtp_security!r}")
        for name in ("workers", "timeline_limit", "probe_concurrency", "webhook_max_body_bytes",
                     "webhook_max_alerts", "webhook_workers", "webhook_threads", "console_session_seconds"):
            if getattr(self, name) < 1:
                raise SettingsError(f"PARAMEDIC_{name.upper()} must be at least 1")
        if self.sessions_namespace() == self.namespace:
            # RBAC cannot narrow get/list on Secrets to the sessions': sharing Paramedic's namespace
            # would let the network-facing console read the receiver's tokens and the seal key.
            raise SettingsError(f"PARAMEDIC_CONSOLE_SESSION_NAMESPACE must not be Paramedic's own namespace "
                                f"({self.namespace}): the console may read every Secret of its sessions' "
                                f"namespace, so they need one that holds nothing else")
        if self.shards < 1 or self.shards > 1024:
            raise SettingsError("PARAMEDIC_SHARDS must be between 1 and 1024")
        if not 0 < self.lease_renew_seconds * 2 <= self.lease_seconds:
            raise SettingsError("PARAMEDIC_LEASE_RENEW_SECONDS must be more than 0 and at most half of "
                                "PARAMEDIC_LEASE_SECONDS (a Lease must survive one failed renewal)")
        if self.retention_days < 0:
            raise SettingsError("PARAMEDIC_RETENTION_DAYS must be 0 or more")
        if self.events_per_second <= 0:
            raise SettingsError("PARAMEDIC_EVENTS_PER_SECOND must be more than 0")
        if self.preflight_interval_seconds <= 0:
            raise SettingsError("PARAMEDIC_PREFLIGHT_INTERVAL_SECONDS must be more than 0")
        return self

    def sessions_namespace(self) -> str:
        """Where the console keeps its sessions: the setting, or `<namespace>-console-sessions`."""
        return self.console_session_namespace or f"{self.namespace}-console-sessions"

    def secret(self, name: str) -> str:
        """A secret from its `_file` variant when set (mounted Secrets rotate), else the value."""
        path = getattr(self, f"{name}_file", "")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise SettingsError(f"cannot read PARAMEDIC_{name.upper()}_FILE: {exc.strerror}") from exc
        return str(getattr(self, name))

    def has_secret(self, name: str) -> bool:
        """Whether secret `name` is configured: a value, or a `_file` that exists and is not empty.

        A missing file counts as not set: the chart mounts one Secret whose keys are all
        optional (a channel without its key is off, as it is without its variable).
        """
        path = getattr(self, f"{name}_file", "")
        if path:
            try:
                return bool(Path(path).read_text().strip())
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise SettingsError(f"cannot read PARAMEDIC_{name.upper()}_FILE: {exc.strerror}") from exc
        return bool(getattr(self, name))

    def redacted(self) -> dict[str, Any]:
        """For logs: secrets are never printed."""
        return {name: "***" if _is_secret(f) and getattr(self, name) else getattr(self, name)
                for name, f in type(self).model_fields.items()}


def _is_secret(f: FieldInfo) -> bool:
    return isinstance(f.json_schema_extra, dict) and bool(f.json_schema_extra.get("secret"))


def _kind(f: FieldInfo) -> str:
    annotation = f.annotation
    return getattr(get_origin(annotation) or annotation, "__name__", str(annotation))


def _explain(cls: type[Settings], exc: ValidationError) -> str:
    """The first refusal, as one sentence naming the variable (a SettingsError of ours is kept as it is)."""
    err = exc.errors()[0]
    ctx = err.get("ctx")
    cause = ctx.get("error") if isinstance(ctx, Mapping) else None
    if isinstance(cause, SettingsError):
        return str(cause)
    name = str(err["loc"][0]) if err["loc"] else ""
    if name not in cls.model_fields:
        return f"settings: {err['msg']}"
    return f"{PREFIX}{name.upper()}={err['input']!r} is not a valid {_kind(cls.model_fields[name])}"


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, f in Settings.model_fields.items():
        if f.default is not PydanticUndefined:
            default = f.default
        elif name == "playbooks_dir":
            default = "playbooks/ beside the package"
        else:
            default = ",".join(f.default_factory()) if f.default_factory is not None else ""  # type: ignore[call-arg]
        if isinstance(default, bool):
            default = str(default).lower()
        shown = f"`{default}`" if default not in ("", []) else "(empty)"
        rows.append(f"| `{PREFIX}{name.upper()}` | {shown} | {f.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if "--markdown" in sys.argv:
        print(markdown_table())
