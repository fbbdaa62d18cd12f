"""Who may use the server: the Host check against DNS rebinding, the Origin check against other
sites' pages, the bearer token, and the body cap. The same rules for HTTP and WebSocket."""
from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from talkface.live.config import ServerConfig
from talkface.live.errors import BadInput, ClientError, Forbidden, LengthRequired, TooLarge, Unauthorized


def check_caller(config: ServerConfig, headers) -> None:
    """Host and Origin, for every HTTP request and WebSocket handshake; raises Forbidden."""
    host = headers.get("host", "")
    if not config.host_allowed(host):
        raise Forbidden(f"host '{host}' is not served here (DNS rebinding guard; the operator can add it "
                        "with --allowed-host)")
    if not same_origin(headers):
        raise Forbidden("cross-origin request refused")


def same_origin(headers) -> bool:
    """A browser request from another site (a page the user happens to visit) must not drive a
    server on their machine: when the Origin header is present, its host must be this one."""
    origin = headers.get("origin")
    if not origin:
        return True   # not from a browser page (curl, SDKs), or a same-origin GET
    return origin != "null" and urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def check_body_size(config: ServerConfig, method: str, headers) -> None:
    if method not in ("POST", "PUT", "PATCH"):
        return
    length = headers.get("content-length")
    if length is None:   # a chunked body could not be capped before it is read
        raise LengthRequired("send a Content-Length header")
    try:
        n = int(length)
    except ValueError:
        raise BadInput("bad Content-Length header") from None
    if n > config.max_upload_bytes:
        raise TooLarge(f"request body is {n / 1e6:.1f} MB; the limit is {config.max_upload_bytes / 1e6:.1f} MB")


def supplied_token(headers, query_params, allow_query: bool) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return query_params.get("token") if allow_query else None


def check_token(config: ServerConfig, supplied: str | None) -> None:
    if not config.token:
        return
    if not supplied or not hmac.compare_digest(supplied.encode(), config.token.encode()):
        raise Unauthorized()


def refusal(exc: ClientError) -> str:
    """A WebSocket close reason fits in 123 bytes."""
    return str(exc).encode()[:123].decode(errors="ignore")
