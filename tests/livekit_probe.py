"""Drives TalkfaceVideoGenerator through livekit-agents' own avatar stack, without a LiveKit server.

Run by tests/test_livekit.py with the agent venv's Python (`.venv-livekit/bin/python`):

    python tests/livekit_probe.py WS_URL OUT_DIR

The real pieces: `QueueAudioOutput` (the agent's AudioOutput and the runner's AudioReceiver),
`AvatarRunner` (reading audio, forwarding frames, playback notifications, clear_buffer), its
`rtc.AVSynchronizer`, `rtc.AudioSource` / `rtc.VideoSource` (libwebrtc, via livekit's FFI), and
local tracks read back with `rtc.VideoStream` / `rtc.AudioStream`. The one step replaced is the
runner's `_publish_track`, which needs a server: here it makes the same local tracks from the
same sources and reads them, instead of publishing them to a room.

It writes OUT_DIR/record.json (timings, flags, audio levels) and OUT_DIR/video/NNNN.jpg (every
frame the VideoStream delivered), for the test to analyse in talkface's own environment.
"""
from __future__ import annotations

import asyncio
import faulthandler
import json
import sys
import time
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarRunner, QueueAudioOutput
from PIL import Image

from talkface.integrations.livekit import TalkfaceVideoGenerator
from talkface.integrations.livekit_tts import EspeakTTS
from talkface.integrations.livekit_worker import Launcher, WorkerConfig, start_runner

FIRST = "Hello there. I am a talking portrait."
SECOND = "This sentence is long, and it will be cut off in the middle by the user talking."
CUT_AFTER_S = 0.8       # of the second utterance's playback
STUCK_S = 75


class Recorder:
    """Everything the test needs, stamped with time.perf_counter()."""

    def __init__(self, out: Path) -> None:
        self.out, self.t0 = out, time.perf_counter()
        self.gen: list[list] = []     # what the generator yielded: [t, kind, rms or 0]
        self.frames: list[list] = []  # the server's frames: [t, index, pts, speech, segment_end, repeated]
        self.video: list[list] = []   # what the VideoStream delivered: [t, timestamp_us]
        self.audio: list[list] = []   # what the AudioStream delivered: [t, samples, rms]
        self.gen_pcm: list[np.ndarray] = []
        self.out_pcm: list[np.ndarray] = []
        self.images = True            # write every frame's picture (the benchmark does not)
        self.events: dict[str, list[float]] = {}
        for folder in ("video", "gen"):
            (out / folder).mkdir(parents=True, exist_ok=True)

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def event(self, name: str, value: float | None = None) -> None:
        self.events.setdefault(name, []).append(self.now() if value is None else value)

    def save(self, info: dict) -> None:
        record = dict(gen=self.gen, frames=self.frames, video=self.video, audio=self.audio, events=self.events, **info)
        (self.out / "record.json").write_text(json.dumps(record))
        np.save(self.out / "gen_pcm.npy", np.concatenate(self.gen_pcm))
        np.save(self.out / "out_pcm.npy", np.concatenate(self.out_pcm))


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


class RecordingGenerator(TalkfaceVideoGenerator):
    """The real generator; only notes what it yields and when."""

    recorder: Recorder

    async def _frames(self):
        async for item in super()._frames():
            if isinstance(item, rtc.AudioFrame):
                pcm = np.frombuffer(item.data, np.int16).copy()
                self.recorder.gen_pcm.append(pcm)
                self.recorder.gen.append([self.recorder.now(), "audio", rms(pcm)])
            else:
                self.recorder.gen.append([self.recorder.now(), "end" if isinstance(item, AudioSegmentEnd) else "video", 0])
            yield item

    def _video(self, frame):
        rec = self.recorder
        rec.frames.append([rec.now(), frame.index, frame.pts, frame.speech, frame.segment_end, frame.repeated])
        if rec.images:
            (rec.out / "gen" / f"{len(rec.frames) - 1:04d}.jpg").write_bytes(frame.jpeg)
        return super()._video(frame)


class LocalRunner(AvatarRunner):
    """AvatarRunner whose tracks stay local (no server to publish to): read back by streams."""

    recorder: Recorder

    async def _publish_track(self) -> None:
        if self._video_publication is not None:
            return
        audio = rtc.LocalAudioTrack.create_audio_track("avatar_audio", self._audio_source)
        video = rtc.LocalVideoTrack.create_video_track("avatar_video", self._video_source)
        self._video_publication = video   # marks "published" for the runner
        self.streams = [rtc.VideoStream(video, format=rtc.VideoBufferType.RGB24),
                        rtc.AudioStream(audio, sample_rate=self._options.audio_sample_rate, num_channels=1)]
        self.readers = [asyncio.create_task(read_video(self.streams[0], self.recorder)),
                        asyncio.create_task(read_audio(self.streams[1], self.recorder))]


async def read_video(stream: rtc.VideoStream, rec: Recorder) -> None:
    async for event in stream:
        frame = event.frame
        rec.video.append([rec.now(), event.timestamp_us])
        if not rec.images:
            continue
        picture = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3).copy()
        path = rec.out / "video" / f"{len(rec.video) - 1:04d}.jpg"
        await asyncio.to_thread(Image.fromarray(picture).save, path, quality=90)


async def read_audio(stream: rtc.AudioStream, rec: Recorder) -> None:
    async for event in stream:
        pcm = np.frombuffer(event.frame.data, np.int16).copy()
        rec.out_pcm.append(pcm)
        rec.audio.append([rec.now(), len(pcm), rms(pcm)])


async def say(output: QueueAudioOutput, text: str) -> float:
    """Speak `text` with the example's TTS (espeak-ng), pushing its frames as fast as it makes
    them, as the agent's pipeline does; returns the speech's length in seconds."""
    seconds = 0.0
    async with EspeakTTS().synthesize(text) as stream:
        async for chunk in stream:
            await output.capture_frame(chunk.frame)
            seconds += chunk.frame.duration
    output.flush()
    return seconds


async def check_launcher(url: str) -> dict:
    """The avatar worker's HTTP side: a bad launch is refused with a reason; a launch whose room
    cannot be joined (no LiveKit server here) ends that avatar without taking the worker down."""
    import aiohttp
    from aiohttp import web

    launcher = Launcher(WorkerConfig(talkface_url=url))
    runner = web.AppRunner(launcher.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    found = {}
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/launch", json={"room": "r"}) as reply:
            found["bad_launch"] = [reply.status, (await reply.json())["detail"]]
        body = {"livekit_url": "ws://127.0.0.1:9", "token": "not-a-token", "room": "r"}
        async with http.post(base + "/launch", json=body) as reply:
            found["launch"] = reply.status
        for _ in range(300):   # the failed avatar ends on its own
            async with http.get(base + "/healthz") as reply:
                found["healthz"] = await reply.json()
            if found["healthz"]["avatars"] == 0:
                break
            await asyncio.sleep(0.1)
    await runner.cleanup()
    return found


def check_token() -> dict:
    """The token AvatarSession gives the avatar worker, as LiveKit's own verifier reads it."""
    from livekit import api

    from talkface.integrations.livekit import avatar_token

    secret = "s" * 32
    claims = api.TokenVerifier("key", secret).verify(avatar_token("key", secret, "room1", "face", "agent-1"))
    return {"identity": claims.identity, "kind": claims.kind, "attributes": claims.attributes,
            "room": claims.video.room, "room_join": claims.video.room_join}


async def main(url: str, out: Path) -> None:
    launcher = dict(await check_launcher(url), token=check_token())
    rec = Recorder(out)
    RecordingGenerator.recorder = LocalRunner.recorder = rec
    generator = await RecordingGenerator.connect(url)
    output = QueueAudioOutput(sample_rate=generator.options.audio_sample_rate)
    finished = asyncio.Event()

    def on_finished(ev) -> None:
        rec.event("interrupted" if ev.interrupted else "finished")
        rec.event("played_s", ev.playback_position)
        finished.set()

    output.on("playback_finished", on_finished)
    runner = await start_runner(rtc.Room(), output, generator, runner_cls=LocalRunner)
    await asyncio.sleep(1.0)                      # idle
    rec.event("say1")
    first_s = await say(output, FIRST)
    await asyncio.wait_for(finished.wait(), first_s + 5.0)
    finished.clear()
    await asyncio.sleep(1.0)                      # idle between utterances
    rec.event("say2")
    await say(output, SECOND)
    while not rec.audio or rec.audio[-1][2] < 50:  # until the second utterance is audible
        await asyncio.sleep(0.005)
    await asyncio.sleep(CUT_AFTER_S)
    rec.event("clear")
    output.clear_buffer()                         # barge-in, as the agent does it
    await asyncio.wait_for(finished.wait(), 5.0)
    await asyncio.sleep(1.0)                      # idle after the interrupt
    options = generator.options
    rec.save(dict(fps=options.video_fps, audio_rate=options.audio_sample_rate, size=options.video_width,
                  first_s=first_s, launcher=launcher, dropped=generator.dropped))
    await runner.aclose()
    await generator.aclose()
    for task in runner.readers:      # a closed stream's iterator does not end by itself
        task.cancel()
    await asyncio.gather(*runner.readers, return_exceptions=True)
    for stream in runner.streams:
        await stream.aclose()

if __name__ == "__main__":
    faulthandler.dump_traceback_later(STUCK_S, exit=True)   # where it hangs, if it ever does
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
