"""A fake EC2 instance metadata service (IMDSv2) on 127.0.0.1, for the spot watcher."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "imds-session-token"


class FakeMetadata:
    """IMDSv2 as a spot worker sees it: a session token, then 404 until a notice exists."""

    def __init__(self) -> None:
        self.notice: dict[str, str] | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                if self.path == "/latest/api/token":
                    self._send(200, TOKEN)
                else:
                    self._send(404, "")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                    self._send(401, "")  # IMDSv2: no token, no answer
                elif self.path != "/latest/meta-data/spot/instance-action" or not fake.notice:
                    self._send(404, "")
                else:
                    self._send(200, json.dumps(fake.notice))

            def _send(self, code: int, body: str) -> None:
                self.send_response(code)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def post_notice(self, seconds: float = 120) -> None:
        """EC2 announces that it terminates the instance in `seconds`."""
        when = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        self.notice = {"action": "terminate", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
