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
