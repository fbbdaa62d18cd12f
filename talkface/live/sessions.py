"""Live sessions: admission up to capacity (server-wide and per client, booked atomically on the
event loop), and one `LiveSession` per WebSocket: frames out, audio, text and controls in."""
from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from talkface.live import protocol as proto
from talkface.live.config import ServerConfig
from talkface.live.recorder import Recorder

SEND_TIMEOUT_S = 10.0   # a client that has not taken a frame for this long is closed (no growing buffer)
RETRY_LIVE_S = 30       # what a refused client is told to wait
STRAIN_WINDOW_S = 10.0  # a running session that dropped a frame this recently: no new session now


class Refused(Exception):
    """A WebSocket the server will not serve: closed with `code` and this reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(eq=False)
class Slot:
    id: str
    client: str


class SessionRegistry:
    """Booked slots and running sessions. Runs on the event loop only: `reserve` checks and
    books with no await in between, so simultaneous handshakes cannot get past the cap."""

    def __init__(self, capacity: int, per_client: int, learn: bool = True) -> None:
        self.capacity, self.per_client = capacity, per_client
        self.learn = learn   # refuse while running sessions drop frames (off when the operator set the cap)
        self.slots: dict[str, Slot] = {}
        self.sessions: dict[str, LiveSession] = {}
        self._per_client: Counter[str] = Counter()

    def reserve(self, client: str) -> Slot:
        if len(self.slots) >= self.capacity:
            raise Refused(proto.CLOSE_TRY_LATER, f"the server is at capacity ({self.capacity} live sessions); "
                                                 f"try again in {RETRY_LIVE_S} s")
        if self.learn and self.strained():
            raise Refused(proto.CLOSE_TRY_LATER, "the running live sessions are falling behind (the machine is "
                                                 f"busier than measured at start); try again in {RETRY_LIVE_S} s")
        if self._per_client[client] >= self.per_client:
            raise Refused(proto.CLOSE_TRY_LATER, f"this client already has {self._per_client[client]} live "
                                                 f"sessions (the limit per client is {self.per_client})")
        slot = Slot(uuid.uuid4().hex[:16], client)
        self.slots[slot.id] = slot
        self._per_client[client] += 1
        return slot

    def strained(self) -> bool:
        """A running session dropped a frame within STRAIN_WINDOW_S: the measured capacity is
        not there now (other load on the machine), so another session would make it worse."""
        now = time.monotonic()
        return any(s.stream.last_drop is not None and now - s.stream.last_drop < STRAIN_WINDOW_S
                   for s in self.sessions.values())

    def release(self, slot: Slot) -> None:
        if self.slots.pop(slot.id, None) is None:
            return
        self.sessions.pop(slot.id, None)
        self._per_client[slot.client] -= 1
        if self._per_client[slot.client] <= 0:
            del self._per_client[slot.client]

    def __len__(self) -> int:
        return len(self.slots)


class LiveSession:
    """One talking face on one WebSocket. A bad message gets an error message back; a bug ends
    this session with close code 1011 and leaves the others running."""

    def __init__(self, sid: str, ws, face, config: ServerConfig, folder: Path, pool=None) -> None:
        from talkface.engine import GenerateOptions
        from talkface.live.stream import AvatarStream

        self.id, self.ws, self.config, self.folder = sid, ws, config, folder
        self.stream = AvatarStream(face, GenerateOptions(fps=config.fps), audio_rate=proto.LIVE_AUDIO_RATE,
                                   jpeg_quality=80, max_queue_s=config.max_seconds, pool=pool)
        self.size = face.portrait.size
        self.recorder = self.new_recorder()
        self.rate = proto.DEFAULT_CLIENT_RATE

    def new_recorder(self) -> Recorder:
        return Recorder(self.folder, self.size, self.config.fps, proto.LIVE_AUDIO_RATE,
                        int(self.config.max_record_seconds * self.config.fps))

    def swap_recorder(self) -> Recorder:
        """The recording so far (to finish and send), and a fresh one from here on."""
        old, self.recorder = self.recorder, self.new_recorder()
        return old

    async def run(self) -> None:
        sender = asyncio.ensure_future(self._send_frames())
        try:
            await self.ws.send_text(proto.ready_message(self.id, self.config.fps, self.size, self.config.max_seconds))
            await self._receive(sender)
        finally:   # nothing awaited here: a cancelled handler still cleans up completely
            sender.cancel()
            self.stream.close()
            asyncio.get_running_loop().run_in_executor(None, self.recorder.discard)

    async def _receive(self, sender: asyncio.Future) -> None:
        from starlette.websockets import WebSocketDisconnect

        receiver = asyncio.ensure_future(self.ws.receive())
        try:
            while True:
                await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
                if sender.done() or receiver.result()["type"] == "websocket.disconnect":
                    return
                try:
                    reply = await self.handle(receiver.result())
                except Exception as exc:   # a bug: this session ends with a reason, the others go on
                    await self._fail(exc)
                    return
                if reply is not None:
                    await self.ws.send_text(reply)
                receiver = asyncio.ensure_future(self.ws.receive())
        except WebSocketDisconnect:
            return
        finally:
            receiver.cancel()

    async def handle(self, msg: dict) -> str | None:
        """One client message -> the text to send back (an error or a pong), or None."""
        from talkface.live.stream import StreamFull

        if msg.get("bytes") is not None:
            try:
                self.stream.push_audio(msg["bytes"], self.rate)
            except (StreamFull, ValueError) as exc:
                return proto.error_message(str(exc))
            return None
        try:
            return await self._apply(proto.parse_message(msg.get("text"), self.config.max_text_chars))
        except proto.ProtocolError as exc:
            return proto.error_message(str(exc))

    async def _apply(self, message: proto.Message) -> str | None:
        from talkface.motion.controls import ControlError, ControlTrack

        if isinstance(message, proto.AudioFormat):
            self.rate = message.rate
        elif isinstance(message, proto.EndOfSpeech):
            self.stream.end_of_speech()
        elif isinstance(message, proto.Interrupt):
            self.stream.interrupt()
        elif isinstance(message, proto.SetControls):
            try:
                self.stream.set_controls(ControlTrack(base=proto.controls_from_fields(**message.fields)))
            except (ControlError, TypeError) as exc:
                raise proto.ProtocolError(f"controls: {exc}") from None
        elif isinstance(message, proto.Say):
            await self._say(message)
        elif isinstance(message, proto.Ping):
            return proto.pong_message(self.stream.queued_seconds, self.stream.stats)
        return None

    async def _say(self, message: proto.Say) -> None:
        from talkface.analysis.speech import SpeechError, speak
        from talkface.live.stream import StreamFull

        loop = asyncio.get_running_loop()
        try:
            spoken = await loop.run_in_executor(None, speak, message.text, message.voice)
            await loop.run_in_executor(None, self.stream.push_audio, spoken.samples, spoken.sample_rate)
        except (SpeechError, StreamFull, ValueError) as exc:
            raise proto.ProtocolError(f"say: {exc}") from None
        self.stream.end_of_speech()

    async def _send_frames(self) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            async for frame in self.stream:
                self.recorder.add(frame)
                await asyncio.wait_for(self.ws.send_bytes(proto.pack_frame(frame)), SEND_TIMEOUT_S)
        except (asyncio.CancelledError, WebSocketDisconnect):
            raise
        except asyncio.TimeoutError:
            await self._close(proto.CLOSE_TOO_SLOW, f"the client took no frame for {SEND_TIMEOUT_S:g} s")
        except Exception as exc:   # a bug: tell this client and end its session, never the server
            await self._fail(exc)

    async def _fail(self, exc: Exception) -> None:
        print(f"talkface: live session {self.id} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        await self._close(proto.CLOSE_INTERNAL, f"internal error in this session ({type(exc).__name__})")

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code=code, reason=reason)
        except Exception:   # the connection is already gone
            pass
