"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives: the tests' and the
benchmarks' mail recipient."""

from __future__ import annotations

import threading
from collections.abc import Callable

from devtools.cluster import free_port


class MailSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self, port: int | None = None) -> None:
        from email import message_from_bytes, policy

        from aiosmtpd.controller import Controller

        sink = self
        self.port = port or free_port()
        self.messages: list[dict] = []
        self.on_message: Callable[[dict], None] | None = None
        """Called with each message as it arrives (a benchmark's clock)."""

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                msg = message_from_bytes(envelope.content, policy=policy.default)
                parts = {p.get_content_type(): p.get_content() for p in msg.walk() if not p.is_multipart()}
                item = {"to": list(envelope.rcpt_tos), "subject": str(msg["Subject"]),
                        "text": parts.get("text/plain", ""), "html": parts.get("text/html", ""),
                        "raw": envelope.original_content or envelope.content}
                sink.messages.append(item)
                if sink.on_message is not None:
                    sink.on_message(item)
                return "250 OK"

        sessions: list = []

        class _Controller(Controller):
            def factory(self):  # keeps each connection's protocol, so stop can close them
                smtp = super().factory()
                sessions.append(smtp)
                return smtp

        self._sessions = sessions
        self._controller = _Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        # Close the clients' connections first: the server's wait_closed waits for every open one.
        def close_all() -> None:
            for smtp in self._sessions:
                if getattr(smtp, "transport", None) is not None:
                    smtp.transport.close()

        loop = self._controller.loop
        if not loop.is_closed():
            done = threading.Event()
            def close_and_say() -> None:
                close_all()
                done.set()

            loop.call_soon_threadsafe(close_and_say)
            done.wait(5)
        # The listening socket closes as soon as the loop stops; waiting on what is left of the
        # loop is bounded (a full suite once spent minutes in aiosmtpd's stop after a delivery).
        stopper = threading.Thread(target=self._controller.stop, daemon=True)
        stopper.start()
        stopper.join(10)

    def subjects(self) -> list[str]:
        return [m["subject"] for m in self.messages]
