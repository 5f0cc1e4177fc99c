"""A webhook receiver for tests: a real HTTP server on a free loopback port that checks every request's
signature with two implementations independent of ``notify/webhooks.py``, the ``standardwebhooks``
library (the Standard Webhooks project's own) and the recipe published in the README (run from the
README's text), and can be told to fail its first requests."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

README = Path(__file__).resolve().parents[1] / "README.md"
RECIPE_MARKER = "<!-- webhook-verification-recipe"


def readme_verifier() -> Callable[[str, dict[str, str], bytes], dict[str, Any]]:
    """``verify_webhook`` as the README publishes it (the python block after the recipe marker)."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(RECIPE_MARKER):]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match, "the README has the verification recipe"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md (webhook recipe)", "exec"), namespace)
    verify: Callable[[str, dict[str, str], bytes], dict[str, Any]] = namespace["verify_webhook"]
    return verify


@dataclass
class Received:
    """One accepted request: its headers, raw body and the event."""

    headers: dict[str, str]
    body: bytes
    event: dict[str, Any]


@dataclass
class WebhookReceiver:
    """What the receiver saw; ``fail_next`` requests are answered 500 before it accepts any."""

    secret: str
    url: str = ""
    fail_next: int = 0
    fail_requests: set[int] = field(default_factory=set)  # request numbers (from 1) answered 500
    requests: int = 0
    failed: int = 0
    accepted: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why a request did not verify
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.requests += 1
            if self.fail_next > 0 or self.requests in self.fail_requests:
                self.fail_next = max(0, self.fail_next - 1)
                self.failed += 1
                return 500
        try:
            event = Webhook(self.secret).verify(body, headers)
            again = readme_verifier()(self.secret, headers, body)
        except Exception as exc:  # noqa: BLE001 - a refusal is recorded and answered 401
            with self._lock:
                self.rejected.append(f"{type(exc).__name__}: {exc}")
            return 401
        assert again == event
        with self._lock:
            self.accepted.append(Received(headers, body, event))
        return 204

    def events(self) -> list[dict[str, Any]]:
        """The accepted events, in the order they arrived."""
        with self._lock:
            return [r.event for r in self.accepted]

    def of(self, notification_id: str) -> list[dict[str, Any]]:
        """The accepted events of one notification, in arrival order."""
        return [e for e in self.events() if e["data"]["notificationId"] == notification_id]


@contextmanager
def running_receiver(
    secret: str, fail_next: int = 0, fail_requests: set[int] | None = None
) -> Iterator[WebhookReceiver]:
    """A receiver on ``http://127.0.0.1:<free port>/hooks`` for the duration of the block."""
    receiver = WebhookReceiver(secret, fail_next=fail_next, fail_requests=set(fail_requests or ()))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status = receiver.handle({k: v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dumps(value: Any) -> str:
    """Compact JSON, for readable assertion messages."""
    return json.dumps(value, separators=(",", ":"))
