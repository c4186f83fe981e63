"""`paramedic-console`: the web console served by gunicorn.

Threads, not processes: the console keeps nothing in memory that matters (sessions are
Secrets in the cluster, the data too), but one process is plenty for people's clicks.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from paramedic.domain.vocabulary import DNS_LABEL
from paramedic.serving import run_gunicorn, startup_settings
from paramedic.settings import Settings

from . import auth
from .apiserver import address_only

log = logging.getLogger("paramedic.console")


def parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="paramedic-console",
                                     description="Paramedic's web console: incidents in a browser, with your own "
                                                 "Kubernetes rights.")
    parser.add_argument("--bind", default=settings.console_bind, metavar="HOST:PORT",
                        help="listen address (PARAMEDIC_CONSOLE_BIND, default %(default)s)")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request to stdout")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if ":" not in args.bind:
        parser.error("--bind must be HOST:PORT")
    return args


def gunicorn_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": [args.bind], "workers": 1, "threads": args.threads, "worker_class": "gthread",
        "timeout": 60, "graceful_timeout": 10, "keepalive": 30, "loglevel": settings.log_level.lower(),
        "errorlog": "-", "proc_name": "paramedic-console",
    }
    if settings.console_tls_cert_file:
        options.update(certfile=settings.console_tls_cert_file, keyfile=settings.console_tls_key_file)
    if args.access_log:
        options["accesslog"] = "-"
    return options


def warn_of_strangers(store: Any) -> None:
    """Loudly, when the sessions namespace holds other Secrets: the console can read them all."""
    from .sessions import SessionStoreError

    try:
        others = store.strangers()
    except SessionStoreError as exc:
        log.error("%s", exc)
        return
    if others:
        log.warning("SECURITY: the console's sessions namespace %s holds Secrets that are not sessions, and the "
                    "console can read them all: %s. Keep that namespace for console sessions only "
                    "(PARAMEDIC_CONSOLE_SESSION_NAMESPACE).", store.namespace, ", ".join(others[:10]))


def main(argv: list[str] | None = None) -> int:
    settings = startup_settings("paramedic-console")
    if settings is None:
        return 2
    args = parse_args(argv, settings)
    if bool(settings.console_tls_cert_file) != bool(settings.console_tls_key_file):
        print("paramedic-console: set both PARAMEDIC_CONSOLE_TLS_CERT_FILE and PARAMEDIC_CONSOLE_TLS_KEY_FILE",
              file=sys.stderr)
        return 2
    try:
        secret = auth.load_key(settings.console_session_key_file)
    except (OSError, ValueError) as exc:
        print(f"paramedic-console: {exc}", file=sys.stderr)
        return 2
    try:
        # The API server's address and CA only: people's requests carry their own tokens.
        connection = address_only(settings.kubeconfig)
    except Exception as exc:  # the kubernetes loaders raise assorted types
        print(f"paramedic-console: cannot load the API server's address: {exc}", file=sys.stderr)
        return 2
    if not DNS_LABEL.match(settings.sessions_namespace()):
        print(f"paramedic-console: the sessions namespace {settings.sessions_namespace()!r} is not a namespace name "
              f"(set PARAMEDIC_CONSOLE_SESSION_NAMESPACE)", file=sys.stderr)
        return 2
    if settings.console_insecure_http:
        log.warning("PARAMEDIC_CONSOLE_INSECURE_HTTP: the session cookie is not Secure (loopback development only)")
    if not settings.console_session_key_file:
        log.warning("no PARAMEDIC_CONSOLE_SESSION_KEY_FILE: sign-ins last until this process restarts")

    def load() -> Any:
        from .app import create_app
        from .current import SESSIONS
        app = create_app(settings, connection, secret)
        warn_of_strangers(app.extensions[SESSIONS])
        return app

    run_gunicorn(gunicorn_options(args, settings), load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
