from pathlib import Path

import pytest

from paramedic.settings import Settings, SettingsError, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_documents_every_setting():
    assert markdown_table() in README.read_text(), "run hack/update-readme.py"


def test_env_parsing_and_validation(tmp_path):
    s = Settings.from_env({"PARAMEDIC_WORKERS": "4", "PARAMEDIC_ADMIN_EMAILS": "a@x, b@y",
                           "PARAMEDIC_REMEDIATION_ENABLED": "false"})
    assert s.workers == 4 and s.admin_emails == ["a@x", "b@y"] and s.remediation_enabled is False
    with pytest.raises(SettingsError, match="PARAMEDIC_WORKERS='many' is not a valid int"):
        Settings.from_env({"PARAMEDIC_WORKERS": "many"})
    with pytest.raises(SettingsError, match="SMTP_SECURITY"):
        Settings.from_env({"PARAMEDIC_SMTP_SECURITY": "ssl3"})


def test_secrets_come_from_files_and_are_redacted(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    s = Settings.from_env({"PARAMEDIC_WEBHOOK_TOKEN_FILE": str(token), "PARAMEDIC_SMTP_PASSWORD": "pw"})
    assert s.secret("webhook_token") == "s3cret"
    assert "pw" not in str(s.redacted()) and "s3cret" not in str(s.redacted())


SECRETS = ("webhook_token", "smtp_username", "smtp_password", "slack_webhook_url", "notify_webhook_url")


def test_every_secret_has_a_file_variant():
    fields = Settings.model_fields
    secret = {name for name, f in fields.items() if (f.json_schema_extra or {}).get("secret")}
    assert secret and secret <= set(SECRETS)
    for name in SECRETS:
        assert f"{name}_file" in fields, name


@pytest.mark.parametrize("name", SECRETS)
def test_secret_files_are_read_at_each_use_and_a_missing_one_is_unset(tmp_path, name):
    path = tmp_path / name
    s = Settings.from_env({f"PARAMEDIC_{name.upper()}_FILE": str(path)})
    assert not s.has_secret(name)  # an optional key of a mounted Secret that is absent
    path.write_text("first\n")
    assert s.has_secret(name) and s.secret(name) == "first"
    path.write_text("rotated")
    assert s.secret(name) == "rotated"
    path.write_text("\n")
    assert not s.has_secret(name)
    # Plain variables keep working for local use; a file wins over a variable.
    assert Settings.from_env({f"PARAMEDIC_{name.upper()}": "plain"}).secret(name) == "plain"
    assert Settings.from_env({f"PARAMEDIC_{name.upper()}": "plain"}).has_secret(name)
    both = Settings.from_env({f"PARAMEDIC_{name.upper()}": "plain", f"PARAMEDIC_{name.upper()}_FILE": str(path)})
    path.write_text("file")
    assert both.secret(name) == "file"
    # Unreadable (not missing) is an error, never silence.
    bad = Settings.from_env({f"PARAMEDIC_{name.upper()}_FILE": str(tmp_path)})
    with pytest.raises(SettingsError, match=f"PARAMEDIC_{name.upper()}_FILE"):
        bad.has_secret(name)


def test_notifier_reads_hook_urls_from_rotating_files(tmp_path):
    from paramedic.notify import Notifier

    slack = tmp_path / "slack"
    s = Settings.from_env({"PARAMEDIC_SLACK_WEBHOOK_URL_FILE": str(slack),
                           "PARAMEDIC_NOTIFY_WEBHOOK_URL_FILE": str(tmp_path / "missing")})
    n = Notifier(s)
    assert n._url("slack_webhook_url") == "" and n._url("notify_webhook_url") == ""
    assert n.configured() == frozenset()  # nothing configured: the planner records notifications skipped
    slack.write_text("https://hooks.example/one\n")
    assert n._url("slack_webhook_url") == "https://hooks.example/one"
    assert n.configured() == {"slack"}  # read at each call: the operator's next pass sends on Slack
    slack.write_text("https://hooks.example/two")
    assert n._url("slack_webhook_url") == "https://hooks.example/two"
    broken = Notifier(Settings.from_env({"PARAMEDIC_SLACK_WEBHOOK_URL_FILE": str(tmp_path)}))
    err = broken._url("slack_webhook_url")
    assert isinstance(err, SettingsError) and "PARAMEDIC_SLACK_WEBHOOK_URL_FILE" in str(err)
    assert broken.configured() == {"slack"}  # unreadable: tried, so the delivery records why it failed
def test_booleans_and_lists_from_text():
    s = Settings.from_env({"PARAMEDIC_PROBE_DENY_PRIVATE": "yes", "PARAMEDIC_REMEDIATION_ENABLED": "",
                           "PARAMEDIC_WATCH_NAMESPACES": " a,, b ,", "PARAMEDIC_ADMIN_EMAILS": ""})
    assert s.probe_deny_private is True and s.remediation_enabled is False
    assert s.watch_namespaces == ["a", "b"] and s.admin_emails == []
    with pytest.raises(SettingsError, match="PARAMEDIC_PROBE_DENY_PRIVATE='maybe' is not a valid bool"):
        Settings.from_env({"PARAMEDIC_PROBE_DENY_PRIVATE": "maybe"})
    with pytest.raises(SettingsError, match="PARAMEDIC_EVENTS_PER_SECOND='fast' is not a valid float"):
        Settings.from_env({"PARAMEDIC_EVENTS_PER_SECOND": "fast"})
    with pytest.raises(SettingsError, match="PARAMEDIC_WORKERS must be at least 1"):
        Settings.from_env({"PARAMEDIC_WORKERS": "0"})


def test_constructor_takes_only_what_it_is_given(monkeypatch):
    # Settings(...) never reads the environment (tests and defaults); from_env() does.
    monkeypatch.setenv("PARAMEDIC_WORKERS", "3")
    monkeypatch.setenv("PARAMEDIC_SOMETHING_ELSE", "ignored")
    assert Settings().workers == 16
    assert Settings.from_env().workers == 3
    with pytest.raises(SettingsError, match="PARAMEDIC_WORKERS='x' is not a valid int"):
        Settings(workers="x")
    with pytest.raises(ValueError):
        Settings().workers = 2  # one shared object: frozen
    # list defaults are not shared between objects
    assert Settings().admin_emails is not Settings().admin_emails


def test_unreadable_secret_file_is_a_settings_error(tmp_path):
    s = Settings(smtp_password_file=str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="cannot read PARAMEDIC_SMTP_PASSWORD_FILE"):
        s.secret("smtp_password")
    assert Settings(smtp_password="pw").secret("smtp_password") == "pw"


def test_console_sessions_live_in_a_namespace_of_their_own():
    # The console may read every Secret of its sessions' namespace (RBAC cannot narrow get/list):
    # never Paramedic's own, which holds the receiver's tokens and the seal key.
    assert Settings.from_env({}).sessions_namespace() == "paramedic-console-sessions"
    assert Settings.from_env({"PARAMEDIC_NAMESPACE": "ops"}).sessions_namespace() == "ops-console-sessions"
    chosen = Settings.from_env({"PARAMEDIC_NAMESPACE": "ops", "PARAMEDIC_CONSOLE_SESSION_NAMESPACE": "sessions"})
    assert chosen.sessions_namespace() == "sessions"
    for env in ({"PARAMEDIC_CONSOLE_SESSION_NAMESPACE": "paramedic"},
                {"PARAMEDIC_NAMESPACE": "ops", "PARAMEDIC_CONSOLE_SESSION_NAMESPACE": "ops"}):
        with pytest.raises(SettingsError, match="PARAMEDIC_CONSOLE_SESSION_NAMESPACE must not be Paramedic's own"):
            Settings.from_env(env)
