"""What Paramedic's web processes (the receiver and the console) share: the settings, read
once with one clear error, the log format, and a gunicorn server around an app factory."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .settings import Settings, SettingsError


def startup_settings(prog: str) -> Settings | None:
    """The settings with logging configured, or None after printing why they are unusable."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def run_gunicorn(options: Mapping[str, Any], load: Callable[[], Any]) -> None:
    """Serve the WSGI app `load()` builds (in each worker) with gunicorn and `options`."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types: its base is Any
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return load()

    Server().run()
