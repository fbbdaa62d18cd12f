"""`talkface serve` under overload and faults (issue 18, parts 2 and 3), against a real uvicorn
server on 127.0.0.1: simultaneous handshakes, the bounded file-job queue, clients that go
away, and a bounded loop of clients killed at random points."""
import asyncio
import contextlib
import json
import random
import socket
import threading
import time
import uuid

import httpx
import pytest

from talkface.live import protocol
from talkface.live.app import create_app
from talkface.live.config import ServerConfig

POOL_HEADROOM = 8  # idle threads the shared pools may keep: asyncio's default executor (cores + 4), job workers
SETTLE_S = 60.0   # at most this long for the server to finish cleaning up (polled, not asserted on)


@contextlib.contextmanager
def serving(config: ServerConfig):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait(predicate, what: str):
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"still waiting for {what}")


async def _open_live(ws_url: str):
    import websockets

    try:
        async with websockets.connect(ws_url + "/v1/live", open_timeout=30) as ws:
            first = json.loads(await ws.recv())
            await asyncio.sleep(1.0)   # hold the slot while the others try
            return first["type"]
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


def test_simultaneous_handshakes_cannot_pass_the_cap():
    with serving(ServerConfig(max_live=2, max_live_per_client=2)) as (url, app):
        async def main():
            return await asyncio.gather(*[_open_live(url.replace("http", "ws")) for _ in range(8)])

        results = asyncio.run(main())
        assert results.count("ready") == 2, results
        assert results.count(protocol.CLOSE_TRY_LATER) == 6, results
        _wait(lambda: httpx.get(url + "/healthz").json()["live_sessions"] == 0, "sessions to end")


def _job_status(url: str, job: str) -> dict | None:
    r = httpx.get(f"{url}/v1/jobs/{job}")
    return r.json() if r.status_code == 200 else None


def test_file_jobs_queue_is_bounded_and_each_knows_its_place():
    config = ServerConfig(file_workers=1, max_waiting_jobs=1, max_jobs_per_client=5)
    with serving(config) as (url, app):
        ids = [uuid.uuid4().hex for _ in range(3)]
        results = {}

        def post(i):
            results[i] = httpx.post(url + "/v1/generate", data={"text": "Hello there, one two three."},
                                    headers={"X-Job-Id": ids[i]}, timeout=600)

        first = threading.Thread(target=post, args=(0,))
        first.start()
        _wait(lambda: (_job_status(url, ids[0]) or {}).get("state") == "rendering", "the first job to start")
        second = threading.Thread(target=post, args=(1,))
        second.start()
        waiting = _wait(lambda: _job_status(url, ids[1]), "the second job to queue")
        assert waiting["state"] == "waiting" and waiting["place"] == 1 and waiting["retry_after_s"] >= 1
        post(2)   # the queue holds one: this one is refused at once
        assert results[2].status_code == 503 and int(results[2].headers["Retry-After"]) >= 1
        assert "queue is full" in results[2].json()["detail"]
        first.join()
        second.join()
        assert results[0].status_code == 200 and results[0].headers["X-Queue-Place"] == "0"
        assert results[1].status_code == 200 and results[1].headers["X-Queue-Place"] == "1"


def _raw_post(url: str, fields: dict, headers: dict, cut_at: float = 1.0) -> socket.socket:
    """A multipart POST on a raw socket, sent up to fraction `cut_at` of its body."""
    boundary = uuid.uuid4().hex
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items()) + f"--{boundary}--\r\n".encode()
    host, port = url.split("//")[1].split(":")
    head = (f"POST /v1/generate HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head + body[: int(len(body) * cut_at)])
    return sock


def test_a_render_stops_when_its_client_goes():
    long_text = "This sentence is spoken again and again so that the job runs for a long while. " * 12
    with serving(ServerConfig()) as (url, app):
        job = uuid.uuid4().hex
        sock = _raw_post(url, {"text": long_text}, {"X-Job-Id": job})
        status = _wait(lambda: (s := _job_status(url, job)) and s.get("frames_done", 0) > 0 and s,
                       "the job to render")
        sock.close()
        last = status

        def gone():
            nonlocal last
            s = _job_status(url, job)
            last = s or last
            return s is None

        _wait(gone, "the job to stop")
        assert last["frames_done"] < last["frames_total"], last
        assert httpx.get(url + "/healthz").json()["file_jobs"] == {"running": 0, "waiting": 0}
        assert list(app.state.tmp.iterdir()) == []


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


async def _rude_live(ws_url: str, rng: random.Random) -> None:
    """A live client that goes away at a random point, or stops reading before it does."""
    import websockets

    ws = await websockets.connect(ws_url + "/v1/live", open_timeout=30, max_size=2**22)
    await ws.recv()
    if rng.random() < 0.5:
        await ws.send(json.dumps({"type": "say", "text": "Hello there."}))
    for _ in range(rng.randint(0, 30)):
        await ws.recv()
    if rng.random() < 0.5:
        await asyncio.sleep(rng.uniform(0.2, 1.5))   # not reading: frames wait on the server's side
    ws.transport.abort()


def test_clients_killed_at_random_points_leave_nothing_behind():
    rng = random.Random(18)
    with serving(ServerConfig(max_live=4, max_live_per_client=4)) as (url, app):
        ws_url = url.replace("http", "ws")
        asyncio.run(_rude_live(ws_url, rng))   # warm: the built-in face, models, thread pools
        _wait(lambda: httpx.get(url + "/healthz").json()["live_sessions"] == 0, "the warm-up session to end")
        threads, rss = threading.active_count(), _rss_mb()
        for _ in range(12):   # bounded: each round one rude client of a random kind
            kind = rng.choice(("live", "upload", "job"))
            if kind == "live":
                asyncio.run(_rude_live(ws_url, rng))
            else:
                cut = rng.uniform(0.1, 0.9) if kind == "upload" else 1.0
                sock = _raw_post(url, {"text": "Goodbye now, goodbye."}, {}, cut_at=cut)
                time.sleep(rng.uniform(0.0, 1.0))
                sock.close()
        _wait(lambda: httpx.get(url + "/healthz").json()["live_sessions"] == 0, "live sessions to end")
        _wait(lambda: httpx.get(url + "/healthz").json()["file_jobs"] == {"running": 0, "waiting": 0},
              "file jobs to end")
        _wait(lambda: list(app.state.tmp.iterdir()) == [], "the temp folder to empty")
        _wait(lambda: not _session_threads(), "the sessions' threads to end")
        # the shared pools (asyncio's default executor, the job workers) keep idle threads for
        # reuse, up to their fixed size: what must not happen is growth per client
        assert threading.active_count() <= threads + POOL_HEADROOM, [t.name for t in threading.enumerate()]
        assert _rss_mb() < rss + 150, f"RSS {rss:.0f} -> {_rss_mb():.0f} MB"


def _session_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("talkface-stream", "talkface-recorder"))]
