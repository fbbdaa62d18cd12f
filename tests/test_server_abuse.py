"""`talkface serve` under hostile input (issue 18, part 2): each probe finding pinned.

In-process (TestClient) where one request shows it; tests/test_server_faults.py runs a real
server on loopback for what needs concurrency or dropped connections."""
import io
import json
import resource
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from starlette.websockets import WebSocketDisconnect  # noqa: E402

from talkface.live import protocol  # noqa: E402
from talkface.live.app import create_app  # noqa: E402
from talkface.live.config import ServerConfig  # noqa: E402

BASE, WS = "http://localhost", "ws://localhost"


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServerConfig(max_live=2, max_live_per_client=2)), base_url=BASE) as c:
        yield c


def _png(width: int, height: int) -> bytes:
    """A tiny file that declares width x height pixels (1-bit, all zero: compresses to almost nothing)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def _closed(client, url: str, **kwargs) -> WebSocketDisconnect:
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect(url, **kwargs) as ws:
            ws.receive_text()
    return info.value


def test_dns_rebinding_host_is_refused_over_http_and_websocket(client):
    evil = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    for path, kwargs in (("/v1/generate", {"data": {"text": "hi"}}),
                         ("/v1/portraits", {"files": {"image": ("x.png", b"x", "image/png")}})):
        r = client.post(path, headers=evil, **kwargs)
        assert r.status_code == 403 and "host 'evil.example:8000'" in r.json()["detail"], r.text
    closed = _closed(client, "ws://evil.example:8000/v1/live", headers={"Origin": "http://evil.example:8000"})
    assert closed.code == protocol.CLOSE_POLICY and "DNS rebinding" in closed.reason
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "127.0.0.1"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host


def test_allowed_host_is_served_when_the_operator_names_it():
    config = ServerConfig(allowed_hosts=("avatar.lan",))
    with TestClient(create_app(config), base_url="http://avatar.lan") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"Host": "other.lan"}).status_code == 403
        with c.websocket_connect("ws://avatar.lan/v1/live") as ws:
            assert json.loads(ws.receive_text())["type"] == "ready"


def test_public_bind_does_not_check_host_names():
    with TestClient(create_app(ServerConfig(loopback=False, token="t")), base_url="http://203.0.113.7") as c:
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/v1/portraits", "/v1/generate"])
@pytest.mark.parametrize("side", [13000, 14000])   # 14000: past Pillow's own decompression-bomb limit
def test_huge_image_is_refused_before_decoding(client, path, side):
    png = _png(side, side)
    assert len(png) < 2_000_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = {"text": "hi"} if path == "/v1/generate" else {}
    r = client.post(path, files={"image": ("big.png", png, "image/png")}, data=data)
    assert r.status_code == 413, r.text
    assert "megapixels" in r.json()["detail"]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB: the image was decoded"


def test_negative_seed_is_a_422_with_a_reason(client):
    r = client.post("/v1/generate", data={"text": "hi", "seed": "-1"})
    assert r.status_code == 422 and "seed must be between 0 and" in r.json()["detail"]


def test_refused_websockets_get_documented_close_codes():
    with TestClient(create_app(ServerConfig(token="s3cret", max_live=1, max_live_per_client=1)), base_url=BASE) as c:
        closed = _closed(c, WS + "/v1/live")
        assert closed.code == protocol.CLOSE_POLICY and "token" in closed.reason
        closed = _closed(c, WS + "/v1/live?token=s3cret", headers={"Origin": "https://evil.example"})
        assert closed.code == protocol.CLOSE_POLICY and "cross-origin" in closed.reason
        closed = _closed(c, WS + "/v1/live?token=s3cret&portrait=nope")
        assert closed.code == protocol.CLOSE_POLICY and "unknown portrait" in closed.reason
        with c.websocket_connect(WS + "/v1/live?token=s3cret") as ws:
            assert json.loads(ws.receive_text())["type"] == "ready"
            closed = _closed(c, WS + "/v1/live?token=s3cret")
            assert closed.code == protocol.CLOSE_TRY_LATER and "capacity" in closed.reason
        with c.websocket_connect(WS + "/v1/live?token=s3cret") as ws:   # the slot came back
            assert json.loads(ws.receive_text())["type"] == "ready"


def test_one_client_cannot_hold_more_than_its_share():
    with TestClient(create_app(ServerConfig(max_live=4, max_live_per_client=1)), base_url=BASE) as c:
        with c.websocket_connect(WS + "/v1/live") as ws:
            assert json.loads(ws.receive_text())["type"] == "ready"
            closed = _closed(c, WS + "/v1/live")
            assert closed.code == protocol.CLOSE_TRY_LATER and "this client already has 1" in closed.reason
        assert c.get("/healthz").json()["live_sessions"] == 0


@pytest.mark.parametrize("message, words", [
    ({"type": "say", "text": 42}, "say: text must be a string, got a number"),
    ({"type": "say", "text": ["hi"]}, "say: text must be a string, got a list"),
    ({"type": "say"}, "say: the message has no text field"),
    ({"type": "say", "text": "  "}, "say: text is empty"),
    ({"type": "say", "text": "hi", "voice": 3}, "say: voice must be a string"),
    ({"type": "audio_format", "rate": True}, "audio_format: rate"),
    ({"type": "controls", "gaze": 5}, "controls: gaze must be a string"),
    ({"type": "dance"}, "unknown message"),
])
def test_bad_live_messages_get_precise_replies(client, message, words):
    with client.websocket_connect(WS + "/v1/live") as ws:
        assert json.loads(ws.receive_text())["type"] == "ready"
        ws.send_text(json.dumps(message))
        while True:
            m = ws.receive()
            if m.get("text"):
                reply = json.loads(m["text"])
                break
    assert reply["type"] == "error" and words in reply["message"], reply


def test_malformed_multipart_is_a_400_and_prints_nothing(client, capsys):
    body = b"garbage without a boundary"
    r = client.post("/v1/generate", content=body, headers={"Content-Type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 400
    captured = capsys.readouterr()
    assert "boundary" not in captured.err, captured.err


def test_a_session_that_fails_closes_alone_with_a_reason(client, monkeypatch):
    """A bug in one session's message handling ends that session with 1011 and a reason; the
    server and the next session go on."""
    from talkface.live.sessions import LiveSession

    def broken(self, message):
        raise RuntimeError("injected fault")

    with client.websocket_connect(WS + "/v1/live") as healthy:
        assert json.loads(healthy.receive_text())["type"] == "ready"
        monkeypatch.setattr(LiveSession, "_apply", broken)
        with client.websocket_connect(WS + "/v1/live") as ws:
            assert json.loads(ws.receive_text())["type"] == "ready"
            ws.send_text(json.dumps({"type": "ping"}))
            while (m := ws.receive())["type"] != "websocket.close":
                pass
        monkeypatch.undo()
        assert m["code"] == protocol.CLOSE_INTERNAL and "RuntimeError" in m["reason"]
        healthy.send_text(json.dumps({"type": "ping"}))
        while not (m := healthy.receive()).get("text"):
            pass
        assert json.loads(m["text"])["type"] == "pong"
    assert client.get("/healthz").json()["status"] == "ok"
