"""A talking face for Pipecat: `TalkfaceVideoService`, a frame processor placed after the TTS.

    pipeline = Pipeline([transport.input(), brain, tts,
                         TalkfaceVideoService("ws://127.0.0.1:8000/v1/live"),
                         transport.output()])

It sends the TTS audio to a `talkface serve` process (`WS /v1/live`) and emits, at the
server's frame rate, each rendered picture (`OutputImageRawFrame`, RGB, `sync_with_audio`)
followed by the audio that plays with it (`TTSAudioRawFrame` while speech plays,
`OutputAudioRawFrame` silence while the face idles: blinks, breathing, glances). The output
transport shows each picture when the audio before it has been sent, so lips and sound stay
together. An `InterruptionFrame` (the user barged in) drops the queued speech at the server
and every speech frame still in flight; `TTSStoppedFrame` ends the utterance (held back until
the frame that plays its last sample, so "bot stopped speaking" comes when it really stops).

Why a second process: the renderer is CPU-bound (about 40% of a core per face) and would
stall the agent's event loop, and talkface's face models pin protobuf<5 while Pipecat needs
protobuf>=5 (docs/pipecat.md). Written for pipecat-ai==1.14.0 (requirements-pipecat.txt).

Each emitted image carries `metadata["talkface"]`: the frame's `index`, `pts`, `speech`, the
server's send time `sent` and this process's `received` (Unix s), and `tts_entered`, the Unix times at which the TTS chunks whose first sample plays in this frame
entered this processor (the start of a glass-to-glass measurement).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from talkface.integrations.client import LiveClient, LiveFrame

PIPECAT_VERSION = "1.14.0"   # the release this module is written and tested against
TTS_CHUNK_S = 0.1            # EspeakTTSService hands its speech on in chunks this long, as a streaming TTS does
TTS_STOP_AFTER_S = 0.3       # TTSStoppedFrame after this long without more text (Pipecat's default is 3 s)
# emitted audio not yet played past this many frame periods: idle frames are skipped to catch up. In
# steady state a frame arrives while at most the previous one's audio is still going out (one period);
# more is a backlog left by a stall (the transport filled the gap with silence, then the server's catch-up
# burst queued behind it), which delays every later picture and sound until idle frames are skipped.
MAX_BACKLOG_PERIODS = 1.25
# after an interrupt, speech frames are the old utterance's (rendered before the server saw the interrupt)
# until an idle frame comes, or, once the next answer's audio has been sent, until this many frame periods
# have passed: the next answer can start straight away, with no idle frame in between
STALE_PERIODS = 2.5


@dataclass
class _Utterance:
    """Where the pushed speech is on the face's timeline, for the frames' `tts_entered` times."""

    pushed_s: float = 0.0                                      # speech pushed since the utterance began
    entered: deque = field(default_factory=deque)              # (offset s, Unix time) per TTS chunk
    speech_frames: int = 0                                     # speech frames emitted in this utterance


class TalkfaceVideoService(FrameProcessor):
    """Pipecat processor: TTS audio in, the talking face's video and in-sync audio out."""

    def __init__(self, url: str = "ws://127.0.0.1:8000/v1/live", *, portrait: str = "builtin",
                 token: str | None = None, controls: dict | None = None, sync_with_audio: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._sync_with_audio = sync_with_audio
        self._url, self._portrait, self._token, self._controls = url, portrait, token, controls or {}
        self._client: LiveClient | None = None
        self._pump_task: asyncio.Task | None = None
        self._held_stops: deque[TTSStoppedFrame] = deque()
        self._interrupted_at: float | None = None   # monotonic time of the last interrupt, while dropping
        self._fresh_speech = False   # TTS audio was sent since that interrupt
        self._utterance = _Utterance()
        self._queued = _Utterance()   # the next utterance when one starts while another still plays
        self._played_until = 0.0      # monotonic time at which the audio emitted so far has played

    @property
    def ready(self):
        """The server's session description (fps, size, audio_rate), once started."""
        return self._client.ready if self._client else None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            await self._start()
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            await self._interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._push_speech(frame)          # re-emitted in sync with the face's frames
        elif isinstance(frame, TTSStoppedFrame) and direction == FrameDirection.DOWNSTREAM:
            self._held_stops.append(frame)
            if self._client:
                await self._client.end_of_speech()
        else:
            await self.push_frame(frame, direction)

    async def _start(self) -> None:
        if self._client is not None:
            return
        self._client = await LiveClient.connect(self._url, self._portrait, self._token)
        if self._controls:
            await self._client.controls(**self._controls)
        self._pump_task = self.create_task(self._pump())

    async def _stop(self) -> None:
        if self._pump_task is not None:
            await self.cancel_task(self._pump_task)
            self._pump_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _interrupt(self) -> None:
        self._held_stops.clear()
        self._utterance, self._queued = _Utterance(), _Utterance()
        self._played_until = 0.0      # the transport drops its queued audio on an interruption
        if self._client is not None:
            self._interrupted_at, self._fresh_speech = time.monotonic(), False
            await self._client.interrupt()

    async def _push_speech(self, frame: TTSAudioRawFrame) -> None:
        if self._client is None or not frame.audio:
            return
        pcm = np.frombuffer(frame.audio, np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        target = self._queued if self._held_stops else self._utterance
        target.entered.append((target.pushed_s, time.time()))
        target.pushed_s += len(pcm) / frame.sample_rate
        self._fresh_speech = True
        await self._client.push_audio(pcm, frame.sample_rate)

    async def _pump(self) -> None:
        async for live in self._client:
            if not self._stale(live):
                await self._emit(live)

    def _stale(self, live: LiveFrame) -> bool:
        """A speech frame of the utterance an interrupt cut (see STALE_PERIODS)."""
        if self._interrupted_at is None:
            return False
        waited = time.monotonic() - self._interrupted_at
        if not live.speech or (self._fresh_speech and waited > STALE_PERIODS / self._client.ready.fps):
            self._interrupted_at = None
            return False
        return True

    def _keeps_up(self, live: LiveFrame) -> bool:
        """Account for this frame's audio; False for an idle frame while the emitted audio runs more
        than MAX_BACKLOG_PERIODS ahead of real time (after a stall the server sends a burst):
        skipping idle frames, never speech, brings the face back to live."""
        now = time.monotonic()
        if not live.speech and self._played_until - now > MAX_BACKLOG_PERIODS / self._client.ready.fps:
            return False
        self._played_until = max(self._played_until, now) + len(live.audio) / live.audio_rate
        return True

    async def _emit(self, live: LiveFrame) -> None:
        if not self._keeps_up(live):
            await self._end_utterance(live)
            return
        rgb = await asyncio.to_thread(lambda: live.image)
        image = OutputImageRawFrame(image=rgb.tobytes(), size=(rgb.shape[1], rgb.shape[0]), format="RGB")
        image.sync_with_audio = self._sync_with_audio
        image.metadata["talkface"] = {"index": live.index, "pts": live.pts, "speech": live.speech, "sent": live.sent,
                                      "received": live.received, "tts_entered": self._entered_in(live)}
        kind = TTSAudioRawFrame if live.speech else OutputAudioRawFrame
        await self.push_frame(image)
        await self.push_frame(kind(audio=live.audio.tobytes(), sample_rate=live.audio_rate, num_channels=1))
        await self._end_utterance(live)

    async def _end_utterance(self, live: LiveFrame) -> None:
        """The utterance is over when its last sample plays, or when the face idles after end_of_speech."""
        if live.segment_end or (self._held_stops and not live.speech and self._utterance.speech_frames):
            self._utterance, self._queued = self._queued, _Utterance()
            if self._held_stops:
                await self.push_frame(self._held_stops.popleft())

    def _entered_in(self, live: LiveFrame) -> list[float]:
        """Entry times of the TTS chunks whose first sample plays in this (speech) frame."""
        if not live.speech:
            return []
        u = self._utterance
        u.speech_frames += 1
        end_s = u.speech_frames / self._client.ready.fps
        times = []
        while u.entered and u.entered[0][0] < end_s:
            times.append(u.entered.popleft()[1])
        return times


class EspeakTTSService(TTSService):
    """Pipecat TTS with talkface's offline espeak-ng voices (talkface.analysis.speech): no key, no
    network. Robotic, but real speech; `voice` is an espeak-ng voice name ("en", "en-us", "de", ...),
    also settable at run time (`TTSUpdateSettingsFrame`); the voice fixes the language, there is no model."""

    def __init__(self, *, voice: str = "en", **kwargs) -> None:
        # every settings field given (None where unsupported): Pipecat logs an error for any left unset
        super().__init__(push_start_frame=True, push_stop_frames=True, stop_frame_timeout_s=TTS_STOP_AFTER_S,
                         settings=TTSSettings(model=None, voice=voice, language=None), **kwargs)

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str):
        from talkface.analysis.speech import SpeechError, speak

        try:
            spoken = await asyncio.to_thread(speak, text, self._settings.voice)
        except SpeechError as exc:
            yield ErrorFrame(error=f"espeak-ng: {exc}")
            return
        pcm = (np.clip(spoken.samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        step = 2 * round(spoken.sample_rate * TTS_CHUNK_S)

        async def chunks():
            for start in range(0, len(pcm), step):
                yield pcm[start:start + step]

        await self.stop_ttfb_metrics()
        async for frame in self._stream_audio_frames_from_iterator(chunks(), in_sample_rate=spoken.sample_rate,
                                                                   context_id=context_id):
            yield frame
