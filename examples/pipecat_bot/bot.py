"""A Pipecat bot with a talking face, all local: type to it in a web page, it answers with
talkface's offline espeak-ng voice, and the portrait speaks the answer over WebRTC.

    talkface serve --port 8000                                   # terminal 1, talkface's venv
    .venv-pipecat/bin/python examples/pipecat_bot/bot.py          # terminal 2, the agent's venv
    open http://127.0.0.1:7860/

Pipeline: typed text -> a rule-based reply (no LLM, no key) -> EspeakTTSService ->
TalkfaceVideoService (frames from `talkface serve`) -> SmallWebRTC output (video + audio).
`--stamp` writes each frame's number into its bottom rows and keeps a trace at /api/trace
(tests/test_pipecat.py and talkface.evaluation.agents_bench use it to time frames end to end).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from aiohttp import web
from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner

from talkface.integrations.client import LiveClient
from talkface.integrations.pipecat import EspeakTTSService, TalkfaceVideoService
from talkface.integrations.pipecat_webrtc import TimedWebRTCTransport

PAGE = Path(__file__).with_name("index.html")
AUDIO_RATE = 24000        # Hz, the rate talkface serve sends
STAMP_BITS = 16           # frame number bits written into the bottom rows with --stamp
STAMP_ROWS = 12           # pixel rows of the stamp
# how often the transport looks for a new picture; each new one is sent once, stamped with the time it
# is handed over (talkface.integrations.pipecat_webrtc), so this bounds how late a picture leaves after its audio
VIDEO_POLL_HZ = 100
# --stock-tracks: aiortc stamps video 1/30 s apart whatever the real rate, so the transport then draws at 30 fps
STOCK_VIDEO_FPS = 30
# the output transport hands audio to the WebRTC track this many 10 ms at a time and, on a barge-in,
# finishes handing over the chunk it holds: 1 (Pipecat's default is 4) lets at most 10 ms of cut speech out
AUDIO_OUT_10MS_CHUNKS = 1
CUT_SPEECH_WINDOW_S = 1.0   # --stamp: speech audio going out this soon after a barge-in counts as cut speech


def reply_to(text: str) -> str:
    """The bot's 'brain': a few rules, so the example needs no model and no key."""
    words = text.lower()
    if any(w in words for w in ("hello", "hi ", "hey")) or words.strip() in ("hi", "hey"):
        return "Hello! I am a talking portrait. Type something and I will answer."
    if "name" in words:
        return "I am a face made by talkface, running on this computer, with no cloud at all."
    if "time" in words:
        return f"It is {datetime.datetime.now():%H:%M} here."
    return f"You said: {text.strip()}"


class RuleBasedReply(FrameProcessor):
    """The user's text (a TranscriptionFrame) -> the bot's answer (a TTSSpeakFrame)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            await self.push_frame(TTSSpeakFrame(reply_to(frame.text)))
        else:
            await self.push_frame(frame, direction)


class _FaceFrameTracer(FrameProcessor):
    """--stamp: passes every frame on; `traced` sees each face frame with its talkface metadata."""

    def __init__(self, trace: list) -> None:
        super().__init__()
        self.trace = trace

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        info = frame.metadata.get("talkface") if isinstance(frame, OutputImageRawFrame) else None
        if info is not None:
            self.traced(frame, info)
        await self.push_frame(frame, direction)

    def traced(self, frame: OutputImageRawFrame, info: dict) -> None:
        raise NotImplementedError


class FrameStamp(_FaceFrameTracer):
    """--stamp: each face frame's number as black/white cells in its bottom rows, and a trace."""

    def traced(self, frame: OutputImageRawFrame, info: dict) -> None:
        w, h = frame.size
        rgb = np.frombuffer(frame.image, np.uint8).reshape(h, w, 3).copy()
        cell = w // STAMP_BITS
        for bit in range(STAMP_BITS):
            rgb[h - STAMP_ROWS:, bit * cell:(bit + 1) * cell] = 255 if (info["index"] >> bit) & 1 else 0
        frame.image = rgb.tobytes()
        self.trace.append({**info, "emitted": time.time()})


class FrameReleased(_FaceFrameTracer):
    """--stamp, after the output transport: when each picture left its queue for the video track
    (with `sync_with_audio`, the moment its own audio starts going out), and after each barge-in
    the last moment speech audio went to the audio track (`speech_out`: Unix s per interrupt)."""

    def __init__(self, trace: list, interrupts: list[float], speech_out: dict[int, float]) -> None:
        super().__init__(trace)
        self.interrupts, self.speech_out = interrupts, speech_out

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TTSAudioRawFrame) and self.interrupts:
            if time.time() - self.interrupts[-1] < CUT_SPEECH_WINDOW_S:
                self.speech_out[len(self.interrupts) - 1] = time.time()
        await super().process_frame(frame, direction)

    def traced(self, frame: OutputImageRawFrame, info: dict) -> None:
        for entry in reversed(self.trace[-50:]):
            if entry["index"] == info["index"]:
                entry["released"] = time.time()
                break


class Bot:
    """One WebRTC session at a time (a new page load replaces the previous one)."""

    def __init__(self, talkface_url: str, stamp: bool, sync: bool = True, timed: bool = True) -> None:
        self.talkface_url, self.stamp, self.sync, self.timed = talkface_url, stamp, sync, timed
        self.worker: PipelineWorker | None = None
        self.runner_task: asyncio.Task | None = None
        self.trace: list = []
        self.interrupts: list[float] = []
        self.speech_out: dict[int, float] = {}   # interrupt's number -> when its last cut speech audio went out
        self.size, self.fps = 512, 25.0

    async def probe(self) -> None:
        """The face's frame size and rate, from the server itself."""
        async with await LiveClient.connect(self.talkface_url) as face:
            self.size, self.fps = face.ready.size, face.ready.fps

    async def start(self, connection: SmallWebRTCConnection) -> None:
        await self.stop()
        params = TransportParams(audio_in_enabled=False, audio_out_enabled=True, audio_out_sample_rate=AUDIO_RATE,
                                 audio_out_10ms_chunks=AUDIO_OUT_10MS_CHUNKS, video_out_enabled=True,
                                 video_out_is_live=not self.sync, video_out_width=self.size, video_out_height=self.size,
                                 video_out_framerate=round(self.fps) if not self.sync else
                                 VIDEO_POLL_HZ if self.timed else STOCK_VIDEO_FPS)
        # SmallWebRTCTransport with true RTP timestamps, so the browser's lip sync lines sound and picture up
        transport = (TimedWebRTCTransport if self.timed else SmallWebRTCTransport)(connection, params)
        stages = [transport.input(), RuleBasedReply(), EspeakTTSService(sample_rate=AUDIO_RATE),
                  TalkfaceVideoService(self.talkface_url, sync_with_audio=self.sync)]
        self.trace.clear()
        self.interrupts.clear()
        self.speech_out.clear()
        stages += [FrameStamp(self.trace)] if self.stamp else []
        tail = [FrameReleased(self.trace, self.interrupts, self.speech_out)] if self.stamp else []
        worker = PipelineWorker(Pipeline(stages + [transport.output()] + tail),
                                params=PipelineParams(audio_out_sample_rate=AUDIO_RATE), idle_timeout_secs=None,
                                enable_rtvi=False)

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, _client):
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        self.worker, self.runner_task = worker, asyncio.create_task(runner.run())

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.cancel()
            await asyncio.wait({self.runner_task}, timeout=5)
            self.worker = self.runner_task = None

    async def say(self, text: str) -> None:
        if self.worker is not None:   # typing while the face talks is a barge-in, as speaking would be
            await self.worker.queue_frame(InterruptionFrame())
            await self.worker.queue_frame(TranscriptionFrame(text, "user", datetime.datetime.now().isoformat()))

    async def interrupt(self) -> None:
        """The user barged in (a voice bot's VAD would do this when the user starts to speak)."""
        if self.worker is not None:
            self.interrupts.append(time.time())
            await self.worker.queue_frame(InterruptionFrame())


def one_media_stream(sdp: str) -> str:
    """Put the answer's audio and video tracks in one media stream (one msid): the browser then
    plays them in sync (aiortc gives each track a stream of its own)."""
    ids = re.findall(r"^a=msid:(\S+) ", sdp, flags=re.M)
    return re.sub(r"^a=msid:\S+ ", f"a=msid:{ids[0]} ", sdp, flags=re.M) if ids else sdp


def make_app(bot: Bot) -> web.Application:
    async def index(_request):
        return web.FileResponse(PAGE)

    async def offer(request):
        data = await request.json()
        connection = SmallWebRTCConnection()
        await connection.initialize(sdp=data["sdp"], type=data["type"])
        await bot.start(connection)
        answer = connection.get_answer()
        return web.json_response({**answer, "sdp": one_media_stream(answer["sdp"])})

    async def say(request):
        text = str((await request.json()).get("text", "")).strip()[:500]
        if not text:
            return web.json_response({"error": "empty text"}, status=400)
        await bot.say(text)
        return web.json_response({"ok": True, "at": time.time()})

    async def interrupt(_request):
        await bot.interrupt()
        return web.json_response({"ok": True, "at": time.time()})

    async def trace(_request):
        return web.Response(text=json.dumps({"frames": bot.trace, "interrupts": bot.interrupts,
                                             "speech_out": [bot.speech_out.get(i) for i in range(len(bot.interrupts))], "fps": bot.fps,
                                             "size": bot.size, "stamp_bits": STAMP_BITS, "stamp_rows": STAMP_ROWS}),
                            content_type="application/json")

    app = web.Application()
    app.add_routes([web.get("/", index), web.post("/api/offer", offer), web.post("/api/say", say),
                    web.post("/api/interrupt", interrupt), web.get("/api/trace", trace)])
    app.on_shutdown.append(lambda _app: bot.stop())
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--talkface", default="ws://127.0.0.1:8000/v1/live", help="the talkface serve live URL")
    p.add_argument("--host", default="127.0.0.1", help="address of this page; default 127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--stamp", action="store_true", help="stamp frame numbers and keep a trace (tests, benchmark)")
    p.add_argument("--live-images", action="store_true",
                   help="send pictures on their own clock (video_out_is_live) instead of with their audio")
    p.add_argument("--stock-tracks", action="store_true",
                   help="SmallWebRTC's own output tracks (synthetic video clock), for comparison")
    args = p.parse_args(argv)
    bot = Bot(args.talkface, args.stamp, not args.live_images, not args.stock_tracks)
    try:
        asyncio.run(bot.probe())
    except OSError as exc:
        print(f"pipecat_bot: error: cannot reach talkface serve at {args.talkface}: {exc}", file=sys.stderr)
        return 2
    print(f"pipecat_bot: open http://{args.host}:{args.port}/ (face {bot.size}px at {bot.fps:g} fps)", file=sys.stderr)
    web.run_app(make_app(bot), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
