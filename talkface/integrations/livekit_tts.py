"""A LiveKit Agents TTS with talkface's offline espeak-ng voices (talkface.analysis.speech): no
key, no network, robotic but real speech. For the example agent and tests; any LiveKit TTS works
with the avatar."""
from __future__ import annotations

import asyncio
import uuid

import numpy as np
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, tts

from talkface.analysis.speech import speak

ESPEAK_RATE = 22050   # Hz: espeak-ng's native rate (SpokenText.sample_rate)


class EspeakTTS(tts.TTS):
    """`voice` is an espeak-ng voice ("en", "en-us", "de", ...; `talkface voices` lists them)."""

    def __init__(self, *, voice: str = "en", rate_wpm: int = 165) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=ESPEAK_RATE, num_channels=1)
        self.voice, self.rate_wpm = voice, rate_wpm

    @property
    def provider(self) -> str:
        return "talkface-espeak-ng"

    @property
    def model(self) -> str:
        return self.voice

    def synthesize(self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS):
        return _EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class _EspeakStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine: EspeakTTS = self._tts
        spoken = await asyncio.to_thread(speak, self.input_text, engine.voice, engine.rate_wpm)
        pcm = (np.clip(spoken.samples, -1.0, 1.0) * 32767).astype("<i2")
        output_emitter.initialize(request_id=uuid.uuid4().hex, sample_rate=spoken.sample_rate, num_channels=1,
                                  mime_type="audio/pcm")
        output_emitter.push(pcm.tobytes())
        output_emitter.flush()
