"""`talkface bench --soak --minutes 30 --json F`: mixed traffic against a real `talkface serve`
on loopback, then what it cost the server.

A server process is started on a free loopback port. For `minutes`, clients send file jobs
(text, a few seconds each; sometimes two at once, so the queue and its 503 are used), open
live sessions that come and go (say a line, read frames for a while; some stop reading, some
drop the connection mid-frame), and send bad requests (bad seed, wrong content type, foreign
Host, cross-origin, an image of too many pixels, an unknown portrait). Reported: throughput,
errors by kind, p95 latency per kind, the server's RSS and open file descriptors at start and
end, and the temporary files it left (while running and after exit). Nothing leaves loopback.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

START_TIMEOUT_S = 60.0
WARMUP_S = 5.0
LIVE_CLIENTS = 2     # concurrent live-session loops (all from 127.0.0.1; one more slot for the bad ones)
FILE_CLIENTS = 2     # concurrent file-job loops
TEXTS = ("Hello there.", "This is a soak test of the talking portrait.", "Short line.",
         "The server keeps running while clients come and go.")


@dataclass
class Tally:
    """What the clients saw, by kind of traffic."""

    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latency: dict = field(default_factory=lambda: defaultdict(list))
    frames: int = 0

    def record(self, kind: str, outcome: str, seconds: float | None = None) -> None:
        self.counts[kind] += 1
        if outcome != "ok":
            self.errors[f"{kind}:{outcome}"] += 1
        if seconds is not None:
            self.latency[kind].append(seconds)


def server_usage(pid: int) -> dict:
    """RSS (MB), open file descriptors and threads of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024.0, "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": int(fields["Threads"].strip())}


def big_png() -> bytes:
    """A small file that declares 13000x13000 pixels (the probe's upload)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (13000, 13000)).save(buf, format="PNG")
    return buf.getvalue()


def start_server(port: int, tmp_root: Path, log) -> subprocess.Popen:
    """The server's stderr goes to a file: an undrained pipe fills after a few minutes of
    access-log lines and then blocks the server's event loop on its next write."""
    env = dict(os.environ, TMPDIR=str(tmp_root))
    return subprocess.Popen([sys.executable, "-m", "talkface.cli", "serve", "--port", str(port),
                             "--max-live", str(LIVE_CLIENTS + 1), "--max-live-per-client", str(LIVE_CLIENTS + 1)],
                            env=env, stdout=subprocess.DEVNULL, stderr=log)


async def wait_ready(client, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if (await client.get(url + "/healthz")).status_code == 200:
                return
        except Exception:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not start")


async def file_jobs(client, url: str, tally: Tally, until: float, rng: random.Random) -> None:
    while time.monotonic() < until:
        t0 = time.monotonic()
        try:
            r = await client.post(url + "/v1/generate", data={"text": rng.choice(TEXTS), "seed": str(rng.randint(0, 99))})
            ok = r.status_code == 200 and r.content[4:8] == b"ftyp"
            tally.record("file_job", "ok" if ok else f"http_{r.status_code}", time.monotonic() - t0 if ok else None)
        except Exception as exc:
            tally.record("file_job", type(exc).__name__)
        await asyncio.sleep(rng.uniform(0.0, 2.0))


async def live_sessions(ws_url: str, tally: Tally, until: float, rng: random.Random) -> None:
    import websockets

    while time.monotonic() < until:
        t0 = time.monotonic()
        behaviour = rng.choice(("normal", "normal", "stop_reading", "drop"))
        try:
            async with websockets.connect(ws_url + "/v1/live", max_size=2**22, open_timeout=30) as ws:
                ready = json.loads(await ws.recv())
                if ready.get("type") != "ready":
                    raise RuntimeError("no ready message")
                await ws.send(json.dumps({"type": "say", "text": rng.choice(TEXTS)}))
                first = await _read_frames(ws, rng.uniform(2.0, 10.0), tally)
                if behaviour == "stop_reading":
                    await asyncio.sleep(rng.uniform(1.0, 4.0))   # frames pile up on the server's side
                tally.record("live_session", "ok", first - t0 if first else None)
                if behaviour == "drop":   # gone without a closing handshake
                    ws.transport.abort()
                    continue
        except Exception as exc:
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            tally.record("live_session", f"closed_{code}" if code else type(exc).__name__)
        await asyncio.sleep(rng.uniform(0.0, 1.0))


async def _read_frames(ws, seconds: float, tally: Tally) -> float | None:
    """Read frames for `seconds`; the monotonic time of the first one."""
    first, end = None, time.monotonic() + seconds
    while time.monotonic() < end:
        msg = await asyncio.wait_for(ws.recv(), timeout=10)
        if isinstance(msg, bytes):
            tally.frames += 1
            first = first or time.monotonic()
    return first


def bad_requests(url: str, png: bytes, port: int) -> list[tuple[str, dict, tuple[int, ...]]]:
    """(name, httpx request arguments, the statuses that are right)."""
    return [
        ("bad_seed", dict(method="POST", url=url + "/v1/generate", data={"text": "hi", "seed": "-1"}), (422,)),
        ("wrong_type", dict(method="POST", url=url + "/v1/generate",
                            files={"audio": ("a.txt", b"hello", "text/plain")}), (415,)),
        ("foreign_host", dict(method="POST", url=url + "/v1/generate", data={"text": "hi"},
                              headers={"Host": f"evil.example:{port}"}), (403,)),
        ("cross_origin", dict(method="POST", url=url + "/v1/generate", data={"text": "hi"},
                              headers={"Origin": "http://evil.example"}), (403,)),
        ("huge_image", dict(method="POST", url=url + "/v1/portraits", files={"image": ("big.png", png, "image/png")}),
         (413,)),
        ("garbage_image", dict(method="POST", url=url + "/v1/portraits",
                               files={"image": ("x.png", b"garbage", "image/png")}), (422,)),
    ]


async def bad_traffic(client, url: str, port: int, tally: Tally, until: float, rng: random.Random) -> None:
    import websockets

    requests = bad_requests(url, big_png(), port)
    while time.monotonic() < until:
        name, kwargs, good = rng.choice(requests)
        t0 = time.monotonic()
        try:
            r = await client.request(**kwargs)
            tally.record("bad_request", "ok" if r.status_code in good else f"{name}_{r.status_code}", time.monotonic() - t0)
        except Exception as exc:
            tally.record("bad_request", f"{name}_{type(exc).__name__}")
        try:   # an unknown portrait: accepted, then closed with the policy code
            async with websockets.connect(url.replace("http", "ws") + "/v1/live?portrait=nope") as ws:
                await ws.recv()
            tally.record("bad_live", "not_closed")
        except websockets.ConnectionClosed as exc:
            tally.record("bad_live", "ok" if exc.rcvd and exc.rcvd.code == 1008 else f"code_{exc.rcvd}")
        except Exception as exc:   # e.g. a handshake timeout on a starved machine: counted, not fatal
            tally.record("bad_live", type(exc).__name__)
        await asyncio.sleep(rng.uniform(0.5, 2.0))


def temp_files(tmp_root: Path) -> int:
    """Files and folders the server left in its temp folder (the folder itself not counted)."""
    if not tmp_root.exists():
        return 0
    return sum(len(files) + len(dirs) for _, dirs, files in os.walk(tmp_root)) - len(os.listdir(tmp_root))


async def _traffic(url: str, port: int, minutes: float, pid: int, tmp_root: Path) -> dict:
    import httpx

    rng = random.Random(0)
    tally = Tally()
    async with httpx.AsyncClient(timeout=300) as client:
        await wait_ready(client, url)
        await asyncio.sleep(WARMUP_S)
        start = server_usage(pid)
        t0 = time.monotonic()
        until = t0 + 60 * minutes
        ws_url = url.replace("http", "ws")
        await asyncio.gather(*[file_jobs(client, url, tally, until, rng) for _ in range(FILE_CLIENTS)],
                             *[live_sessions(ws_url, tally, until, rng) for _ in range(LIVE_CLIENTS)],
                             bad_traffic(client, url, port, tally, until, rng))
        elapsed = time.monotonic() - t0
        await asyncio.sleep(WARMUP_S)   # let the last sessions close
        health = (await client.get(url + "/healthz")).json()
    end = server_usage(pid)
    return {"minutes": elapsed / 60, "start": start, "end": end, "health_at_end": health,
            "temp_files_while_running": temp_files(tmp_root), **_figures(tally, elapsed)}


def _figures(tally: Tally, elapsed: float) -> dict:
    p95 = {k: float(np.percentile(v, 95)) for k, v in tally.latency.items() if v}
    return {"requests": dict(tally.counts), "errors_by_kind": dict(tally.errors),
            "throughput_per_min": {k: 60 * n / elapsed for k, n in tally.counts.items()},
            "live_frames_per_s": tally.frames / elapsed, "p95_latency_s": p95}


def run_soak(minutes: float) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp_root = Path(tempfile.mkdtemp(prefix="talkface-soak-"))
    with tempfile.TemporaryFile("w+") as log:
        proc = start_server(port, tmp_root, log)
        try:
            result = asyncio.run(_traffic(f"http://127.0.0.1:{port}", port, minutes, proc.pid, tmp_root))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.seek(0)
        stderr = log.read()
    result["temp_files_after_exit"] = temp_files(tmp_root)
    result["server_stderr_lines"] = [line for line in stderr.splitlines() if line.strip()][-20:]
    import shutil

    shutil.rmtree(tmp_root, ignore_errors=True)
    return result


def run_soak_command(args) -> int:
    result = run_soak(args.minutes)
    s, e = result["start"], result["end"]
    print(f"soak: {result['minutes']:.1f} min of mixed traffic on loopback")
    print(f"  server RSS {s['rss_mb']:.0f} -> {e['rss_mb']:.0f} MB, fds {s['fds']} -> {e['fds']}, "
          f"threads {s['threads']} -> {e['threads']}, temp files left {result['temp_files_while_running']} "
          f"(after exit {result['temp_files_after_exit']})")
    print(f"  requests {result['requests']}; errors {result['errors_by_kind'] or 'none'}")
    print(f"  p95 latency (s) {json.dumps({k: round(v, 2) for k, v in result['p95_latency_s'].items()})}; "
          f"live frames {result['live_frames_per_s']:.1f}/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
