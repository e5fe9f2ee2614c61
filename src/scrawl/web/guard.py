"""ASGI middleware around every request: the guard (body size limit, security headers, HEAD without a
body) and the access log.

The size limit is enforced twice, both before anything is decoded: from the Content-Length header (the
request is refused without reading its body) and while the body is read (a client may send no length,
chunked encoding, or lie about it). Every response gets the Content-Security-Policy and friends. An
answer to HEAD has the headers a GET would have (Content-Length included) and never a body, whatever
the server does.

AccessLog logs one INFO line per request on the "scrawl.web.access" logger, when it is done:
`127.0.0.1 "GET /api/health" 200 1.2 ms` (client, method, path with query, status, milliseconds until
the answer was sent). It is part of the app, so it works the same under any ASGI server; where the
lines go is for whoever configures logging (`scrawl serve` prints them on stderr; --quiet turns them off).
"""

from __future__ import annotations

import json
import logging
import time

from starlette.exceptions import HTTPException

access_log = logging.getLogger("scrawl.web.access")


class BodyTooLarge(HTTPException):
    """Raised from receive() when the body read so far is over the limit: the app's HTTPException
    handler turns it into a 413, wherever the reading happened (our code or the multipart parser)."""


class Guard:
    def __init__(self, app, max_body_bytes: int, csp: str):
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]

    def _too_large(self, what: str) -> str:
        mb = self.max_body_bytes / 2**20
        return f"request body too large: {what}, the limit is {self.max_body_bytes:,} bytes ({mb:g} MiB)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        head = scope.get("method") == "HEAD"

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            elif head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}  # HEAD: the headers of a GET, no body
            await send(message)

        length = None
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                length = value
                break
        if length is not None:
            try:
                declared = int(length)
                if declared < 0:
                    raise ValueError
            except ValueError:
                return await self._refuse(send_with_headers, 400, f"invalid Content-Length header {length[:40]!r}")
            if declared > self.max_body_bytes:
                return await self._refuse(send_with_headers, 413, self._too_large(f"Content-Length {declared:,}"))

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(413, self._too_large(f"more than {received:,} bytes sent"))
            return message

        await self.app(scope, limited_receive, send_with_headers)

    @staticmethod
    async def _refuse(send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One line per request on the "scrawl.web.access" logger (INFO): client, method, path, status, ms.
    Outermost, so it sees every answer, the guard's refusals included; a request that ended in an
    unhandled error is logged as 500, one whose client left before any answer as "-"."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = None

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:  # answered by the app's last-resort handler, outside this middleware
            status = status or 500
            raise
        finally:
            ms = (time.perf_counter() - start) * 1000
            client = scope.get("client")
            access_log.info('%s "%s %s" %s %.1f ms', client[0] if client else "-", _printable(scope.get("method", "")),
                            _target(scope), status or "-", ms)


def _target(scope) -> str:
    """The request's path and query as the client sent them (still percent-encoded), printable."""
    path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    query = scope.get("query_string") or b""
    return _printable((path + (b"?" + query if query else b"")).decode("ascii", "backslashreplace"))


def _printable(text: str, limit: int = 500) -> str:
    """No control characters (a log line is one line) and no more than `limit` characters."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."
