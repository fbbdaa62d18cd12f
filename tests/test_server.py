"""`talkface serve`: the HTTP API, the live WebSocket and the safety rails."""
import argparse
import io
import json
import struct
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():   # starlette's note about httpx2 is not ours to act on
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from talkface.live import protocol, server  # noqa: E402
from talkface.live.app import create_app  # noqa: E402
from talkface.live.config import ServerConfig, is_loopback  # noqa: E402

BASE = "http://localhost"   # a loopback Host header: other names are refused (DNS rebinding guard)
WS = "ws://localhost"


@pytest.fixture(scope="module")
def wav_bytes():
    import soundfile as sf

    from talkface.analysis.speech import speak

    spoken = speak("Hello there.")
    buf = io.BytesIO()
    sf.write(buf, spoken.samples, spoken.sample_rate, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    app = create_app(ServerConfig(max_upload_bytes=256 * 1024, max_seconds=5))
    with TestClient(app, base_url=BASE) as c:
        yield c


@pytest.fixture(scope="module")
def locked():
    app = create_app(ServerConfig(token="s3cret"))
    with TestClient(app, base_url=BASE) as c:
        yield c


def test_healthz_and_openapi(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/generate", "/v1/portraits", "/healthz"} <= set(paths)
    assert client.get("/").status_code == 200 and "talkface" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200


def test_generate_returns_playable_mp4(client, wav_bytes, tmp_path):
    import av

    r = client.post("/v1/generate", files={"audio": ("hello.wav", wav_bytes, "audio/wav")},
                    data={"emotion": "happy", "gaze": "camera", "seed": "2"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(r.content)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) >= 15 and frames[0].shape == (512, 512, 3)
    assert list(client.app.state.tmp.iterdir()) == [], "nothing is left in the server's temp folder"


def test_generate_from_text(client):
    r = client.post("/v1/generate", data={"text": "Hi!", "voice": "en"})
    assert r.status_code == 200 and r.content[4:8] == b"ftyp"


@pytest.mark.parametrize("kwargs, status, words", [
    ({"data": {"emotion": "happy"}}, 422, "audio file or text"),
    ({"files": {"audio": ("a.txt", b"hello", "text/plain")}}, 415, "content type"),
    ({"files": {"image": ("a.pdf", b"%PDF", "application/pdf")}, "data": {"text": "hi"}}, 415, "content type"),
    ({"files": {"audio": ("a.wav", b"\0" * (300 * 1024), "audio/wav")}}, 413, "limit"),
    ({"files": {"audio": ("a.wav", b"not audio at all" * 10, "audio/wav")}}, 422, "cannot read audio"),
    ({"data": {"text": "hi", "head_distance": "3"}}, 422, "head-distance"),
    ({"data": {"text": "hi", "emotion": "bored"}}, 422, "unknown emotion"),
    ({"data": {"text": "hi", "motion_scale": "lots"}}, 422, "valid number"),
    ({"data": {"text": "hi", "gaze": "left"}}, 422, "gaze"),
    ({"data": {"text": "hi", "fps": "500"}}, 422, "fps"),
    ({"data": {"text": "hi", "voice": "nosuchvoice"}}, 422, "unknown voice"),
    ({"data": {"text": "x" * 3000}}, 413, "characters"),
])
def test_generate_errors(client, kwargs, status, words):
    r = client.post("/v1/generate", **kwargs)
    assert r.status_code == status, r.text
    assert words in json.dumps(r.json()).lower().replace("\\", "") or words in r.text


def test_audio_too_long(client):
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000 * 7, np.int16), 8000, format="WAV", subtype="PCM_16")   # 7 s > 5 s, 112 kB
    r = client.post("/v1/generate", files={"audio": ("long.wav", buf.getvalue(), "audio/wav")})
    assert r.status_code == 413 and "5 s limit" in r.json()["detail"]


def test_token_required(locked, wav_bytes):
    assert locked.get("/healthz").status_code == 200
    r = locked.post("/v1/generate", data={"text": "hi"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = locked.post("/v1/generate", data={"text": "hi"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = locked.post("/v1/generate", data={"text": "hi"}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with locked.websocket_connect(WS + "/v1/live") as ws:
            ws.receive_text()
    with locked.websocket_connect(WS + "/v1/live?token=s3cret") as ws:
        assert json.loads(ws.receive_text())["type"] == "ready"


def _frames(ws, n):
    out, texts = [], []
    while len(out) < n:
        m = ws.receive()
        if m.get("bytes"):
            b = m["bytes"]
            magic, index, pts, sent, flags, jl, pl = struct.unpack(protocol.FRAME_HEADER, b[:protocol.FRAME_HEADER_SIZE])
            assert magic == protocol.FRAME_MAGIC and len(b) == protocol.FRAME_HEADER_SIZE + jl + pl
            jpeg = b[protocol.FRAME_HEADER_SIZE:protocol.FRAME_HEADER_SIZE + jl]
            assert jpeg[:2] == b"\xff\xd8" if not flags & 4 else jl == 0   # 4: skipped picture, keep the last
            out.append((index, pts, flags, pl))
        elif m.get("text"):
            texts.append(json.loads(m["text"]))
    return out, texts


def test_live_session_speaks_and_records(client):
    with client.websocket_connect(WS + "/v1/live") as ws:
        ready = json.loads(ws.receive_text())
        assert ready["type"] == "ready" and ready["audio_rate"] == protocol.LIVE_AUDIO_RATE
        ws.send_text(json.dumps({"type": "say", "text": "Hello there!"}))
        ws.send_text(json.dumps({"type": "controls", "emotion": "happy", "head_distance": 9}))
        ws.send_text("not json")
        frames, texts = _frames(ws, 40)
        assert [f[0] for f in frames] == list(range(40))
        assert all(f[3] == 2 * protocol.LIVE_AUDIO_RATE // 25 for f in frames)
        assert any(f[2] & 1 for f in frames), "speech frames arrive"
        errors = [t["message"] for t in texts if t["type"] == "error"]
        assert any("head-distance" in e for e in errors) and any("unknown message" in e for e in errors)
        r = client.get(f"/v1/sessions/{ready['session']}/recording.mp4")
        assert r.status_code == 200 and r.content[4:8] == b"ftyp"
    assert client.get(f"/v1/sessions/{ready['session']}/recording.mp4").status_code == 404


def test_portrait_upload_errors(client):
    r = client.post("/v1/portraits", files={"image": ("x.png", b"garbage", "image/png")})
    assert r.status_code == 422 and "the image upload" in r.json()["detail"]
    assert "/tmp" not in r.json()["detail"]
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect(WS + "/v1/live?portrait=nope") as ws:
            ws.receive_text()


def _free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _serve_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    server.add_arguments(p)
    return p.parse_args(list(argv))


def test_public_bind_without_token_warns(monkeypatch, capsys):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    # the public address is bound on loopback here: this test sends nothing anywhere
    monkeypatch.setattr(server, "bind", lambda host, port: server.socket.create_server(("127.0.0.1", 0)))
    assert server.run(_serve_args("--host", "0.0.0.0")) == 0
    assert "warning" in capsys.readouterr().err
    assert server.run(_serve_args("--host", "0.0.0.0", "--token", "t")) == 0
    assert "warning" not in capsys.readouterr().err
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("192.168.1.2")


def test_serve_on_a_busy_port_is_one_line_exit_2(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert server.run(_serve_args("--port", str(port))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot listen on 127.0.0.1:" in err[0] and "in use" in err[0], err


def test_serve_on_bracketed_ipv6_loopback(monkeypatch, capsys):
    import socket

    import uvicorn

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    bound = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: bound.extend(s.getsockname() for s in sockets))
    try:
        port = _free_port("::1")
    except OSError:
        pytest.skip("::1 cannot be bound here")
    assert server.run(_serve_args("--host", "[::1]", "--port", str(port))) == 0
    assert bound and bound[0][0] == "::1" and bound[0][1] == port
    assert f"http://[::1]:{port}/" in capsys.readouterr().err


def test_cross_origin_requests_refused(client):
    r = client.post("/v1/generate", data={"text": "hi"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect(WS + "/v1/live", headers={"Origin": "https://evil.example"}) as ws:
            ws.receive_text()
    with client.websocket_connect(WS + "/v1/live", headers={"Origin": "http://localhost"}) as ws:
        assert json.loads(ws.receive_text())["type"] == "ready"
