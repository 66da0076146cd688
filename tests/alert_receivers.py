"""Real alert receivers on loopback, for the alerting tests: an SMTP server (aiosmtpd), an HTTP
endpoint for apprise's ``json://`` webhooks, and a black hole that accepts connections and
never answers. Each keeps what it received exactly as it came over the wire."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from primero_progres.sim.common import ServerThread, listening_socket


class _BoundController(Controller):
    """aiosmtpd's controller on a socket bound beforehand, so its port is ours from the start."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        self._socket = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1])

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._socket)


@dataclass
class Mail:
    raw: str

    @property
    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_string(self.raw, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")


class SmtpReceiver:
    """An SMTP server on a loopback port that accepts every message."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._controller = _BoundController(self, listening_socket())
        self.port = self._controller.port

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(Mail(envelope.content.decode("utf-8", "replace")))
        return "250 OK"

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=bridge@example.org&to=ops@example.org"

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def about(self, text: str) -> list[Mail]:
        return [mail for mail in self.mails if text in mail.subject]


@dataclass
class Post:
    headers: dict[str, str]
    raw: bytes

    @property
    def notice(self) -> dict[str, Any]:
        value = json.loads(self.raw)
        assert isinstance(value, dict)
        return value

    @property
    def title(self) -> str:
        return str(self.notice["title"])

    @property
    def text(self) -> str:
        """Everything that came over the wire: headers and body."""
        lines = [f"{name}: {value}" for name, value in self.headers.items()]
        return "\n".join([*lines, self.raw.decode("utf-8", "replace")])


@dataclass
class WebhookReceiver:
    """An HTTP endpoint for ``json://`` notifications; ``failures`` answers 500 that many times."""

    posts: list[Post] = field(default_factory=list)
    failures: int = 0

    def __post_init__(self) -> None:
        app = FastAPI()

        @app.post("/alerts")
        async def receive(request: Request) -> JSONResponse:
            if self.failures > 0:
                self.failures -= 1
                return JSONResponse({"error": "down"}, status_code=500)
            self.posts.append(Post(dict(request.headers), await request.body()))
            return JSONResponse({"status": "ok"})

        self._server = ServerThread(app)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self._server.port}/alerts"

    def start(self) -> WebhookReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def about(self, text: str) -> list[Post]:
        return [post for post in self.posts if text in post.title]


class BlackHole:
    """Accepts TCP connections and never answers, until ``release``."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        # apprise's own timeouts longer than any test: only ``release`` ends the attempt
        return f"json://127.0.0.1:{self.port}/alerts?cto=120&rto=120"

    def start(self) -> BlackHole:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)
            self.accepted.set()

    def release(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()

