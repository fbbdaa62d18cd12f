"""An asyncio client of a `talkface serve` live session (`WS /v1/live`, docs/streaming.md).

Light on purpose: it needs numpy and websockets (and Pillow for `LiveFrame.image`), never
mediapipe, OpenCV or the engine, so it runs inside a voice agent's own environment while the
renderer runs in the talkface server's process.

    async with await LiveClient.connect("ws://127.0.0.1:8000/v1/live") as face:
        await face.push_audio(pcm_int16, 24000)    # bytes or an int16 array, any chunk size
        await face.end_of_speech()
        async for frame in face:                  # one per video frame, at the server's frame rate
            frame.image, frame.audio              # RGB (H, W, 3) uint8; the int16 PCM that plays with it

| call | |
|---|---|
| `LiveClient.connect(url, portrait="builtin", token=None)` | open a session; waits for the server's `ready` (`client.ready`) |
| `push_audio(pcm, sample_rate)` | speech for the face: int16 bytes or array, mono; announces a new rate first |
| `end_of_speech()` | the utterance is complete: its tail plays out, then the face idles |
| `interrupt()` | barge-in: queued speech is dropped; the next frame is idle with silent audio |
| `controls(**fields)` | emotion, emotion_strength, gaze, head_pose, head_distance, motion_scale |
| `ping()` | ask for the stream's stats; the answer arrives while frames are being read (`client.pong`) |
| `async for frame in client` | `LiveFrame`s until the session ends; raises `LiveClosed` if the server ends it |
| `close()` | end the session |
"""
from __future__ import annotations

import asyncio
import io
import json
import struct
import time
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np

from talkface.errors import TalkfaceError
from talkface.live import protocol as proto

CONNECT_TIMEOUT_S = 20.0     # handshake plus the server's `ready` (it may load the portrait first)
MAX_FRAME_BYTES = 1 << 22    # one packed frame: a JPEG plus 1/fps of PCM, far below this


class LiveClosed(TalkfaceError):
    """The server refused or ended the session; `code` is the WebSocket close code."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"the talkface live session closed (code {code}): {reason or 'no reason given'}")
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class Ready:
    """The server's first message: the session's id and its media formats."""

    session: str
    fps: float
    size: int           # frame width and height in pixels
    audio_rate: int     # Hz of the PCM in every LiveFrame
    max_seconds: float  # the most speech that may be queued


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """One video frame and the audio that plays with it, as the server sent it."""

    index: int            # frame number since the session started
    pts: float            # seconds on the session's timeline: this frame shows [pts, pts + 1/fps)
    sent: float           # Unix time the server sent it
    received: float       # Unix time this client read it
    speech: bool          # pushed speech plays in this frame (otherwise idle, silent)
    segment_end: bool     # an utterance ends in this frame
    repeated: bool        # the server fell behind and skipped this picture: `jpeg` is the previous one
    jpeg: bytes           # the picture as JPEG (empty only if the very first frame was skipped)
    audio: np.ndarray     # int16 mono PCM at `audio_rate`, exactly this frame's slot
    audio_rate: int

    @cached_property
    def image(self) -> np.ndarray:
        """The picture as an (H, W, 3) uint8 RGB array (decoded with Pillow on first use)."""
        from PIL import Image

        with Image.open(io.BytesIO(self.jpeg)) as picture:
            return np.asarray(picture.convert("RGB"))


def parse_frame(data: bytes, previous_jpeg: bytes, audio_rate: int, received: float) -> LiveFrame:
    """One binary message from the server -> a LiveFrame (a skipped picture repeats `previous_jpeg`)."""
    if len(data) < proto.FRAME_HEADER_SIZE:
        raise ValueError(f"a frame message of {len(data)} bytes is shorter than its header")
    magic, index, pts, sent, flags, n_jpeg, n_pcm = struct.unpack_from(proto.FRAME_HEADER, data)
    if magic != proto.FRAME_MAGIC or proto.FRAME_HEADER_SIZE + n_jpeg + n_pcm != len(data):
        raise ValueError("not a talkface frame message (bad magic or lengths)")
    start = proto.FRAME_HEADER_SIZE
    jpeg = bytes(data[start:start + n_jpeg]) or previous_jpeg
    audio = np.frombuffer(data, dtype="<i2", count=n_pcm // 2, offset=start + n_jpeg).astype(np.int16)
    return LiveFrame(index, pts, sent, received, bool(flags & proto.FLAG_SPEECH), bool(flags & proto.FLAG_SEGMENT_END),
                     bool(flags & proto.FLAG_REPEATED), jpeg, audio, audio_rate)


def live_url(url: str, portrait: str, token: str | None) -> str:
    """`url` with the portrait (and token) in its query; http(s) becomes ws(s)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"a live URL starts with ws:// or wss://, got {url!r}")
    query = {"portrait": portrait, **({"token": token} if token else {})}
    extra = f"&{parts.query}" if parts.query else ""
    return urlunsplit((scheme, parts.netloc, parts.path or "/v1/live", urlencode(query) + extra, ""))


@dataclass
class _State:
    rate: int = proto.DEFAULT_CLIENT_RATE   # the PCM rate the server currently expects
    last_jpeg: bytes = b""
    errors: list[str] = field(default_factory=list)
    pong: dict | None = None


class LiveClient:
    """One live session. Not thread-safe: use it from one event loop."""

    def __init__(self, ws, ready: Ready) -> None:
        self._ws, self.ready, self._state = ws, ready, _State()

    @classmethod
    async def connect(cls, url: str = "ws://127.0.0.1:8000/v1/live", portrait: str = "builtin",
                      token: str | None = None, timeout: float = CONNECT_TIMEOUT_S) -> LiveClient:
        """Open a session and wait for the server's `ready`; raises LiveClosed if it is refused."""
        import websockets

        ws = await asyncio.wait_for(websockets.connect(live_url(url, portrait, token), max_size=MAX_FRAME_BYTES,
                                                       compression=None), timeout)
        try:
            first = await asyncio.wait_for(ws.recv(), timeout)
        except websockets.ConnectionClosed as exc:
            raise _closed(exc) from None
        data = json.loads(first) if isinstance(first, str) else {}
        if data.get("type") != "ready":
            await ws.close()
            raise LiveClosed(None, f"expected a ready message, got {str(first)[:80]!r}")
        return cls(ws, Ready(data["session"], float(data["fps"]), int(data["size"]), int(data["audio_rate"]),
                             float(data["max_seconds"])))

    @property
    def errors(self) -> list[str]:
        """Error messages the server sent for this session's bad messages (the session went on)."""
        return list(self._state.errors)

    @property
    def pong(self) -> dict | None:
        """The latest answer to `ping()`: queued seconds and the stream's stats."""
        return self._state.pong

    async def push_audio(self, pcm: bytes | np.ndarray, sample_rate: int) -> None:
        """Queue speech: int16 mono PCM (bytes, or an int16 array) at `sample_rate` Hz."""
        if isinstance(pcm, np.ndarray):
            if pcm.dtype != np.int16:
                raise ValueError(f"push_audio takes int16 PCM, got an array of {pcm.dtype}")
            pcm = pcm.astype("<i2").tobytes()
        if sample_rate != self._state.rate:
            await self._send({"type": "audio_format", "rate": int(sample_rate)})
            self._state.rate = sample_rate
        if pcm:
            await self._ws.send(bytes(pcm))

    async def end_of_speech(self) -> None:
        await self._send({"type": "end_of_speech"})

    async def interrupt(self) -> None:
        await self._send({"type": "interrupt"})

    async def controls(self, **fields) -> None:
        """Any of proto.CONTROL_FIELDS, e.g. controls(emotion="happy", emotion_strength=0.8)."""
        unknown = set(fields) - set(proto.CONTROL_FIELDS)
        if unknown:
            raise ValueError(f"unknown control(s) {', '.join(sorted(unknown))}; known: {', '.join(proto.CONTROL_FIELDS)}")
        await self._send({"type": "controls", **fields})

    async def ping(self) -> None:
        await self._send({"type": "ping"})

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> LiveClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def __aiter__(self):
        import websockets

        try:
            async for message in self._ws:
                if isinstance(message, str):
                    self._on_text(message)
                    continue
                frame = parse_frame(message, self._state.last_jpeg, self.ready.audio_rate, time.time())
                self._state.last_jpeg = frame.jpeg
                yield frame
        except websockets.ConnectionClosedError as exc:   # closed with a code other than 1000/1001
            raise _closed(exc) from None

    def _on_text(self, message: str) -> None:
        data = json.loads(message)
        if data.get("type") == "error":
            self._state.errors.append(str(data.get("message")))
        elif data.get("type") == "pong":
            self._state.pong = data

    async def _send(self, message: dict) -> None:
        await self._ws.send(json.dumps(message))


def _closed(exc) -> LiveClosed:
    rcvd = getattr(exc, "rcvd", None)
    return LiveClosed(getattr(rcvd, "code", None), getattr(rcvd, "reason", "") or str(exc))
