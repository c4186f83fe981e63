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


def test_booleans_and_lists_from_text():
    s = Settings.from_env({"PARAMEDIC_PEERING_REQUIRED": "yes", "PARAMEDIC_REMEDIATION_ENABLED": "",
                           "PARAMEDIC_WATCH_NAMESPACES": " a,, b ,", "PARAMEDIC_ADMIN_EMAILS": ""})
    assert s.peering_required is True and s.remediation_enabled is False
    assert s.watch_namespaces == ["a", "b"] and s.admin_emails == []
    with pytest.raises(SettingsError, match="PARAMEDIC_PEERING_REQUIRED='maybe' is not a valid bool"):
        Settings.from_env({"PARAMEDIC_PEERING_REQUIRED": "maybe"})
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
