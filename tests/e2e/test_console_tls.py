"""The console serving TLS itself (PARAMEDIC_CONSOLE_TLS_CERT_FILE/KEY_FILE): HTTPS only, a Secure
session cookie, HSTS; a certificate without its key is refused at start-up."""

from __future__ import annotations

import ssl
import subprocess

import httpx
import pytest
import trustme

from tests.console_support import ConsoleProcess, csrf_of
from tests.helpers import VENV_BIN

pytestmark = pytest.mark.e2e


@pytest.fixture
def pki(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def test_the_console_serves_https_only_with_a_secure_cookie_and_hsts(kubeconfig, tmp_path, pki, tenants):
    a, _ = tenants
    trust = ssl.create_default_context(cafile=str(pki["ca"]))
    console = ConsoleProcess(kubeconfig, tmp_path, env={"PARAMEDIC_CONSOLE_TLS_CERT_FILE": str(pki["cert"]),
                                                        "PARAMEDIC_CONSOLE_TLS_KEY_FILE": str(pki["key"])},
                             verify=trust).start()
    try:
        assert console.url.startswith("https://")
        with httpx.Client(base_url=console.url, verify=trust, timeout=10) as web:
            form = web.get("/signin")
            assert form.status_code == 200
            assert form.headers["Strict-Transport-Security"] == "max-age=31536000"
            resp = web.post("/signin", data={"token": a.token, "csrf": csrf_of(form.text)})
            assert resp.status_code == 302, resp.text
            cookie = next(v for k, v in resp.headers.multi_items() if k.lower() == "set-cookie"
                          and v.startswith("paramedic_console="))
            attrs = [p.strip().lower() for p in cookie.split(";")]
            assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs, cookie
            assert a.token not in cookie
            assert web.get("/incidents").status_code == 200
        # Nothing is served in plain text on that port, and an unknown CA is not trusted.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{console.port}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(console.url + "/healthz", timeout=5)
    finally:
        console.stop()


def test_a_certificate_without_its_key_is_refused_at_start_up(kubeconfig, tmp_path, pki):
    env = {"PATH": "/usr/bin:/bin", "PARAMEDIC_KUBECONFIG": str(kubeconfig),
           "PARAMEDIC_CONSOLE_TLS_CERT_FILE": str(pki["cert"])}
    out = subprocess.run([str(VENV_BIN / "paramedic-console"), "--bind", "127.0.0.1:0"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "set both PARAMEDIC_CONSOLE_TLS_CERT_FILE and PARAMEDIC_CONSOLE_TLS_KEY_FILE" in out.stderr
