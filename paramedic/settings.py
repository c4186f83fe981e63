"""The one settings object: every knob is a `PARAMEDIC_*` environment variable.

The README's configuration table is generated from `FIELDS` below (see
`python -m paramedic.settings --markdown`), so the docs and the code cannot drift.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    factory = default if callable(default) else None
    kwargs: dict[str, Any] = {"metadata": {"doc": doc, "secret": secret}}
    if factory is not None:
        kwargs["default_factory"] = factory
    elif isinstance(default, (list, dict)):
        kwargs["default_factory"] = lambda d=default: type(d)(d)
    else:
        kwargs["default"] = default
    return field(**kwargs)


@dataclass(frozen=True)
class Settings:
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
                                                       "(API server, CRDs, RBAC, peering), logging an ERROR each time")
    peering_required: bool = _setting(False, "Wait (ERROR) for a missing Kopf peering CRD or object instead of "
                                             "falling back to standalone (WARNING); set it when running 2+ replicas")
    # --- Probing --------------------------------------------------------------
    probe_concurrency: int = _setting(256, "Most HTTP probes in flight at once (one shared client)")
    probe_deny_private: bool = _setting(False, "Refuse probe URLs resolving to link-local or cloud metadata addresses")
    # --- Alerts / webhook -----------------------------------------------------
    webhook_token: str = _setting("", "Bearer token the receiver requires", secret=True)
    webhook_token_file: str = _setting("", "File holding the bearer token (re-read when it changes)")
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
    ansible_timeout_seconds: int = _setting(300, "Default time limit of one playbook run")
    rollout_timeout_seconds: int = _setting(300, "How long a restart waits for its rollout")
    evidence_enabled: bool = _setting(True, "Gather evidence (rollouts, pods, Warning Events, nodes) about an "
                                            "incident's target and rank probable causes")
    evidence_refresh_seconds: int = _setting(60, "How often an active incident's evidence is gathered again")
    evidence_concurrency: int = _setting(8, "Most evidence gatherings in flight at once (bounds the API load "
                                            "when many incidents open together)")
    # --- Notifications --------------------------------------------------------
    admin_emails: list[str] = _setting([], "Comma-separated admins mailed about every incident")
    smtp_host: str = _setting("", "SMTP server; empty disables e-mail")
    smtp_port: int = _setting(25, "SMTP port")
    smtp_security: str = _setting("none", "none | starttls | tls")
    smtp_username: str = _setting("", "SMTP user name")
    smtp_password: str = _setting("", "SMTP password", secret=True)
    smtp_password_file: str = _setting("", "File holding the SMTP password")
    smtp_from: str = _setting("paramedic@localhost", "Sender address")
    smtp_timeout_seconds: float = _setting(10.0, "SMTP connection timeout")
    smtp_ca_file: str = _setting("", "PEM file of CAs trusted for SMTP TLS (private CA); empty: the system CAs")
    slack_webhook_url: str = _setting("", "Slack incoming-webhook URL", secret=True)
    notify_webhook_url: str = _setting("", "Generic JSON webhook notified of incident events", secret=True)
    dashboard_url: str = _setting("", "Base URL linked from notifications (e.g. Grafana)")
    # --- Logging ----------------------------------------------------------------
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING, ERROR")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _parse(f, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.smtp_security not in ("none", "starttls", "tls"):
            raise SettingsError(f"PARAMEDIC_SMTP_SECURITY must be none, starttls or tls, not {self.smtp_security!r}")
        for name in ("workers", "timeline_limit", "probe_concurrency", "webhook_max_body_bytes",
                     "webhook_max_alerts", "webhook_workers", "webhook_threads"):
            if getattr(self, name) < 1:
                raise SettingsError(f"PARAMEDIC_{name.upper()} must be at least 1")
        if self.retention_days < 0:
            raise SettingsError("PARAMEDIC_RETENTION_DAYS must be 0 or more")
        if self.events_per_second <= 0:
            raise SettingsError("PARAMEDIC_EVENTS_PER_SECOND must be more than 0")
        if self.preflight_interval_seconds <= 0:
            raise SettingsError("PARAMEDIC_PREFLIGHT_INTERVAL_SECONDS must be more than 0")

    def secret(self, name: str) -> str:
        """A secret from its `_file` variant when set (mounted Secrets rotate), else the value."""
        path = getattr(self, f"{name}_file", "")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise SettingsError(f"cannot read PARAMEDIC_{name.upper()}_FILE: {exc.strerror}") from exc
        return getattr(self, name)

    def redacted(self) -> dict[str, Any]:
        """For logs: secrets are never printed."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata.get("secret") and value else value
        return out


def _parse(f: dataclasses.Field, raw: str) -> Any:
    name = PREFIX + f.name.upper()
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("list"):
            return [item.strip() for item in raw.split(",") if item.strip()]
        return raw
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.name == "playbooks_dir":
            default = "playbooks/ beside the package"
        else:
            default = ",".join(f.default_factory()) if f.default_factory is not dataclasses.MISSING else ""
        if isinstance(default, bool):
            default = str(default).lower()
        shown = f"`{default}`" if default not in ("", []) else "(empty)"
        rows.append(f"| `{PREFIX}{f.name.upper()}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if "--markdown" in sys.argv:
        print(markdown_table())
