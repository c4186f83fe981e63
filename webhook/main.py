"""`paramedic-webhook`: the receiver served by gunicorn.

One worker process with several threads by default: Prometheus metrics live in
process memory, so more processes would each expose only their own share.
Every worker builds its own app (and Kubernetes connection pool) after the fork.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from paramedic import kube
from paramedic.serving import run_gunicorn, startup_settings
from paramedic.settings import Settings, SettingsError

from .auth import TokenSource

log = logging.getLogger("paramedic.webhook")


def parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="paramedic-webhook",
                                     description="Paramedic's Alertmanager webhook receiver (gunicorn).")
    parser.add_argument("--bind", default=settings.webhook_bind, metavar="HOST:PORT",
                        help="listen address (PARAMEDIC_WEBHOOK_BIND, default %(default)s)")
    parser.add_argument("--workers", type=int, default=settings.webhook_workers,
                        help="worker processes (PARAMEDIC_WEBHOOK_WORKERS, default %(default)s)")
    parser.add_argument("--threads", type=int, default=settings.webhook_threads,
                        help="threads per worker (PARAMEDIC_WEBHOOK_THREADS, default %(default)s)")
    parser.add_argument("--timeout", type=int, default=60,
                        help="seconds a request may take before its worker is restarted (default %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request to stdout")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be at least 1")
    if ":" not in args.bind and not args.bind.startswith("unix:"):
        parser.error("--bind must be HOST:PORT")
    return args


def gunicorn_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": [args.bind],
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": "gthread" if args.threads > 1 else "sync",
        "timeout": args.timeout,
        "graceful_timeout": 30,
        "keepalive": 75,  # Alertmanager keeps connections open between notifications
        "loglevel": settings.log_level.lower(),
        "errorlog": "-",
        "proc_name": "paramedic-webhook",
        # Headers and request line limits stay at gunicorn's defaults; the body limit is the app's.
    }
    if args.access_log:
        options["accesslog"] = "-"
    return options


def main(argv: list[str] | None = None) -> int:
    settings = startup_settings("paramedic-webhook")
    if settings is None:
        return 2
    args = parse_args(argv, settings)
    # Fail here, with one clear message, rather than in every worker that boots.
    try:
        TokenSource.from_settings(settings)
        kube.Connection.load(settings.kubeconfig)
    except SettingsError as exc:
        print(f"paramedic-webhook: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the kubernetes loaders raise assorted types
        print(f"paramedic-webhook: cannot load Kubernetes credentials: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        log.warning("%d workers: each exposes only its own metrics on /metrics", args.workers)

    def load() -> Any:
        from .app import create_app
        return create_app(settings)

    run_gunicorn(gunicorn_options(args, settings), load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
