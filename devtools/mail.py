"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives: the tests' and the
benchmarks' mail recipient."""

from __future__ import annotations

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

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def subjects(self) -> list[str]:
        return [m["subject"] for m in self.messages]
