"""ASGI middleware that guards every request: body size limit and security headers.

The size limit is enforced twice, both before anything is decoded: from the Content-Length header (the
request is refused without reading its body) and while the body is read (a client may send no length,
chunked encoding, or lie about it). Every response gets the Content-Security-Policy and friends.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException


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

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
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
