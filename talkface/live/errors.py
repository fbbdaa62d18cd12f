"""The server's client errors: each type carries its HTTP status, so a handler raises what went
wrong and the status follows from the type (never from the words of a message)."""
from __future__ import annotations

from talkface.errors import TalkfaceError


class ClientError(TalkfaceError):
    """Something the client must change; `str(self)` is the one-line reason sent back."""

    status = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class BadInput(ClientError):
    status = 422


class TooLarge(ClientError):
    status = 413


class UnsupportedType(ClientError):
    status = 415


class LengthRequired(ClientError):
    status = 411


class Unauthorized(ClientError):
    status = 401

    def __init__(self, message: str = "missing or wrong bearer token") -> None:
        super().__init__(message, {"WWW-Authenticate": "Bearer"})


class Forbidden(ClientError):
    status = 403


class NotFound(ClientError):
    status = 404


class Busy(ClientError):
    """At capacity: try again after `retry_after` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = max(1, int(retry_after))


class Gone(ClientError):
    """The client went away before its job finished; nobody reads this reply."""

    status = 499
